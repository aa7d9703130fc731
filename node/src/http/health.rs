//! `GET /livez` and `GET /readyz` (see `crate::health` for what they mean). Plain text; no API
//! key (they say nothing about messages).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::context::Ctx;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
}

async fn livez() -> (StatusCode, &'static str) {
    (StatusCode::OK, "live\n")
}

async fn readyz(State(ctx): State<Ctx>) -> (StatusCode, String) {
    let verdict = tokio::task::spawn_blocking(move || crate::health::readiness(&ctx)).await;
    match verdict {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the check failed: {e}\n"),
        ),
    }
}
