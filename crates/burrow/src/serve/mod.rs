//! Listening and serving: listeners created by the framework, our own accept loop on
//! hyper-util, graceful shutdown.
//!
//! Listeners are plain `std` sockets created before serving (so a restarted process can
//! inherit them), each with a [`Role`]; [`serve`] runs one accept loop per listener until
//! the shutdown signal, then drains in-flight requests up to the shutdown timeout. Each
//! connection is served in its own task ([`conn`]: the TLS handshake too, so one slow
//! client cannot hold up the others), under the deadlines and caps of [`limits`].

mod conn;
pub(crate) mod limits;
pub(crate) mod notify;
pub(crate) mod pidfile;
pub(crate) mod restart;
pub(crate) mod run;
pub(crate) mod tls;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::http::Draining;
use crate::settings::{ConnectionLimits, Host, TlsMode};

/// What a listening socket is for. Carried through the SIGHUP hand-over, so the successor
/// serves each inherited socket the way its predecessor did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The site: HTTPS or plain HTTP as the TLS mode says.
    App,
    /// acme mode's HTTP port: HTTP-01 challenges, and a redirect to https for the rest.
    AcmeHttp,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::AcmeHttp => "acme-http",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Role> {
        match name {
            "app" => Some(Role::App),
            "acme-http" => Some(Role::AcmeHttp),
            _ => None,
        }
    }
}

/// A listening socket and its role.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) socket: std::net::TcpListener,
    pub(crate) role: Role,
}

/// A listener ready to serve: the stack behind it and, for HTTPS, the TLS acceptor.
pub(crate) struct Endpoint {
    pub(crate) socket: std::net::TcpListener,
    pub(crate) stack: crate::Stack,
    pub(crate) tls: Option<TlsAcceptor>,
}

/// Where to bind for a host: loopback for local names, all interfaces for an empty host
/// or a domain (whose address may be a router's), the address itself for an IP.
pub(crate) fn bind_addrs(host: &Host, port: u16) -> Vec<SocketAddr> {
    match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Domain(_) if host.is_local() => {
            vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]
        }
        Host::Domain(_) | Host::Any => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ],
    }
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
/// systemd (socket activation), or bound here. In acme mode there are two (HTTPS on
/// `--tls-https-port` and HTTP on `--tls-http-port`); otherwise one on `--port`. A role the
/// mode needs but nobody handed over (e.g. the TLS mode changed before a SIGHUP) is bound
/// here; a handed-over listener the mode has no use for is closed.
pub(crate) fn listeners(
    inherited: &[(i32, Role)],
    settings: &crate::Settings,
) -> Result<Vec<Listener>, String> {
    let adopt = |fds: &[(i32, Role)], source: &str| -> Result<Vec<Listener>, String> {
        #[cfg(unix)]
        {
            use std::os::fd::FromRawFd;
            fds.iter()
                .map(|&(fd, role)| {
                    // SAFETY: the fd was handed to this process to own, and is used once.
                    let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                    socket.local_addr().map(|_| Listener { socket, role }).map_err(|e| {
                        format!("fd {fd} from {source} is not a listening socket: {e}")
                    })
                })
                .collect()
        }
        #[cfg(not(unix))]
        {
            let _ = (fds, source);
            Ok(Vec::new())
        }
    };
    let acme = settings.tls.mode == TlsMode::Acme;
    let mut listeners = if !inherited.is_empty() {
        let listeners = adopt(inherited, "the previous process")?;
        tracing::info!("inherited {} listeners", listeners.len());
        listeners
    } else {
        let activated = notify::activated_fds();
        if activated.is_empty() {
            Vec::new()
        } else {
            // LISTEN_FDNAMES (FileDescriptorName= in the .socket unit) may name the acme one.
            let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
                .unwrap_or_default()
                .split(':')
                .map(str::to_string)
                .collect();
            let fds: Vec<(i32, Role)> = activated
                .iter()
                .enumerate()
                .map(|(i, &fd)| {
                    (
                        fd,
                        if names.get(i).is_some_and(|n| n == "acme-http") {
                            Role::AcmeHttp
                        } else {
                            Role::App
                        },
                    )
                })
                .collect();
            let listeners = adopt(&fds, "systemd (LISTEN_FDS)")?;
            tracing::info!("socket activation: {} listeners from systemd", listeners.len());
            listeners
        }
    };
    if !acme && listeners.iter().any(|l| l.role == Role::AcmeHttp) {
        tracing::info!("closing the inherited ACME HTTP listener: the TLS mode is no longer acme");
        listeners.retain(|l| l.role == Role::App);
    }
    let wanted: &[(Role, u16, &str)] = if acme {
        &[
            (Role::App, settings.tls.https_port, "--tls-https-port"),
            (Role::AcmeHttp, settings.tls.http_port, "--tls-http-port"),
        ]
    } else {
        &[(Role::App, settings.port, "--port")]
    };
    for &(role, port, flag) in wanted {
        if listeners.iter().any(|l| l.role == role) {
            continue;
        }
        let socket = bind(&bind_addrs(&settings.host, port)).map_err(|e| {
            format!("cannot listen on {}:{port} (--host, {flag}): {e}", settings.host)
        })?;
        listeners.push(Listener { socket, role });
    }
    Ok(listeners)
}

/// Tells the accept loops to stop, and whether responses should close their connection.
#[derive(Clone)]
pub(crate) struct Stop {
    stop: watch::Sender<Option<Duration>>,
    draining: Draining,
}

impl Stop {
    pub(crate) fn new(draining: Draining) -> Stop {
        Stop { stop: watch::channel(None).0, draining }
    }

    /// Stops accepting. With `grace`, already-open connections are kept serving (with
    /// `Connection: close`) that long before idle ones are closed: requests a client had
    /// already sent on them still get answers, instead of failing mid-hand-over.
    pub(crate) fn trigger(&self, grace: Duration) {
        self.draining.set();
        self.stop.send_replace(Some(grace));
    }
}

/// Serves each endpoint until `stop` is triggered, then waits for in-flight requests up
/// to `drain`. Returns the number of connections cut off at the deadline.
pub(crate) async fn serve(
    endpoints: Vec<Endpoint>,
    stop: Stop,
    drain: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<usize> {
    // Every connection task holds a receiver, until it ends.
    let closing = Arc::new(conn::Drain::new());
    let builder = conn::builder();
    // One cap for all listeners: they share the process's file descriptors.
    let max = limits::effective_max(limits.max, limits::raise_open_files_limit());
    let caps = Arc::new(limits::Caps::new(&limits, max));
    let accept_errors = Arc::new(limits::Throttle::default());
    let mut loops = Vec::new();
    for endpoint in endpoints {
        endpoint.socket.set_nonblocking(true)?;
        let listener = TcpListener::from_std(endpoint.socket)?;
        let conns = conn::Conns {
            stack: endpoint.stack,
            tls: endpoint.tls,
            builder: builder.clone(),
            limits,
            caps: caps.clone(),
            drain: closing.clone(),
            accept_errors: accept_errors.clone(),
        };
        loops.push(tokio::spawn(conn::accept_loop(listener, conns, stop.stop.subscribe())));
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
    let closing = Arc::try_unwrap(closing)
        .map_err(|_| std::io::Error::other("accept loops still hold connections"))?;
    let open = closing.open();
    if open > 0 {
        tracing::info!(connections = open, "draining in-flight connections");
    }
    closing.start();
    tokio::select! {
        _ = closing.closed() => Ok(0),
        _ = tokio::time::sleep_until(deadline) => {
            tracing::warn!(
                timeout_s = drain.as_secs_f64(),
                "shutdown timeout reached; closing remaining connections"
            );
            Ok(open)
        }
    }
}

/// Runs blocking work (file I/O with its fsyncs, `flock`) on the blocking pool: on a
/// runtime thread it would stall every connection that thread serves. A panic in it is
/// resumed here, as if the work had run inline.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels blocking work, and it no longer polls
            // the task awaiting it.
            Err(e) => panic!("blocking work did not run: {e}"),
        },
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
