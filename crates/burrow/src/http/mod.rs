//! The HTTP stack: the router of every app wrapped in the core middleware.
//!
//! From the outside in: gzip → security headers → the core layer ([`Core`]: `Connection:
//! close` while draining, the templates and db extensions, request id, request timeout
//! (503), access log, error renderer) → body-size limit (413) → panic catcher (500) → app
//! middleware → routes. Everything that is not a route is a 404 through the error
//! renderer. The security headers are outside every layer that answers on its own, so
//! every response gets them (gzip only encodes what passes through).
//!
//! The stack is applied with one `Router::layer` call, and the core layer is one middleware
//! rather than six: axum boxes each layered service, and every request then pays a boxed
//! clone and a boxed future per boxing. The request timeout arms its timer only for a
//! handler that has to wait.
//!
//! With `--dev` ([`dev`]), the reload routes are added, the core layer puts the reload
//! script into pages (error pages too) before gzip, and the access log is one readable
//! line with the duration.

mod access_log;
pub(crate) mod around;
pub(crate) mod dev;
pub(crate) mod errors;
pub(crate) mod health;
pub(crate) mod request_id;
mod security_headers;
pub(crate) mod staticfiles;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::limit::RequestBodyLimitLayer;

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
    let core = Arc::new(Core {
        templates,
        db,
        draining,
        request_timeout: settings.request_timeout,
        dev: live,
    });
    // One `Router::layer` call for the whole stack: axum boxes the service (and, per
    // request, clones it and boxes its future) once per call, not once per layer.
    let stack = ServiceBuilder::new()
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(compressible()),
        )
        .layer(security_headers::layer(settings))
        .layer(from_fn(move |request: Request, next: Next| core.clone().serve(request, next)))
        .layer(RequestBodyLimitLayer::new(settings.max_body_size))
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(panic_response));
    routes.fallback(|| async { Error::not_found() }).layer(stack)
}

/// What the core layer adds to every request.
struct Core {
    templates: Templates,
    db: crate::Db,
    draining: Draining,
    /// `--request-timeout`: a handler still running then is answered 503.
    request_timeout: Duration,
    /// `--dev`: pages get the reload script, and the access log is one readable line with
    /// the duration.
    dev: bool,
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
        let response = within(start + self.request_timeout, next.run(request)).await;
        let mut response = errors::render(&summary, response).await;
        request_id::echo(&id, &mut response);
        if self.dev {
            // Error pages get the script too, so fixing a broken template reloads the page
            // that showed the error.
            // Boxed, so its state is not part of the future of every request without --dev.
            response = Box::pin(dev::inject_script(response)).await;
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

/// The handler's response, or a 503 (rendered as an error page) if it is not ready by
/// `deadline`. The timer is armed only when the handler has to wait: most requests are
/// answered on their first poll and never touch the runtime's timer wheel.
async fn within(deadline: Instant, handler: impl Future<Output = Response>) -> Response {
    let mut handler = std::pin::pin!(handler);
    let first = std::future::poll_fn(|cx| Poll::Ready(handler.as_mut().poll(cx))).await;
    if let Poll::Ready(response) = first {
        return response;
    }
    // Boxed like the other rare paths: the timer's state stays out of the common future.
    match Box::pin(tokio::time::timeout_at(deadline.into(), handler)).await {
        Ok(response) => response,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
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
