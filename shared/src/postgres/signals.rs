//! Signals between instances through `LISTEN`/`NOTIFY` on one channel. The service announces
//! at most once per short interval per instance, in its own statement outside any write, so
//! the lock `NOTIFY` takes at commit never sits on the publish path. Each instance listens on
//! one connection of its own, outside the pool, and opens it again when it drops.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgStore, errors::pg};
use crate::ports::{QueueId, Signals, StoreResult};

const CHANNEL: &str = "message_queue_published";
/// Queue ids per notification, well inside `NOTIFY`'s 8000-byte payload.
const IDS_PER_SIGNAL: usize = 300;
/// Pause before the listening connection is opened again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

#[async_trait]
impl Signals for PgStore {
    async fn announce(&self, queues: &[QueueId]) -> StoreResult<()> {
        for chunk in queues.chunks(IDS_PER_SIGNAL) {
            let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
            let payload = format!("{}:{}", self.origin, ids.join(","));
            self.execute("SELECT pg_notify($1, $2)::TEXT", &[&CHANNEL, &payload]).await?;
        }
        Ok(())
    }

    fn listen(&self) -> Option<mpsc::Receiver<Vec<QueueId>>> {
        let (tx, rx) = mpsc::channel(64);
        let (config, origin) = (self.config.clone(), self.origin);
        tokio::spawn(async move {
            while !tx.is_closed() {
                if let Err(e) = listen_once(&config, origin, &tx).await {
                    tracing::debug!("listening for other instances' publishes: {e}");
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        });
        Some(rx)
    }
}

/// Listens on one connection until it drops or nobody receives any more.
async fn listen_once(config: &tokio_postgres::Config, origin: u64, tx: &mpsc::Sender<Vec<QueueId>>) -> StoreResult<()> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(pg)?;
    let messages = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let Some(queues) = heard(n.payload(), origin) else { continue };
                    // A full channel drops the hint; the waiters' re-checks still find the records.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(queues) {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg(e)),
                None => return Ok(()),
            }
        }
    };
    tokio::pin!(messages);
    let listen = format!("LISTEN {CHANNEL}");
    tokio::select! {
        ended = &mut messages => return ended,
        listening = client.batch_execute(&listen) => listening.map_err(pg)?,
    }
    messages.await
}

/// The queues of another instance's announcement (`origin:id,id,...`); `None` for this instance's own.
fn heard(payload: &str, origin: u64) -> Option<Vec<QueueId>> {
    let (from, ids) = payload.split_once(':')?;
    if from.parse::<u64>().ok()? == origin {
        return None;
    }
    Some(ids.split(',').filter_map(|id| id.parse().ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::heard;

    #[test]
    fn announcements_of_other_instances_are_heard_and_own_ones_left_out() {
        assert_eq!(heard("7:1,22,333", 9), Some(vec![1, 22, 333]));
        assert_eq!(heard("7:1,22", 7), None);
        assert_eq!(heard("nonsense", 7), None);
    }
}
