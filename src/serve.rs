//! The local server's connection loop: at most `MESSAGE_QUEUE_MAX_CONNECTIONS`
//! connections at once (more wait in the listen queue), a time limit on each
//! request's headers (bodies are bounded where they are read), a lingering
//! close, and a graceful stop.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use shared::config::ClientLimits;
use tokio::{net::TcpListener, sync::Semaphore};

use crate::lingering::LingeringClose;

/// Longest the server waits, once stopping, for connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How the connection loop ended.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// Connections open when the stop began.
    pub(crate) open: usize,
    /// Whether all of them finished within the grace period.
    pub(crate) all_finished: bool,
}

/// Serves `router` on `listener` until `stop` completes, then lets open connections finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ClientLimits,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(LingeringClose::new(stream));
        let connection = graceful.watch(http.serve_connection(io, TowerToHyperService::new(router.clone())));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    let all_finished = tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await.is_ok();
    Stopped { open, all_finished }
}
