//! Starting the release server (or the baseline) as a child process on loopback.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The secret every bench token is signed with.
pub(crate) const SECRET: &str = "bench-secret-of-at-least-32-bytes";

/// A child process serving HTTP on 127.0.0.1; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Server {
    /// The `message-queue` binary built beside this one (or the one `MQ_BENCH_SERVER` names,
    /// for comparing builds) on `data_dir`.
    pub(crate) fn service(data_dir: &std::path::Path) -> Result<Self, String> {
        Self::service_with(data_dir, &[])
    }

    /// The release server with extra environment variables; its store is `MQ_BENCH_STORE`'s
    /// (a `MESSAGE_QUEUE_STORE` URL) when that is set and `env` names none.
    pub(crate) fn service_with(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let binary = match std::env::var_os("MQ_BENCH_SERVER") {
            Some(path) => PathBuf::from(path),
            None => sibling("message-queue")?,
        };
        let mut cmd = Command::new(binary);
        cmd.env("MESSAGE_QUEUE_PORT", "0")
            .env("MESSAGE_QUEUE_DATA_DIR", data_dir)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("PPROF_ADDR", "off")
            .env("JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .envs(std::env::var("MQ_BENCH_STORE").ok().map(|url| ("MESSAGE_QUEUE_STORE", url)))
            .envs(env.iter().copied());
        Self::spawn(cmd)
    }

    /// This binary's own baseline server.
    pub(crate) fn baseline() -> Result<Self, String> {
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.arg("baseline-server");
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Result<Self, String> {
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().map_err(|e| format!("spawn: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| "the server did not report its address")?;
        Ok(Self { child, base: format!("http://{addr}") })
    }

    /// The process id, for attaching a profiler.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, in bytes.
    pub(crate) fn rss(&self) -> Option<u64> {
        rss_of(&self.pid().to_string())
    }

    /// CPU time the process has used (user and system), in seconds.
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        cpu_secs(&self.pid().to_string())
    }

    /// What the server and this process (the load generator) have used so far.
    pub(crate) fn usage(&self) -> Usage {
        let pid = self.pid().to_string();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let written = io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok());
        let mut threads = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let tid = task.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim().to_owned();
            if let Some(cpu) = cpu_secs(&format!("{pid}/task/{tid}")) {
                match threads.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, total)) => *total += cpu,
                    None => threads.push((name, cpu)),
                }
            }
        }
        Usage { server_cpu: self.cpu_secs(), generator_cpu: cpu_secs("self"), written, threads }
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds and bytes written, read from `/proc` at one moment.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) server_cpu: Option<f64>,
    pub(crate) generator_cpu: Option<f64>,
    /// Bytes the server caused to be written to storage.
    pub(crate) written: Option<u64>,
    /// CPU seconds per thread name (the tokio workers summed under one name).
    pub(crate) threads: Vec<(String, f64)>,
}

impl Usage {
    /// What `later` used since `self`, as "name X%" per thread over `secs`, busiest first.
    pub(crate) fn threads_since(&self, later: &Usage, secs: f64) -> String {
        let mut busy: Vec<(String, f64)> = later
            .threads
            .iter()
            .map(|(name, cpu)| {
                let before = self.threads.iter().find(|(n, _)| n == name).map_or(0.0, |(_, c)| *c);
                (name.clone(), 100.0 * (cpu - before) / secs)
            })
            .filter(|(_, pct)| *pct >= 1.0)
            .collect();
        busy.sort_by(|a, b| b.1.total_cmp(&a.1));
        busy.iter().map(|(n, pct)| format!("{n} {pct:.0}%")).collect::<Vec<_>>().join(", ")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Bytes as megabytes (0 when unknown).
pub(crate) fn mb(bytes: Option<u64>) -> f64 {
    bytes.map_or(0.0, |b| b as f64 / 1_048_576.0)
}

/// Resident memory of process `pid`, in bytes.
pub(crate) fn rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// CPU time (user and system) of process `pid` ("self" for this one), in seconds.
pub(crate) fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A binary built next to this one.
fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing: build the workspace in this profile first", path.display()))
    }
}

/// A bearer token for the bench's secret.
pub(crate) fn token() -> String {
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 86_400;
    let claims = serde_json::json!({"sub": "bench", "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("HS256 signing")
}
