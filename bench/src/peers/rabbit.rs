//! RabbitMQ through `lapin`: a durable quorum queue (a confirm is sent once the message is
//! in the queue's log and that log is fsynced), persistent 1 KB messages, publisher confirms,
//! consumers with manual acknowledgements and a prefetch of 10.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, PublisherConfirm,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::sync::Mutex;

use super::{PeerPlan, Workloads, payload, scenario_name};
use crate::load::{Stats, Step, closed_loop_on, open_loop_on};

/// How its answer compares with the service's, shown beside its figures.
pub(super) const DURABILITY: &str = "quorum queue: confirmed once on disk, as ours";

pub(super) const NAME: &str = "RabbitMQ";

/// Where the broker is: `RABBITMQ_URL`, or the machine's own server.
pub(super) fn url() -> String {
    std::env::var("RABBITMQ_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// One connection to the broker, for every workload.
pub(super) async fn connect() -> Result<Rabbit, String> {
    let url = url();
    let connecting = Connection::connect(&url, ConnectionProperties::default());
    let connection = tokio::time::timeout(Duration::from_secs(3), connecting)
        .await
        .map_err(|_| format!("{url}: no answer in 3 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(Rabbit { connection })
}

pub(super) struct Rabbit {
    connection: Connection,
}

impl Rabbit {
    /// A fresh quorum queue and a channel in confirm mode publishing to it.
    async fn queue(&self, scenario: &str) -> Result<(Channel, Arc<str>), String> {
        let name: Arc<str> = scenario_name(scenario).into();
        let channel = self.connection.create_channel().await.map_err(err)?;
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(name.as_ref().into(), durable, arguments).await.map_err(err)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(err)?;
        Ok((channel, name))
    }

    async fn delete(&self, channel: &Channel, queue: &str) -> Result<(), String> {
        channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.map(drop).map_err(err)
    }
}

impl Workloads for Rabbit {
    async fn publish(&self, in_flight: usize, duration: Duration) -> Result<Stats, String> {
        let (channel, queue) = self.queue(&format!("publish{in_flight}")).await?;
        let stats = closed_loop_on(in_flight, duration, |_| channel.clone(), publish_step(&queue, 1)).await;
        self.delete(&channel, &queue).await?;
        Ok(stats)
    }

    async fn batch(&self, in_flight: usize, size: usize, duration: Duration) -> Result<Stats, String> {
        let (channel, queue) = self.queue("batch").await?;
        let stats = closed_loop_on(in_flight, duration, |_| channel.clone(), publish_step(&queue, size)).await;
        self.delete(&channel, &queue).await?;
        Ok(stats)
    }

    async fn consume_ack(&self, consumers: usize, prefill: usize, duration: Duration) -> Result<Stats, String> {
        let (channel, queue) = self.queue("consume").await?;
        let fill = publish_step(&queue, 1000);
        for _ in 0..prefill / 1000 {
            fill(channel.clone()).await?;
        }
        let mut subscribed = Vec::new();
        for i in 0..consumers {
            let channel = self.connection.create_channel().await.map_err(err)?;
            channel.basic_qos(10, BasicQosOptions::default()).await.map_err(err)?;
            let options = BasicConsumeOptions::default();
            let consumer = channel
                .basic_consume(queue.as_ref().into(), format!("c{i}").into(), options, FieldTable::default())
                .await
                .map_err(err)?;
            subscribed.push(Arc::new(Mutex::new(consumer)));
        }
        let step: Step<Arc<Mutex<Consumer>>> = Arc::new(|consumer: Arc<Mutex<Consumer>>| {
            Box::pin(async move {
                let next = tokio::time::timeout(Duration::from_secs(5), consumer.lock().await.next()).await;
                let delivery = next.map_err(|_| "no delivery in 5 s")?.ok_or("the consumer ended")?.map_err(err)?;
                delivery.ack(BasicAckOptions::default()).await.map_err(err)?;
                Ok(1)
            })
        });
        let stats = closed_loop_on(consumers, duration, |i| subscribed[i].clone(), step).await;
        self.delete(&channel, &queue).await?;
        Ok(stats)
    }

    async fn open_loop(&self, plan: &PeerPlan) -> Result<Stats, String> {
        let (channel, queue) = self.queue("open").await?;
        let duration = Duration::from_secs(plan.open_loop_secs);
        let stats = open_loop_on(plan.open_loop_rate, duration, channel.clone(), publish_step(&queue, 1)).await;
        self.delete(&channel, &queue).await?;
        Ok(stats)
    }
}

/// Publishes `count` persistent messages, then waits for every confirm.
fn publish_step(queue: &Arc<str>, count: usize) -> Step<Channel> {
    let (queue, body) = (queue.clone(), Arc::new(payload()));
    Arc::new(move |channel: Channel| {
        let (queue, body) = (queue.clone(), body.clone());
        Box::pin(async move {
            let mut confirms = Vec::with_capacity(count);
            for _ in 0..count {
                confirms.push(publish(&channel, &queue, &body).await?);
            }
            for confirm in confirms {
                match confirm.await.map_err(err)? {
                    Confirmation::Ack(None) => {}
                    other => return Err(format!("not confirmed: {other:?}")),
                }
            }
            Ok(count as u64)
        })
    })
}

async fn publish(channel: &Channel, queue: &str, body: &[u8]) -> Result<PublisherConfirm, String> {
    let persistent = BasicProperties::default().with_delivery_mode(2);
    channel.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, persistent).await.map_err(err)
}

fn err(e: lapin::Error) -> String {
    e.to_string()
}
