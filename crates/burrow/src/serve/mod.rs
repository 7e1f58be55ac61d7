//! Listening and serving: listeners created by the framework, our own accept loop on
//! hyper-util, graceful shutdown.
//!
//! Listeners are plain `std` sockets created before serving (so a restarted process can
//! inherit them); [`serve`] runs one accept loop per listener until the shutdown signal,
//! then drains in-flight requests up to the shutdown timeout.

pub(crate) mod notify;
pub(crate) mod pidfile;
pub(crate) mod restart;
pub(crate) mod run;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// The client address of a request (in request extensions).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Where to bind for a host: loopback for local names, all interfaces for an empty host
/// or a domain (whose address may be a router's), the address itself for an IP.
pub(crate) fn bind_addrs(host: &str, port: u16) -> Vec<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    if bare == "localhost" || bare.ends_with(".localhost") {
        return vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)];
    }
    vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port), SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)]
}

/// Binds the first address that works: `[::]` (dual-stack) falls back to `0.0.0.0` on
/// hosts without IPv6.
pub(crate) fn bind(addrs: &[SocketAddr]) -> std::io::Result<std::net::TcpListener> {
    let mut last = None;
    for addr in addrs {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let attempt = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(*addr)?;
            let listener = s.listen(1024)?;
            listener.into_std()
        });
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to bind")))
}

/// The listening sockets: handed over by the previous process on a restart, passed by
/// systemd (socket activation), or bound here.
pub(crate) fn listeners(inherited: &[i32], settings: &crate::Settings) -> Result<Vec<std::net::TcpListener>, String> {
    let adopt = |fds: &[i32], source: &str| -> Result<Vec<std::net::TcpListener>, String> {
        #[cfg(unix)]
        {
            use std::os::fd::FromRawFd;
            fds.iter()
                .map(|&fd| {
                    // SAFETY: the fd was handed to this process to own, and is used once.
                    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                    listener.local_addr().map(|_| listener).map_err(|e| format!("fd {fd} from {source} is not a listening socket: {e}"))
                })
                .collect()
        }
        #[cfg(not(unix))]
        {
            let _ = (fds, source);
            Ok(Vec::new())
        }
    };
    if !inherited.is_empty() {
        let listeners = adopt(inherited, "the previous process")?;
        tracing::info!("inherited {} listeners", listeners.len());
        return Ok(listeners);
    }
    let activated = notify::activated_fds();
    if !activated.is_empty() {
        let listeners = adopt(&activated, "systemd (LISTEN_FDS)")?;
        tracing::info!("socket activation: {} listeners from systemd", listeners.len());
        return Ok(listeners);
    }
    let listener = bind(&bind_addrs(&settings.host, settings.port))
        .map_err(|e| format!("cannot listen on {}:{} (--host, --port): {e}", settings.host, settings.port))?;
    Ok(vec![listener])
}

/// Tells the accept loops to stop, and whether responses should close their connection.
#[derive(Clone)]
pub(crate) struct Stop {
    stop: watch::Sender<Option<Duration>>,
    draining: Draining,
}

/// Set while the server drains: HTTP/1.1 responses then carry `Connection: close`, so
/// keep-alive clients open their next connection to the successor.
#[derive(Clone, Default)]
pub(crate) struct Draining(Arc<AtomicBool>);

impl Draining {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Stop {
    pub(crate) fn new(draining: Draining) -> Stop {
        Stop { stop: watch::channel(None).0, draining }
    }

    /// Stops accepting. With `grace`, already-open connections are kept serving (with
    /// `Connection: close`) that long before idle ones are closed: requests a client had
    /// already sent on them still get answers, instead of failing mid-hand-over.
    pub(crate) fn trigger(&self, grace: Duration) {
        self.draining.0.store(true, Ordering::Relaxed);
        self.stop.send_replace(Some(grace));
    }
}

/// Serves `router` on `listeners` until `stop` is triggered, then waits for in-flight
/// requests up to `drain`. Returns the number of connections cut off at the deadline.
pub(crate) async fn serve(listeners: Vec<std::net::TcpListener>, router: Router, stop: Stop, drain: Duration) -> std::io::Result<usize> {
    let graceful = Arc::new(GracefulShutdown::new());
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    let mut loops = Vec::new();
    for listener in listeners {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        loops.push(tokio::spawn(accept_loop(listener, router.clone(), builder.clone(), graceful.clone(), stop.stop.subscribe())));
    }
    let mut rx = stop.stop.subscribe();
    let grace = match rx.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or_default(),
        Err(_) => Duration::ZERO,
    };
    for l in loops {
        let _ = l.await;
    }
    let deadline = tokio::time::Instant::now() + drain;
    if !grace.is_zero() {
        tokio::time::sleep(grace.min(drain)).await;
    }
    let graceful = Arc::try_unwrap(graceful).map_err(|_| std::io::Error::other("accept loops still hold connections"))?;
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, "draining in-flight connections");
    }
    tokio::select! {
        _ = graceful.shutdown() => Ok(0),
        _ = tokio::time::sleep_until(deadline) => {
            tracing::warn!(timeout_s = drain.as_secs_f64(), "shutdown timeout reached; closing remaining connections");
            Ok(open)
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    builder: Builder<TokioExecutor>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let stopped = async move {
        let _ = stop.wait_for(Option::is_some).await;
    };
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// The signals a server acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Hangup,
    Terminate,
    Interrupt,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "SIGHUP",
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }
}

/// Signal handlers, installed before the server is ready so a signal sent right after
/// `ready` is never the default action (which would kill the process).
pub(crate) struct Signals {
    #[cfg(unix)]
    streams: [(Signal, tokio::signal::unix::Signal); 3],
}

impl Signals {
    /// Must be called inside the runtime.
    pub(crate) fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                streams: [
                    (Signal::Hangup, signal(SignalKind::hangup())?),
                    (Signal::Terminate, signal(SignalKind::terminate())?),
                    (Signal::Interrupt, signal(SignalKind::interrupt())?),
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    pub(crate) async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let [(a, sa), (b, sb), (c, sc)] = &mut self.streams;
            tokio::select! {
                _ = sa.recv() => *a,
                _ = sb.recv() => *b,
                _ = sc.recv() => *c,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}
