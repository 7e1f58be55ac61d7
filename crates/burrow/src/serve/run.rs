//! A serving process from ready to exit: signals, SIGHUP hand-over, graceful shutdown.

use std::path::Path;
use std::time::Duration;

use super::pidfile::PidFile;
use super::restart::{Failure, Inherited, Mode, start_successor};
use super::tls::Tls;
use super::{Endpoint, Listener, Role, Signal, Signals, Stop, notify, serve};
use crate::server::{Booted, StartError};

/// How long the old process keeps its open connections serving (with `Connection: close`)
/// after a hand-over, before closing idle ones: requests already sent on them are answered.
const HANDOVER_GRACE: Duration = Duration::from_millis(500);

/// The least time the database gets to close after draining, even when draining used up
/// the shutdown timeout: interrupted statements end within milliseconds.
const MIN_CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Serves until SIGINT/SIGTERM, or until a successor started on SIGHUP is ready; then
/// drains, runs shutdown hooks, closes the database and removes the PID file if it is ours.
pub(crate) async fn run(
    booted: Booted,
    listeners: Vec<Listener>,
    tls: Tls,
    mut signals: Signals,
    mut inherited: Inherited,
    mode: Mode,
) -> Result<(), StartError> {
    let settings = booted.ctx.settings.clone();
    match &mode {
        Mode::Restart { exe } => {
            tracing::info!(mode = "restart", exe = %exe.display(), "process mode: SIGHUP restarts without downtime")
        }
        Mode::Simple { reason } => {
            tracing::info!(mode = "simple", reason = %reason, "process mode: graceful restart disabled")
        }
    }
    tracing::info!(tls = settings.tls.mode.as_str(), reason = %settings.tls.reason, "TLS mode");
    // Duplicates of the listening sockets, kept (with their roles) to hand to a successor.
    let handover = listeners
        .iter()
        .map(|l| l.socket.try_clone().map(|socket| Listener { socket, role: l.role }))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| StartError::new(1, e.to_string()))?;
    let scheme = if tls.acceptor.is_some() { "https" } else { "http" };
    let mut endpoints = Vec::new();
    for listener in listeners {
        let addr = listener.socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let endpoint = match (listener.role, &tls.acme) {
            (Role::AcmeHttp, Some(acme)) => {
                tracing::info!(addr = %addr, "listening on http://{addr} (ACME HTTP-01 challenges; redirect to https)");
                let router = crate::http::security_headers(acme.http_router(), &settings);
                Endpoint { socket: listener.socket, router, tls: None }
            }
            _ => {
                tracing::info!(addr = %addr, base_url = %settings.base_url, "listening on {scheme}://{addr}");
                Endpoint {
                    socket: listener.socket,
                    router: booted.router.clone(),
                    tls: tls.acceptor.clone(),
                }
            }
        };
        endpoints.push(endpoint);
    }
    let stop = Stop::new(booted.draining.clone());
    let server = tokio::spawn(serve(
        endpoints,
        stop.clone(),
        settings.shutdown_timeout,
        settings.connections,
    ));
    // Ready does not wait for a first ACME certificate (docs/tls.md): the challenge port
    // must be served for the CA to validate, and this process is the one serving it.
    let acme = tls.acme.map(|acme| tokio::spawn(acme.run()));
    let pid_file = match &settings.pid_file {
        Some(path) => Some(PidFile::write(path).map_err(|e| {
            StartError::config(format!("cannot write PID file {}: {e}", path.display()))
        })?),
        None => None,
    };
    tracing::info!(pid = std::process::id(), database = %settings.database, "ready");
    if inherited.has_starter() {
        // The starting process tells systemd about us (MAINPID) once it hears this.
        inherited.signal_ready();
    } else {
        notify::notify("READY=1");
    }

    let mut upgrade: Option<tokio::task::JoinHandle<Result<u32, Failure>>> = None;
    let handed_over = loop {
        tokio::select! {
            signal = signals.next() => match (signal, &mode) {
                (Signal::Hangup, Mode::Simple { reason }) => tracing::info!("SIGHUP ignored: graceful restart is disabled ({reason})"),
                (Signal::Hangup, Mode::Restart { .. }) if upgrade.is_some() => tracing::info!("SIGHUP ignored: a restart is already in progress"),
                (Signal::Hangup, Mode::Restart { .. }) if inherited.parent_draining() => {
                    tracing::info!("SIGHUP ignored: the previous process is still draining")
                }
                (Signal::Hangup, Mode::Restart { exe }) => {
                    tracing::info!("SIGHUP received; starting a new process");
                    notify::reloading();
                    let exe = exe.clone();
                    let fds = raw_fds(&handover);
                    let timeout = settings.restart_timeout;
                    upgrade = Some(tokio::spawn(async move { start_successor(&exe, &fds, timeout, false).await }));
                }
                (other, _) => {
                    tracing::info!(drain_timeout_s = settings.shutdown_timeout.as_secs_f64(), "{} received; shutting down", other.name());
                    break false;
                }
            },
            result = async { upgrade.as_mut().expect("guarded").await }, if upgrade.is_some() => {
                upgrade = None;
                match result {
                    Ok(Ok(pid)) => {
                        notify::notify(&format!("MAINPID={pid}\nREADY=1"));
                        tracing::info!(new_pid = pid, "new process {pid} ready; draining and exiting");
                        break true;
                    }
                    Ok(Err(failure)) => {
                        tracing::warn!("restart failed: {}; this process keeps serving", failure.reason);
                        notify::notify("READY=1");
                    }
                    Err(e) => {
                        tracing::warn!("restart failed: {e}; this process keeps serving");
                        notify::notify("READY=1");
                    }
                }
            }
        }
    };
    if let Some(acme) = &acme {
        // An order in progress is abandoned; the lock dies with it, the successor (if
        // any) takes over renewals.
        acme.abort();
    }
    if let Some(pending) = upgrade.take() {
        // Shutting down mid-upgrade: the half-started successor must not outlive us.
        pending.abort();
    }
    if !handed_over {
        notify::notify("STOPPING=1");
    }
    // Draining and the database's blocking work share one deadline.
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    stop.trigger(if handed_over { HANDOVER_GRACE } else { Duration::ZERO });
    match server.await {
        Ok(Ok(0)) => {}
        Ok(Ok(cut)) => {
            tracing::warn!(connections = cut, "connections cut off at the shutdown timeout")
        }
        Ok(Err(e)) => tracing::error!("server error: {e}"),
        Err(e) => tracing::error!("server task failed: {e}"),
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    booted.shutdown_within(left.max(MIN_CLOSE_GRACE)).await;
    drop(handover);
    if let Some(pid_file) = pid_file {
        pid_file.remove();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The Type=forking launcher: start the server as a background process, wait until it is
/// ready (PID file written), exit 0; or exit with its code when it fails to start.
pub(crate) async fn detach(exe: &Path, timeout: Duration) -> Result<(), StartError> {
    match start_successor(exe, &[], timeout, true).await {
        Ok(pid) => {
            tracing::info!(pid, "server running in the background");
            Ok(())
        }
        // The server printed its own one-line error; exit with its code.
        Err(Failure { code: Some(code), .. }) if code > 0 => {
            Err(StartError::new(code.min(255) as u8, ""))
        }
        Err(failure) => Err(StartError::new(1, failure.reason)),
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
