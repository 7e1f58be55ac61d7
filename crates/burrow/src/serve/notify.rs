//! systemd integration: `sd_notify` messages on `$NOTIFY_SOCKET` (Type=notify units) and
//! socket activation (`$LISTEN_FDS`).

/// Sends a notification (e.g. `READY=1`) when running under a Type=notify unit; does
/// nothing otherwise. Failures are logged, never fatal.
pub(crate) fn notify(message: &str) {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let sent =
            addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr));
        if let Err(e) = sent {
            tracing::warn!("systemd notification to {path} failed: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = message;
}

/// True when a Type=notify supervisor listens.
pub(crate) fn enabled() -> bool {
    cfg!(target_os = "linux") && std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// `RELOADING=1` needs the monotonic time of the reload start.
pub(crate) fn reloading() {
    #[cfg(unix)]
    {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        notify(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    }
}

/// Socket activation: the fds systemd passed to this very process (`LISTEN_PID`).
pub(crate) fn activated_fds() -> Vec<i32> {
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
    if !for_us || count <= 0 {
        return Vec::new();
    }
    (3..3 + count).collect()
}
