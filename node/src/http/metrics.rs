//! `GET /metrics`: every family of the node's registry in Prometheus' text format 0.0.4, after
//! the values read from state at scrape time are refreshed. No API key: the text carries no
//! message content, and every label value comes from configuration or a fixed set.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::context::Ctx;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    // The scrape reads RocksDB (queue scans, properties) and statvfs: off the async threads.
    let text = tokio::task::spawn_blocking(move || {
        crate::metrics::scrape::refresh(&ctx);
        ctx.metrics.render()
    })
    .await
    .unwrap_or_else(|e| format!("# scrape failed: {e}\n"));
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text)
}
