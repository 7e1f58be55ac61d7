//! Access log: one line per request through `tracing` (text or JSON by `--log-format`).

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::request::{PeerAddr, RequestId};

pub(crate) async fn access_log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // The path only: query strings may carry tokens.
    let path = request.uri().path().to_string();
    let id = request.extensions().get::<RequestId>().cloned();
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = start.elapsed().as_micros() as u64;
    tracing::info!(
        target: "burrow::access",
        method = %method,
        path = %path,
        status,
        duration_us = micros,
        request_id = id.as_ref().map(|i| i.as_str()).unwrap_or(""),
        peer = peer.as_deref().unwrap_or(""),
        "request"
    );
    response
}
