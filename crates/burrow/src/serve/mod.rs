//! Listening and serving: listeners created by the framework, our own accept loop on
//! hyper-util, graceful shutdown.
//!
//! Listeners are plain `std` sockets created before serving (so a restarted process can
//! inherit them); [`serve`] runs one accept loop per listener until the shutdown signal,
//! then drains in-flight requests up to the shutdown timeout.

pub(crate) mod pidfile;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
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

/// A handle that tells the accept loops to stop.
#[derive(Clone)]
pub(crate) struct Stop(watch::Sender<bool>);

impl Stop {
    pub(crate) fn new() -> Stop {
        Stop(watch::channel(false).0)
    }

    pub(crate) fn trigger(&self) {
        self.0.send_replace(true);
    }

    async fn wait(mut rx: watch::Receiver<bool>) {
        let _ = rx.wait_for(|stop| *stop).await;
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
        loops.push(tokio::spawn(accept_loop(listener, router.clone(), builder.clone(), graceful.clone(), stop.0.subscribe())));
    }
    for l in loops {
        let _ = l.await;
    }
    let graceful = Arc::try_unwrap(graceful).map_err(|_| std::io::Error::other("accept loops still hold connections"))?;
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, "draining in-flight connections");
    }
    tokio::select! {
        _ = graceful.shutdown() => Ok(0),
        _ = tokio::time::sleep(drain) => {
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
    stop: watch::Receiver<bool>,
) {
    let stopped = Stop::wait(stop);
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

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
pub(crate) async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
