//! The core layer: what every request gets around the routes. Before them: the request
//! id, the client's address ([`ClientIp`](crate::ClientIp), and what trusted proxies
//! forwarded: [`crate::proxy`]) and the server's [`Services`] (templates, database, …),
//! the id, the peer and the services in one extension ([`Scope`]).
//! While they run: the request timeout (503).
//! After them: the error page, the echoed request id, the access log line and
//! `Connection: close` while draining.
//!
//! A tower service with its own future rather than an async function under `from_fn`:
//! the common path (a handler that answers, no error page) allocates nothing here, where
//! `from_fn` boxed a 2 KiB future and a clone of the service below on every request. The
//! timer is armed only when the handler has to wait, and the rare asynchronous work (an
//! error page, `--dev`'s reload script) goes into a boxed future of its own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::errors::{self, Summary};
use super::{Draining, access_log, dev, request_id};
use crate::proxy::Proxies;
use crate::request::{PeerAddr, Scope};
use crate::template::Templates;

/// What the server hands its handlers' extractors (`Db`, `Render`, `Storage`, `Jobs`,
/// `Sse`, …): one value for the server, shared by every request's [`Scope`].
pub(crate) struct Services {
    pub(crate) templates: Templates,
    pub(crate) db: crate::Db,
    /// The job queue, for the `Jobs` extractor; `None` without the `jobs` app.
    pub(crate) jobs: Option<crate::jobs::Jobs>,
    /// Uploaded files, for the `Storage` extractor.
    pub(crate) storage: crate::Storage,
    /// Event streams' settings and caps, for the `Sse` extractor.
    pub(crate) streams: Arc<crate::live::Streams>,
}

impl Services {
    /// The server's services, in a request that went through the core layer.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Option<&Services> {
        Scope::of(extensions).map(|scope| &*scope.services)
    }
}

/// What the core layer needs and adds to every request.
pub(crate) struct Core {
    pub(crate) services: Arc<Services>,
    pub(crate) draining: Draining,
    /// `--trusted-proxies` and `--client-ip-mode`.
    pub(crate) proxies: Proxies,
    /// `--request-timeout`: a handler still running then is answered 503.
    pub(crate) request_timeout: Duration,
    /// `--dev`: pages get the reload script, and the access log is one readable line with
    /// the duration.
    pub(crate) dev: bool,
    /// How many headers the layers outside add to every response (the security headers).
    pub(crate) headers_outside: usize,
}

#[derive(Clone)]
pub(crate) struct CoreLayer(pub(crate) Arc<Core>);

impl<S> Layer<S> for CoreLayer {
    type Service = CoreService<S>;

    fn layer(&self, inner: S) -> CoreService<S> {
        CoreService { core: self.0.clone(), peer: None, inner }
    }
}

#[derive(Clone)]
pub(crate) struct CoreService<S> {
    core: Arc<Core>,
    /// The connection's peer: each connection serves its own clone of the stack
    /// ([`Stack::for_peer`](super::Stack::for_peer)).
    peer: Option<std::net::SocketAddr>,
    inner: S,
}

impl<S> CoreService<S> {
    pub(crate) fn set_peer(&mut self, peer: std::net::SocketAddr) {
        self.peer = Some(peer);
    }
}

impl<S, R> Service<Request> for CoreService<S>
where
    S: Service<Request, Response = R, Error = Infallible>,
    R: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CoreFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let start = Instant::now();
        let http1 = request.version() <= Version::HTTP_11;
        // A request built in-process may bring its peer as an extension.
        let peer = self.peer.or_else(|| PeerAddr::of(request.extensions()));
        let ip = peer.map(|addr| addr.ip());
        let (client, forwarded) = self.core.proxies.resolve(ip, request.headers());
        let canonical = ip.map(|ip| ip.to_canonical());
        let from_header = |given: Option<&HeaderValue>| Some(request_id::from_header(given));
        let summary = Summary::with(&request, from_header, client.0, canonical);
        let id = summary.request_id.clone().expect("the summary was given an id");
        let extensions = request.extensions_mut();
        let services = self.core.services.clone();
        extensions.insert(Scope { services, id, peer });
        // Without a trusted proxy the client is the peer, which `ClientIp::of` falls back
        // to: one extension less (the map then fits the common request without growing
        // a third time).
        if client.0 != canonical {
            extensions.insert(client);
        }
        if let Some(forwarded) = forwarded {
            extensions.insert(forwarded);
        }
        CoreFuture {
            inner: self.inner.call(request),
            timer: None,
            finishing: None,
            after: Some(Box::new(After { core: self.core.clone(), summary, start, http1 })),
        }
    }
}

pin_project! {
    pub(crate) struct CoreFuture<F> {
        // The routes' future, polled until it answers or the timer fires.
        #[pin]
        inner: F,
        // Armed on the first poll that has to wait.
        timer: Option<Pin<Box<Sleep>>>,
        // The rare asynchronous end (error page, `--dev` script), once it started.
        finishing: Option<Pin<Box<dyn Future<Output = Response> + Send>>>,
        // What the end needs; taken when the routes answered. Boxed: the summary is 344
        // bytes, and each layer above moves this future into its own.
        after: Option<Box<After>>,
    }
}

impl<F, R> Future for CoreFuture<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(finishing) = this.finishing {
            return finishing.as_mut().poll(cx).map(Ok);
        }
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response.into_response(),
            Poll::Pending => {
                let after = this.after.as_ref().expect("CoreFuture polled after it completed");
                let deadline = after.start + after.core.request_timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                ready!(timer.as_mut().poll(cx));
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        };
        let after = this.after.take().expect("CoreFuture polled after it completed");
        if !after.core.dev && !errors::needs_render(&response) {
            return Poll::Ready(Ok(after.finish(response)));
        }
        let mut finishing = Box::pin(after.finish_rendered(response));
        let polled = finishing.as_mut().poll(cx);
        *this.finishing = Some(finishing);
        polled.map(Ok)
    }
}

/// The request as the end of the core layer needs it.
struct After {
    core: Arc<Core>,
    summary: Summary,
    start: Instant,
    http1: bool,
}

impl After {
    /// The end for a response that needs no error page and no script.
    fn finish(self, mut response: Response) -> Response {
        // Room for the id and the headers added outside, and no more: a small response's
        // map then keeps its first allocation (6 entries, 624 bytes) instead of moving to a
        // 1,248-byte one (with glibc's allocator, one from the locked arena).
        response.headers_mut().reserve(1 + self.core.headers_outside);
        if let Some(id) = &self.summary.request_id {
            request_id::echo(id, &mut response);
        }
        if self.core.dev {
            dev::log_request(&self.summary, &response, self.start);
        } else {
            access_log::log(&self.summary, &response, self.start);
        }
        if self.http1 && self.core.draining.is_set() {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// The end with the error page rendered and, with `--dev`, the reload script added
    /// (error pages get it too, so fixing a broken template reloads the page that showed
    /// the error).
    async fn finish_rendered(self, response: Response) -> Response {
        let templates = &self.core.services.templates;
        let mut response = errors::render(&self.summary, Some(templates), response).await;
        if self.core.dev {
            response = dev::inject_script(response).await;
        }
        self.finish(response)
    }
}
