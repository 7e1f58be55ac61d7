//! The HTTP stack: the router of every app wrapped in the core middleware.
//!
//! From the outside in: security headers → gzip → the core layer ([`core`]: `Connection:
//! close` while draining, the templates and db extensions, request id, access log, error
//! renderer) → body-size limit (413) → request timeout (503) → panic catcher (500) → app
//! middleware → routes. Everything that is not a route is a 404 through the error
//! renderer. The security headers are outermost so that every response of every inner
//! layer gets them.
//!
//! The core layer is one middleware rather than five: each layer of its own costs a boxed
//! clone of the service below it and a boxed future on every request.
//!
//! With `--dev` ([`dev`]), the reload routes are added, pages get the reload script
//! (between gzip and the core layer, so error pages get it too), and the access log is
//! one readable line with the duration.

mod access_log;
pub(crate) mod dev;
pub(crate) mod errors;
pub(crate) mod health;
pub(crate) mod request_id;
mod security_headers;
pub(crate) mod staticfiles;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::Error;
use crate::template::Templates;

pub(crate) use security_headers::security_headers;

/// Wraps `routes` (all apps' routes, already wrapped in app middleware) in the core stack.
pub(crate) fn core_stack(
    routes: Router,
    templates: Templates,
    db: crate::Db,
    settings: &crate::Settings,
    draining: Draining,
    dev: Option<dev::Reloads>,
) -> Router {
    let live = dev.is_some();
    let routes = match dev {
        Some(reloads) => routes.merge(dev::routes(reloads, draining.clone())),
        None => routes,
    };
    let routes = routes
        .fallback(|| async { Error::not_found() })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.max_body_size));
    let core = Arc::new(Core { templates, db, draining, dev_log: live });
    let routes = routes
        .layer(from_fn(move |request: Request, next: Next| core.clone().serve(request, next)));
    // --dev: the reload script goes into pages (error pages too) before they are compressed.
    let routes = if live { routes.layer(from_fn(dev::inject_script)) } else { routes };
    let routes = routes.layer(
        CompressionLayer::new().quality(CompressionLevel::Fastest).compress_when(compressible()),
    );
    security_headers(routes, settings)
}

/// What the core layer adds to every request.
struct Core {
    templates: Templates,
    db: crate::Db,
    draining: Draining,
    /// `--dev`: the access log is one readable line with the duration.
    dev_log: bool,
}

impl Core {
    async fn serve(self: Arc<Self>, mut request: Request, next: Next) -> Response {
        let start = Instant::now();
        let http1 = request.version() <= Version::HTTP_11;
        let id = request_id::of(&request);
        let extensions = request.extensions_mut();
        extensions.insert(id.clone());
        extensions.insert(self.templates.clone());
        extensions.insert(self.db.clone());
        let summary = errors::Summary::of(&request);
        let response = next.run(request).await;
        let mut response = errors::render(&summary, response).await;
        request_id::echo(&id, &mut response);
        if self.dev_log {
            dev::log_request(&summary, &response, start);
        } else {
            access_log::log(&summary, &response, start);
        }
        if http1 && self.draining.is_set() {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Set while the server drains: HTTP/1.1 responses then carry `Connection: close`, so
/// keep-alive clients open their next connection to the successor.
#[derive(Clone, Default)]
pub(crate) struct Draining(Arc<AtomicBool>);

impl Draining {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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
