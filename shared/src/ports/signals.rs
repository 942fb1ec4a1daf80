//! Signals between processes that share a store: "records were appended to these queues", so a
//! long poll waiting in another process wakes before its next re-check. A hint only: a signal
//! lost or never sent delays a consumer until its re-check, nothing more.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{QueueId, StoreResult};

#[async_trait]
pub trait Signals: Send + Sync {
    /// Tells the other processes that records were appended to `queues` (or made due again).
    async fn announce(&self, queues: &[QueueId]) -> StoreResult<()>;

    /// The queues other processes announce, from now on, in batches as they arrive; this
    /// process's own announcements are left out. `None` when the store carries no signals.
    /// The backend keeps listening through lost connections; announcements made while it
    /// reconnects are lost (the re-checks find those records).
    fn listen(&self) -> Option<mpsc::Receiver<Vec<QueueId>>>;
}

/// For stores without signals (one process, or processes that find each other's records by re-checking).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSignals;

#[async_trait]
impl Signals for NoSignals {
    async fn announce(&self, _queues: &[QueueId]) -> StoreResult<()> {
        Ok(())
    }

    fn listen(&self) -> Option<mpsc::Receiver<Vec<QueueId>>> {
        None
    }
}
