//! The delivery rules, tested through the operations with a manual clock, so
//! leases and TTLs pass without sleeping.

#![allow(unreachable_pub)]

mod lifecycle;
mod randomized;
mod retention;
mod statistics;

use std::sync::Arc;

use serde_json::json;
use shared::{
    auth::Principal,
    clock::ManualClock,
    config::Config,
    domain::{QueueName, Timestamp},
    embedded::SqliteStore,
    ops::{Backends, Consume, Delivered, Publish, QueueDeclaration, Service, SettleCommand, SettleKind, Settled},
    ports::{Content, GroupRef, QueueArguments},
};

/// A service on a fresh embedded store, with its clock.
#[allow(missing_debug_implementations)]
pub struct Harness {
    pub service: Service,
    pub clock: Arc<ManualClock>,
    pub caller: Principal,
    _dir: tempfile::TempDir,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_backends(Backends::all)
    }

    /// A service on a fresh embedded store, its ports as `backends` makes them of it.
    pub fn with_backends(backends: impl FnOnce(Arc<SqliteStore>) -> Backends) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let config = Config::from_lookup(|_| None).unwrap();
        let clock = Arc::new(ManualClock::starting_at(Timestamp(1_700_000_000_000)));
        let backends = backends(store);
        let service = Service::new(config, backends).with_clock(clock.clone());
        Self { service, clock, caller: Principal { subject: "tester".into() }, _dir: dir }
    }

    pub async fn declare(&self, queue: &str, arguments: QueueArguments) {
        let decl = QueueDeclaration { durable: true, arguments, ..Default::default() };
        self.service.declare_queue(&self.caller, &name(queue), decl).await.unwrap();
    }

    pub async fn publish(&self, queue: &str, n: u64) -> String {
        self.publish_with_ttl(queue, n, None).await
    }

    pub async fn publish_with_ttl(&self, queue: &str, n: u64, ttl_ms: Option<u64>) -> String {
        let cmd = Publish {
            queue: name(queue),
            key: None,
            routing_key: None,
            content: Content::Json(json!({"n": n}).to_string()),
            headers: Default::default(),
            priority: None,
            ttl_ms,
            persistent: true,
        };
        self.service.publish(&self.caller, cmd).await.unwrap().id.to_string()
    }

    pub async fn consume(&self, queue: &str, group: &str, consumer: &str, max: u32) -> Vec<Delivered> {
        let cmd = Consume {
            queue: name(queue),
            group: GroupRef::Consumers(group.into()),
            consumer: consumer.into(),
            max,
            wait: std::time::Duration::ZERO,
            lease_ms: Some(1000),
        };
        self.service.consume(&self.caller, cmd).await.unwrap()
    }

    pub async fn settle(&self, id: &str, group: &str, kind: SettleKind) -> shared::error::Result<Settled> {
        let cmd = SettleCommand {
            message_id: id.into(),
            queue: None,
            group: Some(GroupRef::Consumers(group.into())),
            receipt: None,
            kind,
        };
        self.service.settle(&self.caller, cmd).await
    }
}

pub fn name(s: &str) -> QueueName {
    QueueName::parse(s).unwrap()
}
