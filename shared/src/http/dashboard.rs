//! `GET /dashboard`: a read-only page of charts and tables, served from the binary with the
//! charting library it uses (uPlot, MIT). The page and its scripts hold no data and ask no token;
//! the page reads everything through the API with the caller's bearer token, given once in the
//! address (`/dashboard#token=...`, a fragment no request carries) or pasted into the page.

use axum::{
    Router,
    http::header,
    response::{Html, IntoResponse},
    routing::get,
};

use crate::app::AppState;

const PAGE: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/app.js");
const UPLOT_JS: &str = include_str!("../../assets/dashboard/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/dashboard/vendor/uPlot.min.css");

/// The page and its assets; no token (they hold no data).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { Html(PAGE) }))
        .route("/dashboard/app.js", get(|| async { asset("text/javascript", SCRIPT) }))
        .route("/dashboard/uplot.js", get(|| async { asset("text/javascript", UPLOT_JS) }))
        .route("/dashboard/uplot.css", get(|| async { asset("text/css", UPLOT_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}
