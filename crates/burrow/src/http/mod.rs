//! The HTTP stack: the router of every app wrapped in the core middleware.
//!
//! From the outside in: gzip → the core stack ([`core_layer`]: the security headers,
//! `Connection: close` while draining, the request id, the client's address and the
//! server's services in the request, request timeout (503), access log, error renderer,
//! `--rate-limit` (429), body-size limit (413; uploads get their own, [`body_limit`]),
//! panic catcher (500), the session's and CSRF cookies) → app middleware → routes. Everything
//! that is not a route is a 404 through the error renderer. The security headers are added
//! after every answer the core stack gives, its own included, so every response gets them
//! (gzip only encodes what passes through).
//!
//! The core stack wraps the router from outside, as one concrete service ([`Stack`]):
//! `Router::layer` would box it into every route, and each boxing costs every request a
//! boxed clone of everything below it and a boxed future. It is one service with one
//! future rather than a layer for each of its parts, which would each move the request and
//! the future below. The CSRF app's layer is an [`around`] layer, which boxes nothing on a
//! request's common path. App middleware (`App::middleware`) is applied with
//! `Router::layer`, below the router's matching, so it sees the matched route.
//!
//! With `--dev` ([`dev`]), the reload routes are added, the core layer puts the reload
//! script into pages (error pages too) before gzip, and the access log is one readable
//! line with the duration.

mod access_log;
pub(crate) mod around;
mod body_limit;
mod compression;
mod core_layer;
pub(crate) mod dev;
pub(crate) mod errors;
pub(crate) mod health;
pub(crate) mod request_id;
mod security_headers;
pub(crate) mod staticfiles;

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio_util::sync::CancellationToken;
use tower::Service;

use self::compression::Negotiate;
pub(crate) use self::core_layer::Services;
use self::core_layer::{Core, CoreService};
use self::security_headers::SecurityHeaders;
use crate::contrib::session::CookieApps;
use crate::error::Error;
use crate::rate_limit::RateLimit;

pub(crate) use security_headers::security_headers;

/// Everything the server answers, as a tower service: the core stack around every app's
/// routes (or, on acme mode's HTTP port, the ACME router). `stack.clone().oneshot(request)`
/// is a request served as the server serves it, without a socket:
///
/// ```no_run
/// use burrow::axum::{body::Body, http::Request};
/// use tower::ServiceExt;
///
/// # async fn example(booted: burrow::Booted) {
/// let request = Request::get("/healthz/live").body(Body::empty()).unwrap();
/// let response = booted.stack.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
#[derive(Clone)]
pub struct Stack(Inner);

// Not boxed: each connection clones the stack (and in-process callers each request), and a
// box would make every clone an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Inner {
    Site(Site),
    Plain { router: Router, peer: Option<std::net::SocketAddr> },
}

/// Gzip around the core stack around the router (see [`core_stack`]).
type Site = Negotiate<CoreService>;

impl Stack {
    /// A router served as it is (acme mode's HTTP port).
    pub(crate) fn plain(router: Router) -> Stack {
        Stack(Inner::Plain { router, peer: None })
    }

    /// Calls the stack for one request in place (a clone per request would bump the
    /// reference counts of every layer's shared parts, which all the server's threads
    /// bump). No layer ever holds a request back, so readiness has nothing to wait for.
    pub(crate) fn serve(&mut self, request: Request) -> StackFuture {
        let ready = self.poll_ready(&mut Context::from_waker(std::task::Waker::noop()));
        debug_assert!(ready.is_ready(), "every layer of the stack is always ready");
        self.call(request)
    }

    /// The stack for one connection: its requests come from `peer` ([`PeerAddr`]).
    ///
    /// [`PeerAddr`]: crate::PeerAddr
    pub(crate) fn for_peer(mut self, peer: std::net::SocketAddr) -> Stack {
        match &mut self.0 {
            Inner::Site(site) => site.get_mut().set_peer(peer),
            Inner::Plain { peer: slot, .. } => *slot = Some(peer),
        }
        self
    }
}

impl Service<Request> for Stack {
    type Response = Response;
    type Error = Infallible;
    type Future = StackFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match &mut self.0 {
            Inner::Site(site) => site.poll_ready(cx),
            Inner::Plain { router, .. } => Service::<Request>::poll_ready(router, cx),
        }
    }

    fn call(&mut self, mut request: Request) -> StackFuture {
        match &mut self.0 {
            Inner::Site(site) => StackFuture::Site { future: site.call(request) },
            Inner::Plain { router, peer } => {
                if let Some(peer) = *peer {
                    request.extensions_mut().insert(crate::PeerAddr(peer));
                }
                StackFuture::Plain { future: router.call(request) }
            }
        }
    }
}

pin_project! {
    /// The future of a [`Stack`]'s response.
    #[project = StackProj]
    pub enum StackFuture {
        Site { #[pin] future: <Site as Service<Request>>::Future },
        Plain { #[pin] future: <Router as Service<Request>>::Future },
    }
}

impl Future for StackFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StackProj::Site { future } => future.poll(cx),
            StackProj::Plain { future } => future.poll(cx),
        }
    }
}

/// Wraps `routes` (all apps' routes, already wrapped in app middleware) in the core stack,
/// which hands requests what `ctx` holds (templates, database, job queue, storage) and
/// handles the session's and CSRF app's cookies (`cookie_apps`, when the sessions app is
/// installed).
pub(crate) fn core_stack(
    routes: Router,
    ctx: &crate::AppContext,
    draining: Draining,
    dev: Option<dev::Reloads>,
    cookie_apps: Option<CookieApps>,
) -> Stack {
    let settings = &*ctx.settings;
    let storage = ctx.storage.clone();
    let live = dev.is_some();
    // With the CSRF app, unsafe requests go to the routes behind its check, around every
    // app's middleware (as the session is); safe ones without a body to the routes as they
    // are, and pass through no layer of the app.
    let csrf = cookie_apps.as_ref().is_some_and(|apps| apps.csrf.is_some());
    let checked = if csrf { crate::contrib::csrf::checked(routes.clone()) } else { routes.clone() };
    // The framework's own routes, outside the apps' middleware and the check (GET only).
    let own = |routes: Router| {
        let routes = match &dev {
            Some(reloads) => routes.merge(dev::routes(reloads.clone())),
            None => routes,
        };
        // `with_state` turns every handler into a service now: left as handlers, axum
        // would turn each one into a service on every request (as
        // `Router::into_make_service` avoids, which burrow's own accept loop does not use).
        routes.merge(crate::storage::serve::routes(storage.clone())).with_state(())
    };
    let (routes, checked) = (own(routes), own(checked));
    let services = Services {
        templates: ctx.templates.clone(),
        db: ctx.db.clone(),
        jobs: ctx.jobs.is_installed().then(|| ctx.jobs.clone()),
        storage: storage.clone(),
        streams: crate::live::Streams::new(settings.live, draining.clone()),
        // Here rather than in a `Router::layer` of the apps' middleware: axum boxes a route
        // level into every route, and every request then pays a boxed service clone and a
        // boxed future for it, sessions used or not.
        cookie_apps: cookie_apps.map(Arc::new),
    };
    let core = Core {
        services: Arc::new(services),
        draining,
        proxies: settings.proxies.clone(),
        request_timeout: settings.request_timeout,
        dev: live,
        security_headers: SecurityHeaders::from_settings(settings),
        // Load balancers' health checks are never limited.
        rate_limit: RateLimit::per_ip_or_off(settings.rate_limit).exempt("/healthz/"),
        body_limits: body_limit::Limits::new(
            settings.max_body_size,
            settings.upload_max_size,
            storage.backend().spool_dir().to_path_buf(),
        ),
    };
    let site = Negotiate::new(CoreService::new(core, routes, checked));
    Stack(Inner::Site(site))
}

/// Set while the server drains: HTTP/1.1 responses then carry `Connection: close`, so
/// keep-alive clients open their next connection to the successor, and event streams end
/// at once ([`crate::live`]), so none holds the drain.
///
/// `is_set` reads a flag of its own: the token's `is_cancelled` locks a mutex that every
/// connection shares, and the core layer asks on every HTTP/1 response, so each response
/// would move that mutex's cache line between the cores (bench/README.md, step 51).
#[derive(Clone, Default)]
pub(crate) struct Draining(Arc<DrainingState>);

#[derive(Default)]
struct DrainingState {
    set: AtomicBool,
    token: CancellationToken,
}

impl Draining {
    pub(crate) fn set(&self) {
        self.0.set.store(true, Ordering::Release);
        self.0.token.cancel();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.set.load(Ordering::Acquire)
    }

    /// Resolves once draining starts.
    pub(crate) fn wait(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.0.token.clone().cancelled_owned()
    }
}

/// The 500 for a panic in a handler or a middleware.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    // Logged by the error renderer, which knows the request id.
    Error::internal(format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;

    async fn connection_header(booted: &crate::Booted) -> Option<String> {
        let request = Request::get("/healthz/live").body(Body::empty()).unwrap();
        let response = booted.stack.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let value = response.headers().get(header::CONNECTION)?;
        Some(value.to_str().unwrap().to_string())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn responses_say_connection_close_once_draining_started() {
        let dir = tempfile::tempdir().unwrap();
        let dsn = dir.path().join("app.db").display().to_string();
        let server = crate::Server::new("server", "0.1.0");
        let booted =
            tokio::task::block_in_place(|| server.build(["server", "--database-dsn", &dsn]))
                .expect("server builds");
        let drained = booted.draining.wait();
        assert_eq!(connection_header(&booted).await, None);
        booted.draining.set();
        assert_eq!(connection_header(&booted).await.as_deref(), Some("close"));
        tokio::time::timeout(std::time::Duration::from_secs(5), drained)
            .await
            .expect("the drain's waiters are woken");
        booted.shutdown().await;
    }
}
