//! Access log: one line per request through `tracing` (text or JSON by `--log-format`),
//! written by the core layer once the response is ready.

use std::time::Instant;

use axum::response::Response;

use super::errors::Summary;

pub(crate) fn log(request: &Summary, response: &Response, start: Instant) {
    let micros = start.elapsed().as_micros() as u64;
    tracing::info!(
        target: "burrow::access",
        method = %request.method,
        // The path only: query strings may carry tokens.
        path = request.uri.path(),
        status = response.status().as_u16(),
        duration_us = micros,
        request_id = request.request_id(),
        peer = request.peer.map(|p| p.0.ip()).map(tracing::field::display),
        "request"
    );
}
