//! The HTTP stack: the router of every app wrapped in the core middleware.
//!
//! From the outside in: security headers → `Connection: close` while draining → templates
//! extension → request id → access log → gzip → error renderer → body-size limit (413) →
//! request timeout (503) → panic catcher (500) → app middleware → routes. Everything that is
//! not a route is a 404 through the error renderer. The security headers are outermost so
//! that every response of every inner layer gets them.
//!
//! With `--dev` ([`dev`]), the reload routes are added, pages get the reload script
//! (between gzip and the error renderer, so error pages get it too), and the access log is
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
use errors::render_errors;

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
        .layer(RequestBodyLimitLayer::new(settings.max_body_size))
        .layer(from_fn(render_errors));
    // --dev: the reload script goes into pages before they are compressed, and the access
    // log becomes one readable line with the duration.
    let routes = if live { routes.layer(from_fn(dev::inject_script)) } else { routes };
    let routes = routes.layer(
        CompressionLayer::new().quality(CompressionLevel::Fastest).compress_when(compressible()),
    );
    let routes = if live {
        routes.layer(from_fn(dev::log_request))
    } else {
        routes.layer(from_fn(access_log::access_log))
    };
    let routes = routes
        .layer(from_fn(request_id::request_id))
        .layer(axum::Extension(templates))
        .layer(axum::Extension(db))
        .layer(from_fn(move |request: Request, next: Next| {
            close_when_draining(draining.clone(), request, next)
        }));
    security_headers(routes, settings)
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

/// While draining, HTTP/1.x responses close their connection so keep-alive clients move
/// to the new process (HTTP/2 clients get a GOAWAY from the connection instead).
async fn close_when_draining(draining: Draining, request: Request, next: Next) -> Response {
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && draining.is_set() {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
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
