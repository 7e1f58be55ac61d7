//! A serving process from ready to exit: signals, SIGHUP hand-over, graceful shutdown.
//!
//! The server hands [`run`] what it serves as plain values (a [`Site`]), so serve/ knows
//! nothing of apps, the database or the HTTP middleware; failures come back as a
//! [`RunError`] for the server to turn into its exit code.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use super::pidfile::PidFile;
use super::restart::{Failure, Inherited, Mode, start_successor};
use super::tls::Tls;
use super::{Endpoint, Listener, Role, Signal, Signals, Stop, blocking, notify, serve};
use crate::Stack;
use crate::http::Draining;
use crate::lifecycle::Lifecycle;
use crate::settings::Settings;

/// How long the old process keeps its open connections serving (with `Connection: close`)
/// after a hand-over, before closing idle ones: requests already sent on them are answered.
const HANDOVER_GRACE: Duration = Duration::from_millis(500);

/// The least time the database gets to close after draining, even when draining used up
/// the shutdown timeout: interrupted statements end within milliseconds.
const MIN_CLOSE_GRACE: Duration = Duration::from_millis(200);

/// What a server serves and how it closes, built by the server from its booted apps.
pub(crate) struct Site<F> {
    pub(crate) settings: Arc<Settings>,
    /// Served on every app listener.
    pub(crate) stack: Stack,
    /// Served on acme mode's HTTP port (challenge answers, the redirect to https), already
    /// wrapped by the server in the headers every response gets; `None` in other modes.
    pub(crate) acme_stack: Option<Stack>,
    /// Set when draining starts; the server's middleware then closes keep-alive connections.
    pub(crate) draining: Draining,
    /// Told when this process serves and when it starts draining (apps' background work).
    pub(crate) lifecycle: Lifecycle,
    /// Closes what the server opened (shutdown hooks, the database), waiting at most the
    /// grace it is given for database work still running.
    pub(crate) close: F,
}

/// Why serving could not start, or a detached server failed to.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The listening sockets could not be duplicated for a later hand-over.
    Listeners(io::Error),
    /// The PID file could not be written: a problem of the environment, as a bad setting is.
    PidFile { path: PathBuf, error: io::Error },
    /// The detached server exited with this code before it was ready, having said why.
    DetachedExited { code: u8 },
    /// The detached server could not be started, or was not ready in time.
    Detach(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Listeners(e) => write!(f, "{e}"),
            RunError::PidFile { path, error } => {
                write!(f, "cannot write PID file {}: {error}", path.display())
            }
            RunError::DetachedExited { .. } => Ok(()),
            RunError::Detach(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for RunError {}

/// How serving ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// SIGINT or SIGTERM.
    Stopped,
    /// A successor started on SIGHUP is ready and serves the same sockets.
    HandedOver,
}

/// A successor being started on SIGHUP: its PID once it is ready.
type Successor = JoinHandle<Result<u32, Failure>>;

/// Serves until SIGINT/SIGTERM, or until a successor started on SIGHUP is ready; then
/// drains, closes the site and removes the PID file if it is ours.
pub(crate) async fn run<F, C>(
    site: Site<F>,
    listeners: Vec<Listener>,
    tls: Tls,
    mut signals: Signals,
    mut inherited: Inherited,
    mode: Mode,
) -> Result<(), RunError>
where
    F: FnOnce(Duration) -> C,
    C: Future<Output = ()>,
{
    let Site { settings, stack, acme_stack, draining, lifecycle, close } = site;
    log_modes(&mode, &settings);
    let handover = handover_copies(&listeners).map_err(RunError::Listeners)?;
    let endpoints = endpoints(listeners, &tls, &stack, acme_stack.as_ref(), &settings);
    let stop = Stop::new(draining);
    let server = tokio::spawn(serve(
        endpoints,
        stop.clone(),
        settings.shutdown_timeout,
        settings.connections,
    ));
    // Ready does not wait for a first ACME certificate (docs/tls.md): the challenge port
    // must be served for the CA to validate, and this process is the one serving it.
    let acme = tls.acme.map(|acme| tokio::spawn(acme.run()));
    let pid_file = announce_ready(&settings, &mut inherited).await?;
    lifecycle.set_serving();
    let ending = wait_for_end(&mut signals, &inherited, &mode, &handover, &settings).await;
    if let Some(acme) = &acme {
        // An order in progress is abandoned; the lock dies with it, the successor (if
        // any) takes over renewals.
        acme.abort();
    }
    let drained =
        drain_and_close(stop, server, close, &lifecycle, settings.shutdown_timeout, ending);
    tokio::pin!(drained);
    // The handlers stay installed until exit (the default action would kill a process that
    // is still finishing requests): say that a signal changes nothing now.
    loop {
        tokio::select! {
            () = &mut drained => break,
            signal = signals.next() => tracing::info!(
                "{} ignored: this process is already {}",
                signal.name(),
                match ending {
                    Ending::HandedOver => "handing over to a new one and draining",
                    Ending::Stopped => "shutting down",
                }
            ),
        }
    }
    drop(handover);
    if let Some(pid_file) = pid_file {
        blocking(move || pid_file.remove()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Logs how this process handles SIGHUP, TLS and proxies: what an operator looks up first
/// when a reload, a certificate or a client's address is not what they expected.
fn log_modes(mode: &Mode, settings: &Settings) {
    match mode {
        Mode::Restart { exe } => {
            tracing::info!(
                mode = "restart",
                exe = %exe.display(),
                "process mode: SIGHUP restarts without downtime"
            )
        }
        Mode::Simple { reason } => {
            tracing::info!(
                mode = "simple",
                reason = %reason,
                "process mode: graceful restart disabled"
            )
        }
    }
    tracing::info!(tls = settings.tls.mode.as_str(), reason = %settings.tls.reason, "TLS mode");
    let proxies = &settings.proxies;
    if !proxies.trusted.is_empty() {
        let trusted: Vec<String> = proxies.trusted.iter().map(ToString::to_string).collect();
        tracing::info!(
            client_ip_mode = proxies.mode.as_str(),
            trusted_proxies = %trusted.join(","),
            "forwarding headers believed from the trusted proxies"
        );
    }
}

/// Duplicates of the listening sockets (with their roles), kept to hand to a successor:
/// the originals go to the accept loops, which close them when draining starts.
fn handover_copies(listeners: &[Listener]) -> io::Result<Vec<Listener>> {
    listeners
        .iter()
        .map(|l| l.socket.try_clone().map(|socket| Listener { socket, role: l.role }))
        .collect()
}

/// Pairs each listener with what it serves: acme mode's HTTP port the ACME router, every
/// other one the site (over TLS when the mode has it). Logs the addresses, which is how an
/// operator learns a port picked by the system.
fn endpoints(
    listeners: Vec<Listener>,
    tls: &Tls,
    stack: &Stack,
    acme_stack: Option<&Stack>,
    settings: &Settings,
) -> Vec<Endpoint> {
    let scheme = if tls.acceptor.is_some() { "https" } else { "http" };
    listeners
        .into_iter()
        .map(|listener| {
            let addr = listener.socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
            match (listener.role, acme_stack) {
                (Role::AcmeHttp, Some(acme_stack)) => {
                    tracing::info!(
                        addr = %addr,
                        "listening on http://{addr} (ACME HTTP-01 challenges; redirect to https)"
                    );
                    Endpoint { socket: listener.socket, stack: acme_stack.clone(), tls: None }
                }
                _ => {
                    tracing::info!(
                        addr = %addr,
                        base_url = %settings.base_url,
                        "listening on {scheme}://{addr}"
                    );
                    Endpoint {
                        socket: listener.socket,
                        stack: stack.clone(),
                        tls: tls.acceptor.clone(),
                    }
                }
            }
        })
        .collect()
}

/// Writes the PID file, then tells whoever waits for this process (the process that started
/// it, or systemd) that it is ready: once told, a supervisor finds the PID file in place.
async fn announce_ready(
    settings: &Settings,
    inherited: &mut Inherited,
) -> Result<Option<PidFile>, RunError> {
    let pid_file = match settings.pid_file.clone() {
        Some(path) => Some(
            blocking(move || {
                PidFile::write(&path).map_err(|error| RunError::PidFile { path, error })
            })
            .await?,
        ),
        None => None,
    };
    tracing::info!(pid = std::process::id(), database = %settings.database, "ready");
    if inherited.has_starter() {
        // The starting process tells systemd about us (MAINPID) once it hears this.
        inherited.signal_ready();
    } else {
        notify::notify("READY=1");
    }
    Ok(pid_file)
}

/// Waits for the end of serving (the accept loops run in their own task): a stop signal,
/// or a successor started on SIGHUP being ready. A successor still starting when a stop
/// signal arrives is killed: it must not outlive this process half-started.
async fn wait_for_end(
    signals: &mut Signals,
    inherited: &Inherited,
    mode: &Mode,
    handover: &[Listener],
    settings: &Settings,
) -> Ending {
    let mut successor: Option<Successor> = None;
    let ending = loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Hangup => {
                    let restarting = successor.is_some();
                    if let Some(started) =
                        on_hangup(mode, restarting, inherited, handover, settings.restart_timeout)
                    {
                        successor = Some(started);
                    }
                }
                other => {
                    tracing::info!(
                        drain_timeout_s = settings.shutdown_timeout.as_secs_f64(),
                        "{} received; shutting down",
                        other.name()
                    );
                    break Ending::Stopped;
                }
            },
            result = async { successor.as_mut().expect("guarded").await },
                if successor.is_some() =>
            {
                successor = None;
                if successor_ready(result) {
                    break Ending::HandedOver;
                }
            }
        }
    };
    if let Some(pending) = successor {
        pending.abort();
    }
    ending
}

/// SIGHUP: starts a successor on the listening sockets, unless restarts are disabled, one
/// is already starting, or this process's own predecessor is still draining (its
/// hand-over is not over yet).
fn on_hangup(
    mode: &Mode,
    restarting: bool,
    inherited: &Inherited,
    handover: &[Listener],
    timeout: Duration,
) -> Option<Successor> {
    let exe = match mode {
        Mode::Simple { reason } => {
            tracing::info!("SIGHUP ignored: graceful restart is disabled ({reason})");
            return None;
        }
        Mode::Restart { .. } if restarting => {
            tracing::info!("SIGHUP ignored: a restart is already in progress");
            return None;
        }
        Mode::Restart { .. } if inherited.parent_draining() => {
            tracing::info!("SIGHUP ignored: the previous process is still draining");
            return None;
        }
        Mode::Restart { exe } => exe.clone(),
    };
    tracing::info!("SIGHUP received; starting a new process");
    notify::reloading();
    let fds = raw_fds(handover);
    Some(tokio::spawn(async move { start_successor(&exe, &fds, timeout, false).await }))
}

/// Whether the successor is ready and serving. When it failed, this process keeps serving
/// and tells systemd it is ready again (it had said RELOADING=1).
fn successor_ready(result: Result<Result<u32, Failure>, JoinError>) -> bool {
    let failure = match result {
        Ok(Ok(pid)) => {
            notify::notify(&format!("MAINPID={pid}\nREADY=1"));
            tracing::info!(new_pid = pid, "new process {pid} ready; draining and exiting");
            return true;
        }
        Ok(Err(failure)) => failure.reason,
        Err(e) => e.to_string(),
    };
    tracing::warn!("restart failed: {failure}; this process keeps serving");
    notify::notify("READY=1");
    false
}

/// Stops accepting, drains open connections and closes the site, all within one shutdown
/// timeout. After a hand-over, open connections keep serving for [`HANDOVER_GRACE`]
/// first. Closing gets what draining left of the timeout, but at least [`MIN_CLOSE_GRACE`]:
/// the database must get the chance to close cleanly.
async fn drain_and_close<F, C>(
    stop: Stop,
    server: JoinHandle<io::Result<usize>>,
    close: F,
    lifecycle: &Lifecycle,
    shutdown_timeout: Duration,
    ending: Ending,
) where
    F: FnOnce(Duration) -> C,
    C: Future<Output = ()>,
{
    if ending == Ending::Stopped {
        notify::notify("STOPPING=1");
    }
    let deadline = Instant::now() + shutdown_timeout;
    // Background work (jobs) stops taking new work now and finishes alongside requests.
    lifecycle.set_stopping(deadline);
    stop.trigger(if ending == Ending::HandedOver { HANDOVER_GRACE } else { Duration::ZERO });
    match server.await {
        Ok(Ok(0)) => {}
        Ok(Ok(cut)) => {
            tracing::warn!(connections = cut, "connections cut off at the shutdown timeout")
        }
        Ok(Err(e)) => tracing::error!("server error: {e}"),
        Err(e) => tracing::error!("server task failed: {e}"),
    }
    let left = deadline.saturating_duration_since(Instant::now());
    close(left.max(MIN_CLOSE_GRACE)).await;
}

/// The Type=forking launcher: start the server as a background process, wait until it is
/// ready (PID file written), exit 0; or exit with its code when it fails to start.
pub(crate) async fn detach(exe: &Path, timeout: Duration) -> Result<(), RunError> {
    match start_successor(exe, &[], timeout, true).await {
        Ok(pid) => {
            tracing::info!(pid, "server running in the background");
            Ok(())
        }
        // The server printed its own one-line error; exit with its code.
        Err(Failure { code: Some(code), .. }) if code > 0 => {
            Err(RunError::DetachedExited { code: code.min(255) as u8 })
        }
        Err(failure) => Err(RunError::Detach(failure.reason)),
    }
}

#[cfg(unix)]
fn raw_fds(listeners: &[Listener]) -> Vec<(i32, Role)> {
    use std::os::fd::AsRawFd;
    listeners.iter().map(|l| (l.socket.as_raw_fd(), l.role)).collect()
}

#[cfg(not(unix))]
fn raw_fds(_: &[Listener]) -> Vec<(i32, Role)> {
    Vec::new()
}
