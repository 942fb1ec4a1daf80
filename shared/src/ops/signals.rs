//! Carries wake-ups between processes that share a store: the queues this process published to
//! are announced at most every [`ANNOUNCE_EVERY`], in one signal, off the publish path (so a
//! store whose signal is costly, like PostgreSQL's `NOTIFY`, pays it per interval, not per
//! message); the queues other processes announce wake this process's waiters.

use std::time::Duration;

use super::Service;

/// Longest a publish waits before other processes hear of it.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);

/// Announces this process's publishes and wakes its waiters on others'; returns at once when
/// the store carries no signals, and when the service stops.
pub async fn run_signals(service: Service) {
    let Some(mut heard) = service.signals.listen() else { return };
    service.wakeups.start_announcing();
    let announce = async {
        let mut every = tokio::time::interval(ANNOUNCE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let queues = service.wakeups.take_unannounced();
            if queues.is_empty() {
                continue;
            }
            if let Err(e) = service.signals.announce(&queues).await {
                tracing::debug!("publishes not announced to other processes: {e}");
            }
        }
    };
    let wake = async {
        while let Some(queues) = heard.recv().await {
            for queue in queues {
                service.wakeups.wake(queue);
            }
        }
    };
    tokio::select! {
        () = announce => {}
        () = wake => {}
        () = service.stopping.wait() => {}
    }
}
