//! `/healthz/live` (the process answers) and `/healthz/ready` (the database and every
//! app's readiness hook are fine; 503 naming what failed otherwise).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, json};

use crate::app::{App, AppContext};
use crate::error::Handled;

pub(crate) fn routes(
    ctx: AppContext,
    apps: Arc<Vec<Box<dyn App>>>,
    version: &'static str,
) -> Router {
    Router::new()
        .route(
            "/healthz/live",
            get(move || async move {
                respond(StatusCode::OK, json!({ "status": "ok", "version": version }))
            }),
        )
        .route("/healthz/ready", get(move || ready(ctx.clone(), apps.clone(), version)))
}

async fn ready(ctx: AppContext, apps: Arc<Vec<Box<dyn App>>>, version: &'static str) -> Response {
    let mut failed = Map::new();
    if let Err(e) = ctx.db.check().await {
        failed.insert("database".into(), e.to_string().into());
    }
    for app in apps.iter() {
        if let Err(reason) = app.ready(&ctx).await {
            failed.insert(app.name().into(), reason.into());
        }
    }
    if failed.is_empty() {
        respond(StatusCode::OK, json!({ "status": "ready", "version": version }))
    } else {
        tracing::warn!(failed = %serde_json::Value::Object(failed.clone()), "not ready");
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "version": version, "failed": failed }),
        )
    }
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res.extensions_mut().insert(Handled);
    res
}
