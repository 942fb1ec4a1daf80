//! NATS JetStream through `async-nats`: a file-storage stream, each publish awaiting the
//! stream's acknowledgement, a durable pull consumer with explicit acknowledgements taking
//! batches of 10. The server may acknowledge before its file reaches the disk: nats-server
//! 2.9 syncs stream files on a timer (two minutes by default); `sync_interval: always`
//! exists from 2.10 on, and `infra/nats.sh` sets it where the server has it.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    self, Context,
    consumer::{AckPolicy, pull},
    stream::{Config, StorageType},
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::{PeerPlan, Workloads, payload, scenario_name};
use crate::load::{Stats, Step, closed_loop_on, open_loop_on};

/// How its answer compares with the service's, shown beside its figures.
pub(super) const DURABILITY: &str = "acknowledged before its file is synced: weaker than ours";

pub(super) const NAME: &str = "NATS JetStream";

/// Where the server is: `NATS_URL`, or the machine's own server.
pub(super) fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub(super) struct Nats {
    jetstream: Context,
}

pub(super) async fn connect() -> Result<Nats, String> {
    let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(3));
    let client = options.connect(url()).await.map_err(|e| format!("{}: {e}", url()))?;
    Ok(Nats { jetstream: jetstream::new(client) })
}

impl Nats {
    /// A fresh file-storage stream; answers its name and its one subject.
    async fn stream(&self, scenario: &str) -> Result<(String, Arc<str>), String> {
        let name = scenario_name(scenario).replace(['.', '-'], "_");
        let subject: Arc<str> = format!("mqbench.{name}").into();
        let config = Config {
            name: name.clone(),
            subjects: vec![subject.to_string()],
            storage: StorageType::File,
            ..Config::default()
        };
        self.jetstream.create_stream(config).await.map_err(|e| format!("create stream {name}: {e}"))?;
        Ok((name, subject))
    }

    async fn delete(&self, stream: &str) -> Result<(), String> {
        self.jetstream.delete_stream(stream).await.map(drop).map_err(|e| format!("delete stream {stream}: {e}"))
    }

    async fn publishing(&self, scenario: &str, workers: usize, count: usize, d: Duration) -> Result<Stats, String> {
        let (stream, subject) = self.stream(scenario).await?;
        let step = publish_step(&subject, count);
        let stats = closed_loop_on(workers, d, |_| self.jetstream.clone(), step).await;
        self.delete(&stream).await?;
        Ok(stats)
    }
}

impl Workloads for Nats {
    async fn publish(&self, in_flight: usize, duration: Duration) -> Result<Stats, String> {
        self.publishing(&format!("publish{in_flight}"), in_flight, 1, duration).await
    }

    async fn batch(&self, in_flight: usize, size: usize, duration: Duration) -> Result<Stats, String> {
        self.publishing("batch", in_flight, size, duration).await
    }

    async fn consume_ack(&self, consumers: usize, prefill: usize, duration: Duration) -> Result<Stats, String> {
        let (stream, subject) = self.stream("consume").await?;
        let fill = publish_step(&subject, 1000);
        for _ in 0..prefill / 1000 {
            fill(self.jetstream.clone()).await?;
        }
        let handle = self.jetstream.get_stream(&stream).await.map_err(|e| e.to_string())?;
        let config = pull::Config {
            durable_name: Some("bench".to_owned()),
            ack_policy: AckPolicy::Explicit,
            ..pull::Config::default()
        };
        let consumer = handle.create_consumer(config).await.map_err(|e| e.to_string())?;
        let mut pulls = Vec::new();
        for _ in 0..consumers {
            let messages = consumer.stream().max_messages_per_batch(10).messages().await.map_err(|e| e.to_string())?;
            pulls.push(Arc::new(Mutex::new(messages)));
        }
        let step: Step<Arc<Mutex<pull::Stream>>> = Arc::new(|messages: Arc<Mutex<pull::Stream>>| {
            Box::pin(async move {
                let next = tokio::time::timeout(Duration::from_secs(5), messages.lock().await.next()).await;
                let message =
                    next.map_err(|_| "no message in 5 s")?.ok_or("the pull ended")?.map_err(|e| e.to_string())?;
                message.ack().await.map_err(|e| e.to_string())?;
                Ok(1)
            })
        });
        let stats = closed_loop_on(consumers, duration, |i| pulls[i].clone(), step).await;
        drop(pulls);
        self.delete(&stream).await?;
        Ok(stats)
    }

    async fn open_loop(&self, plan: &PeerPlan) -> Result<Stats, String> {
        let (stream, subject) = self.stream("open").await?;
        let duration = Duration::from_secs(plan.open_loop_secs);
        let step = publish_step(&subject, 1);
        let stats = open_loop_on(plan.open_loop_rate, duration, self.jetstream.clone(), step).await;
        self.delete(&stream).await?;
        Ok(stats)
    }
}

/// Publishes `count` messages, then waits for every acknowledgement.
fn publish_step(subject: &Arc<str>, count: usize) -> Step<Context> {
    let (subject, body) = (subject.clone(), Bytes::from(payload()));
    Arc::new(move |jetstream: Context| {
        let (subject, body) = (subject.clone(), body.clone());
        Box::pin(async move {
            let mut acks = Vec::with_capacity(count);
            for _ in 0..count {
                let sent = jetstream.publish(subject.to_string(), body.clone()).await;
                acks.push(sent.map_err(|e| e.to_string())?);
            }
            for ack in acks {
                ack.await.map_err(|e| e.to_string())?;
            }
            Ok(count as u64)
        })
    })
}
