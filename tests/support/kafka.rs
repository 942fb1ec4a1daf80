//! A Kafka-protocol broker for tests, and a topic prefix per test. The broker comes from
//! `infra/kafka.sh --hold`: the one that answers at `KAFKA_BROKERS` (or 127.0.0.1:9092), or one
//! the script starts and keeps while this process holds its input open. A prefix's topics are
//! deleted with its guard; ones left by a test process that died are deleted by the next run.
//! Where the script runs its own broker (tansu), each guard gets a broker of its own, started
//! in milliseconds and stopped with the guard: tests in one process then never meet each
//! other's deleted topics (see docs/kafka.md).

// `infra.rs` beside this file, declared by the including module.
use super::infra;

use std::{
    process::Child,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

// Through `shared`, whose dependency it is, so the suites of either crate can use it.
use shared::kafka::rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
};

/// Start of every test topic: `mq-t-<pid>-<n>-`.
const PREFIX: &str = "mq-t-";

struct Broker {
    brokers: String,
    /// Whether the script started its own broker (tansu) rather than using one that answered.
    own: bool,
    /// The script, kept running until this process exits (its input closes then).
    _hold: Mutex<Child>,
}

fn broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| {
        let (child, brokers, ctl) = hold(false);
        if ctl.is_empty() {
            delete_topics(&brokers, abandoned);
        }
        Broker { brokers, own: !ctl.is_empty(), _hold: Mutex::new(child) }
    })
}

/// Whether the tests' broker is the tansu broker `infra/kafka.sh` started.
#[allow(dead_code, reason = "not every suite sharing this file asks")]
pub fn on_own_broker() -> bool {
    broker().own
}

/// Runs `infra/kafka.sh --hold`: the child, the bootstrap servers and the broker's control
/// script (empty for a broker that answered).
fn hold(own: bool) -> (Child, String, String) {
    let (child, brokers, ctl) = infra::hold("kafka.sh", own);
    assert!(brokers.contains(':'), "infra/kafka.sh gave no broker (it said {brokers:?})");
    (child, brokers, ctl)
}

/// The topics of one test: every topic whose name starts with `prefix`, deleted on drop (with
/// the broker itself, when it is the guard's own).
pub struct Topics {
    pub brokers: String,
    pub prefix: String,
    /// The broker's control script (`kill`, `start`), when the broker is this guard's own.
    ctl: Option<String>,
    own: Option<Child>,
}

impl Topics {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{PREFIX}{}-{n}-", std::process::id());
        if !broker().own {
            return Self { brokers: broker().brokers.clone(), prefix, ctl: None, own: None };
        }
        Self::on_own_broker(prefix)
    }

    /// Topics on a tansu broker of their own whatever answers at `KAFKA_BROKERS`, which the
    /// test may kill and start again through `ctl`.
    #[allow(dead_code, reason = "the broker fault tests use it; other suites share this file")]
    pub fn own() -> Self {
        Self::on_own_broker(format!("{PREFIX}{}-own-", std::process::id()))
    }

    fn on_own_broker(prefix: String) -> Self {
        let (child, brokers, ctl) = hold(true);
        assert!(!ctl.is_empty(), "infra/kafka.sh started a broker of its own");
        Self { brokers, prefix, ctl: Some(ctl), own: Some(child) }
    }

    /// Runs the own broker's control script: `kill` (SIGKILL) or `start` (same port, same storage).
    #[allow(dead_code, reason = "the broker fault tests use it; other suites share this file")]
    pub fn broker(&self, command: &str) {
        let ctl = self.ctl.as_deref().expect("a broker of this guard's own");
        let out = std::process::Command::new(ctl).arg(command).output().expect("the control script runs");
        assert!(out.status.success(), "{ctl} {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        if let Some(mut hold) = self.own.take() {
            // The script stops the broker and removes its storage once its input closes.
            drop(hold.stdin.take());
            let _ = hold.wait();
            return;
        }
        let prefix = self.prefix.clone();
        delete_topics(&self.brokers, move |topic| topic.starts_with(&prefix));
    }
}

/// Whether a test topic's process is gone.
fn abandoned(topic: &str) -> bool {
    let Some(pid) = topic.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { return false };
    infra::gone(pid)
}

/// Deletes the broker's topics that `which` picks, on a thread of its own (callable from
/// anywhere, a runtime or a destructor).
fn delete_topics(brokers: &str, which: impl Fn(&str) -> bool + Send + 'static) {
    let brokers = brokers.to_owned();
    std::thread::spawn(move || {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &brokers);
        let reader: BaseConsumer = config.create().expect("a client");
        // A broker that does not answer keeps its topics: a cleanup never fails a test.
        let Ok(metadata) = reader.fetch_metadata(None, Duration::from_secs(10)) else { return };
        let names: Vec<String> =
            metadata.topics().iter().map(|t| t.name().to_owned()).filter(|name| which(name)).collect();
        if names.is_empty() {
            return;
        }
        let admin: AdminClient<DefaultClientContext> = config.create().expect("an admin client");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = runtime.block_on(admin.delete_topics(&names, &AdminOptions::new()));
    })
    .join()
    .expect("the admin thread");
}
