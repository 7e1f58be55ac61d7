//! The core stack: what every request gets around the routes, as one tower service with
//! one future. Before the routes: the request id, the client's address
//! ([`ClientIp`](crate::ClientIp), and what trusted proxies forwarded: [`crate::proxy`]) and
//! the server's [`Services`] (templates, database, …), the id, the peer and the services in
//! one extension ([`Scope`]), with the request's session and CSRF state when the sessions
//! app is installed ([`CookieState`]); then `--rate-limit` (429) and the body-size limit
//! (413, [`body_limit`](super::body_limit)); then the routes, behind the CSRF app's check
//! for a request that may need it (an unsafe method, or a body), as they are for the others.
//! While they run: the request timeout (503) and the panic catcher (500). After them: the
//! session and CSRF cookies written back ([`CookieApps::end`]), the error page, the echoed
//! request id, the security headers, the access log line and `Connection: close` while
//! draining.
//!
//! One service rather than a tower layer for each of these: a layer's `call` moves the
//! request and its future moves the inner future into its own, and each of them then polls
//! the one below, so every layer costs every request a few hundred instructions and a wider
//! spread of code. The common path (a handler that answers, no error page) allocates only
//! the boxed [`After`]; the timer is armed only when the handler has to wait, and the rare
//! asynchronous work (an error page, `--dev`'s reload script) goes into a boxed future of
//! its own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use std::panic::{AssertUnwindSafe, catch_unwind};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::body_limit::Limits;
use super::errors::{self, Summary};
use super::security_headers::SecurityHeaders;
use super::{Draining, access_log, dev, request_id};
use crate::contrib::csrf;
use crate::contrib::session::{CookieApps, CookieState};
use crate::proxy::Proxies;
use crate::rate_limit::RateLimit;
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
    /// The session's and the CSRF app's cookies, with the sessions app: each request gets a
    /// [`CookieState`] in its [`Scope`], and its cookies are written back at its end.
    pub(crate) cookie_apps: Option<Arc<CookieApps>>,
}

impl Services {
    /// The server's services, in a request that went through the core layer.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Option<&Services> {
        Scope::of(extensions).map(|scope| &*scope.services)
    }
}

/// What the core stack needs and adds to every request.
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
    /// Added to every response that does not carry them yet.
    pub(crate) security_headers: SecurityHeaders,
    /// `--rate-limit` (429), which the health checks are exempt from.
    pub(crate) rate_limit: RateLimit,
    /// `--max-body-size` and `--upload-max-size` (413).
    pub(crate) body_limits: Limits,
}

/// Routes with axum's default body limit switched off.
type Unlimited = <DefaultBodyLimit as Layer<Router>>::Service;
type RoutesFuture = <Router as Service<Request>>::Future;

/// The core stack around the routes, as one service.
#[derive(Clone)]
pub(crate) struct CoreService {
    core: Arc<Core>,
    /// The connection's peer: each connection serves its own clone of the stack
    /// ([`Stack::for_peer`](super::Stack::for_peer)).
    peer: Option<std::net::SocketAddr>,
    /// The routes for a request with a safe method and without a body (most GETs), as the
    /// apps made them. Not the `checked` ones: the CSRF app's route layer would cost every
    /// GET a boxed service clone and a boxed future to find that a GET needs no check.
    /// Without axum's limit: switching it off puts an extension in the request, an
    /// allocation and a hash-table insert that a request without a body does not need.
    routes: Router,
    /// The routes behind the CSRF check (the same ones without the CSRF app), with axum's
    /// limit off (burrow's [`body_limit`](super::body_limit) is the limit), for every other
    /// request.
    checked: Unlimited,
}

impl CoreService {
    pub(crate) fn new(core: Core, routes: Router, checked: Router) -> CoreService {
        let checked = DefaultBodyLimit::disable().layer(checked);
        CoreService { core: Arc::new(core), peer: None, routes, checked }
    }

    pub(crate) fn set_peer(&mut self, peer: std::net::SocketAddr) {
        self.peer = Some(peer);
    }

    /// The rate limit's or the body limit's answer, when one of them refuses the request.
    fn refusal(&self, request: &mut Request) -> Option<Response> {
        match self.core.rate_limit.admit(request) {
            Ok(()) => self.core.body_limits.refusal(request),
            Err(too_many) => Some(too_many.into_response()),
        }
    }

    /// Calls the routes. A panic here is caught as one in the routes' future is (as
    /// tower-http's `CatchPanic` does both).
    fn call_routes(&mut self, request: Request) -> Answer {
        let (routes, checked) = (&mut self.routes, &mut self.checked);
        let called = catch_unwind(AssertUnwindSafe(|| {
            if csrf::is_safe(request.method()) && http_body::Body::is_end_stream(request.body()) {
                routes.call(request)
            } else {
                checked.call(request)
            }
        }));
        match called {
            Ok(future) => Answer::Running { future },
            Err(panic) => Answer::Ready { response: Some(super::panic_response(panic)) },
        }
    }
}

impl Service<Request> for CoreService {
    type Response = Response;
    type Error = Infallible;
    type Future = CoreFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.routes, cx)
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
        // Without a trusted proxy the client is the peer, which `ClientIp::of` falls back
        // to: one extension less (an allocation, and a request's map keeps room for at
        // most 3 without growing: tests/it/http.rs).
        if client.0 != canonical {
            extensions.insert(client);
        }
        if let Some(forwarded) = forwarded {
            extensions.insert(forwarded);
        }
        // After `Forwarded`, which says whether the cookies are the https ones.
        let cookie_apps = self.core.services.cookie_apps.as_ref();
        let cookies = cookie_apps.map(|apps| Arc::new(apps.begin(&request)));
        let services = self.core.services.clone();
        let scope = Scope { services, id, peer, cookies: cookies.clone() };
        request.extensions_mut().insert(scope);
        let core = self.core.clone();
        let after = Box::new(After { core, summary, start, http1, cookies });
        let answer = match self.refusal(&mut request) {
            None => self.call_routes(request),
            refused => Answer::Ready { response: refused },
        };
        CoreFuture { answer, timer: None, finishing: None, after: Some(after) }
    }
}

pin_project! {
    /// The routes' future, or an answer given without them (429, 413, a panic in `call`).
    #[project = AnswerProj]
    enum Answer {
        Running { #[pin] future: RoutesFuture },
        Ready { response: Option<Response> },
    }
}

pin_project! {
    pub(crate) struct CoreFuture {
        // Polled until it answers or the timer fires.
        #[pin]
        answer: Answer,
        // Armed on the first poll that has to wait.
        timer: Option<Pin<Box<Sleep>>>,
        // The rare asynchronous end (error page, `--dev` script), once it started.
        finishing: Option<Pin<Box<dyn Future<Output = Response> + Send>>>,
        // What the end needs; taken when the routes answered. Boxed: the summary is 344
        // bytes, and hyper moves this future into the connection's slot.
        after: Option<Box<After>>,
    }
}

impl Future for CoreFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(finishing) = this.finishing {
            return finishing.as_mut().poll(cx).map(Ok);
        }
        let after = this.after.as_mut().expect("CoreFuture polled after it completed");
        let response = match this.answer.project() {
            AnswerProj::Ready { response } => response.take().expect("answered once"),
            AnswerProj::Running { future } => {
                let (apps, cookies) = (&after.core.services.cookie_apps, &after.cookies);
                // The cookies' end runs inside the catch too: it is the routes' middleware.
                let polled = catch_unwind(AssertUnwindSafe(|| {
                    let Ok(response) = ready!(future.poll(cx));
                    Poll::Ready(match (apps, cookies) {
                        (Some(apps), Some(cookies)) => apps.end(cookies, response),
                        _ => response,
                    })
                }));
                match polled {
                    Ok(Poll::Ready(response)) => response,
                    Err(panic) => super::panic_response(panic),
                    Ok(Poll::Pending) => {
                        let deadline = after.start + after.core.request_timeout;
                        let timer = this.timer.get_or_insert_with(|| {
                            Box::pin(tokio::time::sleep_until(deadline.into()))
                        });
                        ready!(timer.as_mut().poll(cx));
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    }
                }
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
    /// The request's session and CSRF state, whose cookies the end writes back
    /// ([`CookieApps::end`]).
    cookies: Option<Arc<CookieState>>,
}

impl After {
    /// The end for a response that needs no error page and no script.
    fn finish(self, mut response: Response) -> Response {
        let security_headers = &self.core.security_headers;
        let head = self.summary.method == Method::HEAD;
        make_room(&mut response, 1 + security_headers.len(), head);
        if let Some(id) = &self.summary.request_id {
            request_id::echo(id, &mut response);
        }
        security_headers.add_missing(response.headers_mut());
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

/// Room in the response's header map for `adding` more headers (the id and the security
/// headers), and no more: reserving more would grow a map that fits them. A map's first
/// allocation holds 6 entries. axum's string and redirect responses arrive with two, their
/// own and the `Content-Length` axum adds, so the id and four security headers would make
/// 7 and grow the map (a new table, every entry hashed again: 718 instructions of a
/// plaintext request's 19,848, bench/README.md step 52). Then, when the length only repeats
/// the body's exact size, it goes: hyper writes that header itself for such a body (HTTP/1
/// and HTTP/2), and tower-http's compression takes the size from the body first. The answer
/// to a `HEAD` keeps it: its body is empty, its length the `GET`'s, which hyper does not
/// write. `Html` sizes its maps for 12, so a page's map has the room and is not looked at.
/// Not inlined: inlined, it changed what else the compiler inlined around it, and a page
/// ran 28–40 more lines of code (bench/README.md, step 54).
#[inline(never)]
fn make_room(response: &mut Response, adding: usize, head: bool) {
    let headers = response.headers();
    let (len, room) = (headers.len(), headers.capacity());
    if len + adding == room + 1 && !head {
        let exact = http_body::Body::size_hint(response.body()).exact();
        let given = headers.get(header::CONTENT_LENGTH).map(HeaderValue::as_bytes);
        let given = given.and_then(|bytes| std::str::from_utf8(bytes).ok()?.parse().ok());
        if given.is_some() && given == exact {
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
    }
    response.headers_mut().reserve(adding);
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::HeaderName;

    use super::*;

    /// A response as axum's routes give it: a body, `Content-Type`, `Content-Length`.
    fn response(body: &'static str, length: &str) -> Response {
        let mut response = Response::new(Body::from(body));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_str(length).unwrap());
        response
    }

    #[test]
    fn make_room_drops_only_a_length_that_repeats_the_body_and_would_grow_the_map() {
        // The id and four security headers: 2 + 5 would be one more than the 6 it holds.
        let mut small = response("Hello, World!", "13");
        let room = small.headers().capacity();
        make_room(&mut small, 5, false);
        assert_eq!(small.headers().get(header::CONTENT_LENGTH), None);
        for n in 0..5 {
            small.headers_mut().insert(format!("x-{n}").parse::<HeaderName>().unwrap(), 1.into());
        }
        assert_eq!(small.headers().capacity(), room, "the map did not grow");

        let kept_after = |mut response: Response, adding, head| {
            make_room(&mut response, adding, head);
            response.headers().get(header::CONTENT_LENGTH).cloned()
        };
        let kept = |response, adding| kept_after(response, adding, false);
        // The answer to a HEAD: no body, the GET's length, even when that is 0.
        assert_eq!(kept_after(response("", "13"), 5, true).unwrap(), "13");
        assert_eq!(kept_after(response("", "0"), 5, true).unwrap(), "0");
        assert_eq!(kept(response("", "0"), 5), None, "a GET's empty body: hyper writes 0");
        assert_eq!(kept(response("Hello", "13"), 5).unwrap(), "13", "not the body's size");
        assert_eq!(kept(response("Hello", "5"), 4).unwrap(), "5", "room enough");
        assert_eq!(kept(response("Hello", "5"), 6).unwrap(), "5", "would grow anyway");
        let mut streamed = response("", "5");
        *streamed.body_mut() = Body::new(Unsized);
        assert_eq!(kept(streamed, 5).unwrap(), "5", "a body of unknown size");
        let mut roomy = response("Hello", "5");
        roomy.headers_mut().reserve(12);
        assert_eq!(kept(roomy, 5).unwrap(), "5", "a map sized by `Html`");
    }

    /// A body whose size is not known in advance (a stream).
    struct Unsized;

    impl http_body::Body for Unsized {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
            Poll::Ready(None)
        }
    }
}
