//! A PostgreSQL server for tests, and a scratch database per test. The server comes from
//! `infra/postgres.sh --hold`: the one that answers at `MQ_POSTGRES_URL` (or 127.0.0.1:5432), or
//! one the script starts and keeps while this process holds its input open. A scratch database
//! is dropped with its guard; ones left by a test process that died are dropped by the next run.

// `infra.rs` beside this file, declared by the including module.
use super::infra;

use std::{
    process::{Child, Command},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

/// Runs `infra/postgres.sh --hold`: the child, the server's URL and its pg_ctl (empty for a
/// server that answered).
fn hold(own: bool) -> (Child, String, String) {
    let (child, url, ctl) = infra::hold("postgres.sh", own);
    assert!(url.starts_with("postgres://"), "infra/postgres.sh gave no server (it said {url:?})");
    (child, url, ctl)
}

/// Prefix of every scratch database: `mq_t_<pid>_<n>`.
const PREFIX: &str = "mq_t_";

struct Server {
    url: String,
    /// The script, kept running until this process exits (its input closes then).
    _hold: Mutex<Child>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (child, url, _) = hold(false);
        let server = Server { url, _hold: Mutex::new(child) };
        drop_abandoned(&server.url);
        server
    })
}

/// A PostgreSQL server of one test's own, which the test may stop and start again; stopped
/// and removed with the guard.
#[allow(dead_code, reason = "the PostgreSQL suite's fault tests use it; other suites share this file")]
pub struct OwnServer {
    pub url: String,
    ctl: String,
    hold: Child,
}

#[allow(dead_code, reason = "the PostgreSQL suite's fault tests use it; other suites share this file")]
impl OwnServer {
    pub fn start() -> Self {
        let (hold, url, ctl) = hold(true);
        assert!(!ctl.is_empty(), "infra/postgres.sh started a server of its own");
        Self { url, ctl, hold }
    }

    /// `pg_ctl stop -m fast`: ends every session at once, as a restart or a failover does.
    pub fn stop_fast(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = Command::new(&self.ctl).args(args).output().expect("pg_ctl runs");
        assert!(out.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        // The script stops the server and removes its directory once its input closes.
        drop(self.hold.stdin.take());
        let _ = self.hold.wait();
    }
}

/// The URL of another database on the same server.
fn url_of(server: &str, database: &str) -> String {
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{database}")
}

/// Runs SQL on the server's own database at `url`, on a thread of its own (callable from
/// anywhere, a runtime or a destructor); answers the first column of the rows.
fn admin(url: &str, sql: String) -> Vec<String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connects");
            tokio::spawn(connection);
            let messages = client.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .expect("the admin thread")
}

/// Drops scratch databases of test processes that are gone.
fn drop_abandoned(url: &str) {
    for name in admin(url, format!("SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'")) {
        let pid = name.trim_start_matches(PREFIX).split('_').next().unwrap_or_default();
        if infra::gone(pid) {
            admin(url, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A database of its own for one test; dropped (connections and all) with the guard.
pub struct Scratch {
    pub url: String,
    name: String,
}

impl Scratch {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{PREFIX}{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        admin(&server().url, format!("CREATE DATABASE {name}"));
        Self { url: url_of(&server().url, &name), name }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        admin(&server().url, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}
