//! Accepting and serving connections: one path for plain and TLS connections, with the
//! deadlines that close connections which never speak or sit idle.
//!
//! A connection lives in its own task. Its deadlines:
//! - **first request**: the TLS handshake (if any), HTTP/2 preface or protocol detection
//!   and the first request's headers must arrive within `--header-timeout` of the accept;
//!   otherwise the connection is dropped. hyper itself has no deadline before it knows
//!   the protocol, so a client sending nothing, or half an HTTP/2 preface, would be kept
//!   forever.
//! - **idle**: with no request in flight for `--idle-timeout`, the connection is asked to
//!   close (HTTP/1.1: closed; HTTP/2: GOAWAY), also when the next request's headers have
//!   begun but not ended (hyper sees no request before its headers are complete); hyper
//!   pings HTTP/2 clients to find dead peers.
//! - **closing**: a connection asked to close that has no request in flight yet stays
//!   open for another `--header-timeout` is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::limits::{Caps, Throttle};
use crate::settings::ConnectionLimits;

/// A connection that became ready for requests (accepted, or TLS handshake done) this
/// recently when draining starts is served that long before it is asked to close: its
/// client has sent, or is about to send, its first request. Without it a connection whose
/// TLS handshake ends just as a SIGHUP hand-over drains would be closed (HTTP/2: before
/// its preface is read) and its request would fail.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The most a client may send before its request's headers are complete (HTTP/1.1: the
/// read buffer; HTTP/2: the header list). hyper's default buffer of ~400 KB let every
/// unfinished request pin that much memory; beyond this HTTP/1.1 answers 431.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How often an HTTP/2 connection is pinged; a peer that does not answer within the same
/// time is gone and its connection is closed.
const H2_PING_EVERY: Duration = Duration::from_secs(20);

/// The hyper connection builder with the limits above (the timeouts are [`drive`]'s).
pub(crate) fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // No header timer of hyper's: it armed a timer for every request head (~2% of a small
    // request's CPU), and [`drive`] already bounds a head that never completes: no request
    // in flight for `--idle-timeout`, then `--header-timeout` to close.
    builder.http1().header_read_timeout(None).max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_EVERY)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    builder
}

/// What an accept loop needs to serve a connection.
pub(crate) struct Conns {
    pub(crate) stack: crate::Stack,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) builder: Builder<TokioExecutor>,
    pub(crate) limits: ConnectionLimits,
    pub(crate) caps: Arc<Caps>,
    /// Every connection task holds a receiver (see [`super::serve`]).
    pub(crate) drain: Arc<Drain>,
    pub(crate) accept_errors: Arc<Throttle>,
}

/// Accepts connections until `stop`, each served in its own task.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    conns: Conns,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let stopped = async move {
        let _ = stop.wait_for(Option::is_some).await;
    };
    tokio::pin!(stopped);
    loop {
        let room = tokio::select! {
            room = conns.caps.room() => room,
            _ = &mut stopped => break,
        };
        let Some(room) = room else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, and say so at
                    // most once a second instead of flooding the log.
                    if let Some(suppressed) = conns.accept_errors.ready() {
                        tracing::warn!(suppressed, "accept failed: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let Some(slot) = conns.caps.admit(room, peer.ip()) else { continue };
        let accepted_at = Instant::now();
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            peer,
            accepted_at,
            stack: conns.stack.clone(),
            builder: conns.builder.clone(),
            limits: conns.limits,
            // Taken before the task starts: a drain signalled while the TLS handshake
            // runs still reaches this connection, and the drain waits for it.
            drain: conns.drain.subscribe(),
        };
        let tls = conns.tls.clone();
        tokio::spawn(async move {
            conn.run(stream, tls).await;
            drop(slot);
        });
    }
}

/// The signal that asks every open connection to close, and the count of open ones: each
/// connection task holds a [`DrainRx`] until it ends.
pub(crate) struct Drain {
    tx: watch::Sender<bool>,
    /// Set just before the signal is sent; see [`DrainRx::started`].
    started: Arc<AtomicBool>,
}

impl Drain {
    pub(crate) fn new() -> Drain {
        Drain { tx: watch::channel(false).0, started: Arc::new(AtomicBool::new(false)) }
    }

    fn subscribe(&self) -> DrainRx {
        DrainRx { rx: self.tx.subscribe(), started: self.started.clone() }
    }

    /// Connections still open.
    pub(crate) fn open(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Asks every open connection to close.
    pub(crate) fn start(&self) {
        self.started.store(true, Ordering::Release);
        self.tx.send_replace(true);
    }

    /// Resolves when every connection has ended.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A connection's end of [`Drain`].
struct DrainRx {
    rx: watch::Receiver<bool>,
    started: Arc<AtomicBool>,
}

impl DrainRx {
    /// Resolves once draining starts. The channel's `wait_for` locks its list of waiters on
    /// every poll, a lock all connections share, and a connection's task is polled at least
    /// once per request: here it is polled once to register for the wake-up, then only
    /// after `started` was set. The wake-up registered then stays good: [`drive`] runs in
    /// its connection's task, whose wakers all wake that task.
    async fn started(&mut self) {
        let started = &self.started;
        let mut wait = std::pin::pin!(self.rx.wait_for(|draining| *draining));
        let mut registered = false;
        std::future::poll_fn(|cx| {
            if registered && !started.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            registered = true;
            wait.as_mut().poll(cx).map(|_| ())
        })
        .await
    }
}

/// One accepted connection.
struct Connection {
    peer: std::net::SocketAddr,
    accepted_at: Instant,
    stack: crate::Stack,
    builder: Builder<TokioExecutor>,
    limits: ConnectionLimits,
    drain: DrainRx,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        match tls {
            None => self.serve(stream).await,
            // Boxed: the handshake's and rustls' state would otherwise make every plain
            // connection's task as large as a TLS one's.
            Some(acceptor) => Box::pin(self.handshake(stream, acceptor)).await,
        }
    }

    async fn handshake(self, stream: TcpStream, acceptor: TlsAcceptor) {
        let peer = self.peer;
        let deadline = self.accepted_at + self.limits.header_timeout;
        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.serve(tls).await,
            Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
            Err(_) => tracing::debug!("TLS handshake with {peer} timed out (--header-timeout)"),
        }
    }

    /// Serves HTTP/1.1 or HTTP/2 on `io` until the connection ends or a deadline closes it.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let activity = Arc::new(Activity::new(self.accepted_at));
        let tracked = activity.clone();
        // The connection's own stack, called in place: a clone per request would bump the
        // reference counts the server's other threads bump too.
        let stack = std::cell::RefCell::new(self.stack.for_peer(peer));
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                respond(&stack, &tracked, request.map(axum::body::Body::new))
            });
        // Pinned in place and driven through a reference: an `async fn` keeps its
        // arguments and the locals they are moved into, so passing the connection by value
        // stored it twice in every connection's task.
        let conn =
            std::pin::pin!(self.builder.serve_connection_with_upgrades(TokioIo::new(io), service));
        let ready_at = Instant::now();
        let deadlines = Deadlines { accepted_at: self.accepted_at, ready_at, limits: self.limits };
        if let Err(e) = drive(conn, self.drain, &activity, deadlines).await {
            tracing::debug!("connection from {peer}: {e}");
        }
    }
}

/// A request's response from the connection's stack, in flight until its body is sent (or
/// dropped): a long download or an event stream is not idle.
fn respond(
    stack: &std::cell::RefCell<crate::Stack>,
    activity: &Arc<Activity>,
    request: axum::extract::Request,
) -> Serving {
    let done = Some(activity.request_started());
    let response = stack.borrow_mut().serve(request);
    Serving { response, done }
}

pin_project_lite::pin_project! {
    /// [`respond`]'s future. Written out rather than as an `async` block: rustc lays an
    /// `async` block out with the future it captured and the one it awaits side by side,
    /// and hyper moves this future into the connection's slot for every request (720 bytes
    /// as a block, 360 as this: bench/README.md, step 55).
    struct Serving {
        #[pin]
        response: crate::http::StackFuture,
        done: Option<RequestDone>,
    }
}

impl std::future::Future for Serving {
    type Output = Result<hyper::Response<Tracked>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.response.poll(cx));
        let done = this.done.take().expect("Serving polled after it completed");
        Poll::Ready(response.map(|r| r.map(|body| Tracked { body, _done: done })))
    }
}

/// Requests on one connection, as seen by the service: how many are in flight (from the
/// request's headers to the last byte of its response) and when the last one ended.
struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `origin` of the last request's end; `u64::MAX` before the first
    /// request ends.
    last_ms: AtomicU64,
}

/// Ends a request in [`Activity`] when dropped: with its response body, or with the
/// response future when the request is abandoned before it has one.
struct RequestDone(Arc<Activity>);

impl Activity {
    fn new(origin: Instant) -> Activity {
        Activity { origin, in_flight: AtomicUsize::new(0), last_ms: AtomicU64::new(u64::MAX) }
    }

    fn request_started(self: &Arc<Self>) -> RequestDone {
        // No `touch` (a clock read per request): `last` is read only while nothing is in
        // flight, and by then the request's end has touched.
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestDone(self.clone())
    }

    fn touch(&self) {
        self.last_ms.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// When the last request ended; `None` before the first one ends.
    fn last(&self) -> Option<Instant> {
        match self.last_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.origin + Duration::from_millis(ms)),
        }
    }
}

/// A response body that ends its request in [`Activity`] when it is finished or dropped.
struct Tracked {
    body: axum::body::Body,
    _done: RequestDone,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

#[derive(Clone, Copy)]
struct Deadlines {
    accepted_at: Instant,
    /// When the connection became ready for requests (after the TLS handshake).
    ready_at: Instant,
    limits: ConnectionLimits,
}

/// Serves one connection until it ends, closing it when it misses a deadline (module
/// docs). Once draining starts it is asked to close gracefully (HTTP/1.1: after the
/// response in flight; HTTP/2: GOAWAY), after [`FIRST_REQUEST_GRACE`] if it only just
/// became ready.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    mut drain: DrainRx,
    activity: &Activity,
    at: Deadlines,
) -> Result<(), C::Error>
where
    C: GracefulConnection
        + std::future::Future<Output = Result<(), <C as GracefulConnection>::Error>>,
{
    let ConnectionLimits { header_timeout, idle_timeout, .. } = at.limits;
    let mut draining = false;
    let mut closing_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let check_at = match (closing_since, activity.last()) {
            _ if activity.busy() => now + idle_timeout,
            (Some(since), _) => since + header_timeout,
            // Nothing wakes this loop when the first request arrives, so with an idle
            // timeout shorter than the header timeout look again after the former.
            (None, None) => {
                let first_look = at.accepted_at + idle_timeout.min(header_timeout);
                if first_look > now { first_look } else { at.accepted_at + header_timeout }
            }
            (None, Some(last)) => last + idle_timeout,
        };
        let drain_close_at = at.ready_at + FIRST_REQUEST_GRACE;
        // Biased: the connection, which answers the requests, first; and no random number
        // per poll.
        tokio::select! {
            biased;
            result = conn.as_mut() => return result,
            _ = drain.started(), if !draining => draining = true,
            _ = tokio::time::sleep_until(drain_close_at),
                if draining && closing_since.is_none() =>
            {
                conn.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
            _ = tokio::time::sleep_until(check_at) => {
                if activity.busy() {
                    continue;
                }
                if closing_since.is_some() {
                    tracing::debug!("connection did not close when asked to; dropping it");
                    return Ok(());
                }
                match activity.last() {
                    None if Instant::now() >= at.accepted_at + header_timeout => {
                        tracing::debug!(
                            "no request within --header-timeout; closing the connection"
                        );
                        return Ok(());
                    }
                    None => {}
                    Some(last) if last + idle_timeout <= Instant::now() => {
                        tracing::debug!("no request for --idle-timeout; closing the connection");
                        conn.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;
    use crate::Stack;

    #[tokio::test]
    async fn a_requests_future_is_the_stacks_and_counts_it_in_flight_until_its_body_ends() {
        let stack = RefCell::new(Stack::plain(axum::Router::new()));
        let activity = Arc::new(Activity::new(Instant::now()));
        let future = respond(&stack, &activity, axum::extract::Request::new(Body::empty()));
        // hyper moves it into the connection's slot for every request: the stack's future
        // and the in-flight guard, nothing twice.
        let (size, stack_size) = (size_of_val(&future), size_of::<crate::http::StackFuture>());
        assert!(size <= stack_size + 16, "{size} bytes for a stack future of {stack_size}");
        assert!(activity.busy());
        let response = future.await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(activity.busy(), "in flight until its body is sent");
        assert_eq!(activity.last(), None);
        drop(response);
        assert!(!activity.busy());
        assert!(activity.last().is_some());
        // A request abandoned before its response (its client left) ends with its future.
        let abandoned = respond(&stack, &activity, axum::extract::Request::new(Body::empty()));
        assert!(activity.busy());
        drop(abandoned);
        assert!(!activity.busy());
    }
}
