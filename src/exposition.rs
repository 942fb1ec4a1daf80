//! The Prometheus exposition: `GET /metrics` on a listener of its own (`METRICS_ADDR`), rendering
//! what `shared::telemetry` recorded in this process, with each queue's active consumers read
//! at scrape time. Histograms, not summaries, so scrapes of many instances aggregate.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use shared::{ops::Service, telemetry};

/// Installs the Prometheus recorder for this process.
pub(crate) fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(telemetry::LATENCY_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot start the metrics recorder: {e}"))?;
    telemetry::describe();
    Ok(handle)
}

/// How often recorded histogram samples are folded into their buckets between scrapes, so
/// they do not pile up in memory when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, service: Service, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route("/metrics", get(scrape)).with_state((service, handle));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("the metrics listener stopped: {e}");
    }
}

async fn scrape(State((service, handle)): State<(Service, PrometheusHandle)>) -> impl IntoResponse {
    match service.consumer_counts().await {
        Ok(queues) => queues.iter().for_each(|c| telemetry::active_consumers(&c.queue, c.total())),
        Err(e) => tracing::warn!("active consumers not read for /metrics: {e}"),
    }
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}
