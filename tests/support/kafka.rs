//! A Kafka-protocol broker for tests, and a topic prefix per test. The broker comes from
//! `infra/kafka.sh --hold`: the one that answers at `KAFKA_BROKERS` (or 127.0.0.1:9092), or one
//! the script starts and keeps while this process holds its input open. A prefix's topics are
//! deleted with its guard; ones left by a test process that died are deleted by the next run.

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

use rdkafka::{
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
        delete_topics(&brokers, !ctl.is_empty(), abandoned);
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

/// The topics of one test: every topic whose name starts with `prefix`, deleted on drop.
pub struct Topics {
    pub brokers: String,
    pub prefix: String,
}

impl Topics {
    /// librdkafka settings for the broker: on tansu, the protocol of Kafka 3.0 (see docs/kafka.md).
    pub fn settings(&self) -> Vec<(String, String)> {
        protocol_settings(broker().own)
    }

    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self { brokers: broker().brokers.clone(), prefix: format!("{PREFIX}{}-{n}-", std::process::id()) }
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        delete_topics(&self.brokers, broker().own, move |topic| topic.starts_with(&prefix));
    }
}

/// Whether a test topic's process is gone.
fn abandoned(topic: &str) -> bool {
    let Some(pid) = topic.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { return false };
    infra::gone(pid)
}

/// Deletes the broker's topics that `which` picks, on a thread of its own (callable from
/// anywhere, a runtime or a destructor).
fn delete_topics(brokers: &str, own: bool, which: impl Fn(&str) -> bool + Send + 'static) {
    let brokers = brokers.to_owned();
    let settings = protocol_settings(own);
    std::thread::spawn(move || {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &brokers);
        for (key, value) in settings {
            config.set(key, value);
        }
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

/// On the tests' own tansu broker, the protocol of Kafka 3.0 (see docs/kafka.md).
fn protocol_settings(own: bool) -> Vec<(String, String)> {
    if !own {
        return Vec::new();
    }
    vec![("api.version.request".into(), "false".into()), ("broker.version.fallback".into(), "3.0.0".into())]
}
