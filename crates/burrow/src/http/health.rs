//! `/healthz/live` (the process answers) and `/healthz/ready` (the database and every
//! app's readiness hook are fine; 503 naming what failed otherwise). Apps' facts (e.g. the
//! job queue's depth) are shown under `apps` either way.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, json};

use crate::context::BoxFuture;
use crate::db::Db;
use crate::error::Handled;

/// A readiness check of an app: its name, the check (an `Err` names what is wrong) and
/// the facts it reports.
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) run: Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
    pub(crate) facts: Box<dyn Fn() -> BoxFuture<'static, Option<serde_json::Value>> + Send + Sync>,
}

pub(crate) fn routes(db: Db, checks: Vec<Check>, version: &'static str) -> Router {
    let checks = Arc::new(checks);
    Router::new()
        .route(
            "/healthz/live",
            get(move || async move {
                respond(StatusCode::OK, json!({ "status": "ok", "version": version }))
            }),
        )
        .route("/healthz/ready", get(move || ready(db.clone(), checks.clone(), version)))
}

async fn ready(db: Db, checks: Arc<Vec<Check>>, version: &'static str) -> Response {
    let mut failed = Map::new();
    if let Err(e) = db.check().await {
        failed.insert("database".into(), e.to_string().into());
    }
    let mut facts = Map::new();
    for check in checks.iter() {
        if let Err(reason) = (check.run)().await {
            failed.insert(check.name.into(), reason.into());
        }
        if let Some(value) = (check.facts)().await {
            facts.insert(check.name.into(), value);
        }
    }
    let mut body = if failed.is_empty() {
        json!({ "status": "ready", "version": version })
    } else {
        tracing::warn!(failed = %serde_json::Value::Object(failed.clone()), "not ready");
        json!({ "status": "unavailable", "version": version, "failed": failed })
    };
    if !facts.is_empty() {
        body["apps"] = facts.into();
    }
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    respond(status, body)
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
