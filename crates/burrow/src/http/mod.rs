//! The HTTP stack: the router of every app wrapped in the core middleware.
//!
//! From the outside in: gzip → security headers → the core layer ([`core_layer`]:
//! `Connection: close` while draining, the templates and db extensions, request id, the
//! client's address, request timeout (503), access log, error renderer) → `--rate-limit`
//! (429) → body-size limit (413; uploads get their own, [`body_limit`]) → panic
//! catcher (500) → app middleware → routes. Everything that is not a route is a 404
//! through the error renderer. The security headers are outside every layer that answers
//! on its own, so every response gets them (gzip only encodes what passes through).
//!
//! The stack is applied with one `Router::layer` call: axum boxes each layered service,
//! and every request then pays a boxed clone and a boxed future per boxing. The core
//! layer is a tower service with its own future, and the session and CSRF apps' layers
//! are [`around`] layers, so none of them boxes anything on a request's common path.
//!
//! With `--dev` ([`dev`]), the reload routes are added, the core layer puts the reload
//! script into pages (error pages too) before gzip, and the access log is one readable
//! line with the duration.

mod access_log;
pub(crate) mod around;
mod body_limit;
mod core_layer;
pub(crate) mod dev;
pub(crate) mod errors;
pub(crate) mod health;
pub(crate) mod request_id;
mod security_headers;
pub(crate) mod staticfiles;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};

pub(crate) use self::core_layer::Services;
use self::core_layer::{Core, CoreLayer};
use crate::error::Error;
use crate::rate_limit::RateLimit;

pub(crate) use security_headers::security_headers;

/// Wraps `routes` (all apps' routes, already wrapped in app middleware) in the core stack,
/// which hands requests what `ctx` holds (templates, database, job queue, storage).
pub(crate) fn core_stack(
    routes: Router,
    ctx: &crate::AppContext,
    draining: Draining,
    dev: Option<dev::Reloads>,
) -> Router {
    let settings = &*ctx.settings;
    let storage = ctx.storage.clone();
    let live = dev.is_some();
    let routes = match dev {
        Some(reloads) => routes.merge(dev::routes(reloads)),
        None => routes,
    };
    let routes = routes.merge(crate::storage::serve::routes(storage.clone()));
    let services = Services {
        templates: ctx.templates.clone(),
        db: ctx.db.clone(),
        jobs: ctx.jobs.is_installed().then(|| ctx.jobs.clone()),
        storage: storage.clone(),
        streams: crate::live::Streams::new(settings.live, draining.clone()),
    };
    let core = CoreLayer(Arc::new(Core {
        services: Arc::new(services),
        draining,
        proxies: settings.proxies.clone(),
        request_timeout: settings.request_timeout,
        dev: live,
    }));
    // One `Router::layer` call for the whole stack: axum boxes the service (and, per
    // request, clones it and boxes its future) once per call, not once per layer.
    let stack = ServiceBuilder::new()
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(compressible()),
        )
        .layer(security_headers::layer(settings))
        .layer(core)
        // Load balancers' health checks are never limited.
        .layer(RateLimit::per_ip_or_off(settings.rate_limit).exempt("/healthz/"))
        .layer(body_limit::BodyLimitLayer::new(
            settings.max_body_size,
            settings.upload_max_size,
            storage.backend().spool_dir().to_path_buf(),
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(panic_response));
    // `with_state` turns every handler into a service now: left as handlers, axum would
    // clone each one and apply the layers above it on every request (as
    // `Router::into_make_service` avoids, which burrow's own accept loop does not use).
    routes.layer(stack).with_state(())
}

/// Set while the server drains: HTTP/1.1 responses then carry `Connection: close`, so
/// keep-alive clients open their next connection to the successor, and event streams end
/// at once ([`crate::live`]), so none holds the drain.
#[derive(Clone, Default)]
pub(crate) struct Draining(CancellationToken);

impl Draining {
    pub(crate) fn set(&self) {
        self.0.cancel();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once draining starts.
    pub(crate) fn wait(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.0.clone().cancelled_owned()
    }
}

/// Bodies worth compressing: small ones cost more CPU than they save bytes.
fn compressible() -> impl Predicate {
    SizeAbove::new(1024)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    // Logged by the error renderer, which knows the request id.
    Error::internal(format!("handler panicked: {message}")).into_response()
}
