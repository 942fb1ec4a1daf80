//! Runs an `infra/` script with `--hold`: it prints a server's address and its control script
//! (empty for a server that answered) on two lines, and keeps the server until this side closes
//! the script's input.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Runs `infra/<script> --hold` (with a server of its own when `own`); answers the script, the
/// address and the control script.
pub fn hold(script: &str, own: bool) -> (Child, String, String) {
    let script = infra_script(script);
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("--hold")
        .envs(own.then_some(("MQ_INFRA_OWN", "1")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", script.display()));
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = || {
        let mut line = String::new();
        out.read_line(&mut line).expect("the script answers");
        line.trim().to_owned()
    };
    let (address, ctl) = (line(), line());
    (child, address, ctl)
}

fn infra_script(name: &str) -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let script = dir.join("infra").join(name);
        if script.exists() {
            return script;
        }
        assert!(dir.pop(), "infra/{name} not found above {}", env!("CARGO_MANIFEST_DIR"));
    }
}

/// Whether the test process `pid` (named in a leftover's name) is gone.
#[allow(dead_code, reason = "not every support asks")]
pub fn gone(pid: &str) -> bool {
    pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists())
}
