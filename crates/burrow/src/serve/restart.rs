//! Zero-downtime restart on SIGHUP, and detaching for `Type=forking` supervisors.
//!
//! The running process starts the binary at the path it was started from (a replaced
//! binary is picked up) with the same arguments and environment, plus:
//!
//! | variable | what the new process finds there |
//! |---|---|
//! | `BURROW_LISTEN_FDS` | the listening sockets to use instead of binding (see below) |
//! | `BURROW_READY_FD` | a pipe to write one byte to once ready (PID file written) |
//! | `BURROW_PARENT_FD` | a pipe that reaches EOF when the old process has exited |
//! | `BURROW_SECRETS_FD` | a pipe carrying generated secrets ([`crate::secrets`]) |
//!
//! `BURROW_LISTEN_FDS` is comma-separated `fd=role` (`3=app,4=acme-http`); a bare fd
//! (`3,4`, the older form) is an app listener.
//!
//! The old process keeps serving until the byte arrives; if the new process exits first
//! or misses the deadline, the old one carries on as if nothing happened.

use std::path::PathBuf;
#[cfg(not(unix))]
use std::time::Duration;

/// How this process handles SIGHUP.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// SIGHUP starts `exe` as the successor.
    Restart { exe: PathBuf },
    /// SIGHUP is ignored; the reason is logged at start-up.
    Simple { reason: String },
}

impl Mode {
    pub(crate) fn detect() -> Mode {
        #[cfg(not(unix))]
        {
            Mode::Simple { reason: "graceful restart is not available on this platform".into() }
        }
        #[cfg(unix)]
        {
            if std::process::id() == 1 {
                return Mode::Simple {
                    reason:
                        "running as PID 1 (container): the parent exiting would stop the container"
                            .into(),
                };
            }
            match executable() {
                Some(exe) => Mode::Restart { exe },
                None => Mode::Simple { reason: "the path of the running binary is unknown".into() },
            }
        }
    }
}

/// The binary to start on restart: argv[0] made absolute when it is a path (so a
/// deployment that swaps a symlink is followed), else the resolved executable.
#[cfg(unix)]
fn executable() -> Option<PathBuf> {
    static EXE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let arg0 = PathBuf::from(std::env::args_os().next()?);
        if arg0.components().count() > 1 {
            return std::env::current_dir().ok().map(|cwd| cwd.join(&arg0)).filter(|p| p.exists());
        }
        std::env::current_exe().ok()
    })
    .clone()
}

/// Records the executable path now, before anyone can replace the file.
pub(crate) fn remember_executable() {
    #[cfg(unix)]
    let _ = executable();
}

#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(unix)]
mod unix {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    use nix::unistd::pipe2;

    use super::Failure;
    use crate::serve::Role;

    const LISTEN_FDS: &str = "BURROW_LISTEN_FDS";
    const READY_FD: &str = "BURROW_READY_FD";
    const PARENT_FD: &str = "BURROW_PARENT_FD";
    const SECRETS_FD: &str = "BURROW_SECRETS_FD";

    /// What the process that started this one handed over.
    #[derive(Debug, Default)]
    pub(crate) struct Inherited {
        pub(crate) listeners: Vec<(RawFd, Role)>,
        ready: Option<OwnedFd>,
        parent: Option<OwnedFd>,
    }

    impl Inherited {
        /// Reads the hand-over once at start-up: imports secrets, and marks every inherited
        /// fd close-on-exec so it does not leak into processes this one starts later.
        pub(crate) fn from_env() -> Inherited {
            let fd = |name: &str| {
                std::env::var(name).ok().and_then(|v| v.parse::<RawFd>().ok()).filter(|fd| *fd > 2)
            };
            let owned = |name: &str| {
                fd(name).and_then(|fd| {
                    // Only take fds that are open; a stale variable must not adopt a random fd.
                    let open = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } != -1;
                    open.then(|| {
                        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                        let _ = fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
                        owned
                    })
                })
            };
            if let Some(secrets) = owned(SECRETS_FD) {
                let mut bytes = Vec::new();
                if std::fs::File::from(secrets).read_to_end(&mut bytes).is_ok() {
                    crate::secrets::import(&bytes);
                }
            }
            let listeners =
                std::env::var(LISTEN_FDS).ok().map(|v| parse_listen_fds(&v)).unwrap_or_default();
            for (fd, _) in &listeners {
                unsafe { nix::libc::fcntl(*fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) };
            }
            let parent = owned(PARENT_FD);
            if let Some(p) = &parent {
                let _ = fcntl(p, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            }
            Inherited { listeners, ready: owned(READY_FD), parent }
        }

        /// True when a process started this one and waits for it to be ready.
        pub(crate) fn has_starter(&self) -> bool {
            self.ready.is_some()
        }

        /// Tells the starting process this one is ready (once).
        pub(crate) fn signal_ready(&mut self) {
            if let Some(fd) = self.ready.take() {
                let _ = std::fs::File::from(fd).write_all(b"R");
            }
        }

        /// True while the process this one replaced has not exited yet (still draining).
        pub(crate) fn parent_draining(&self) -> bool {
            let Some(fd) = &self.parent else { return false };
            let mut byte = [0u8; 1];
            match nix::unistd::read(fd, &mut byte) {
                Ok(0) => false,
                Err(nix::errno::Errno::EAGAIN) => true,
                _ => false,
            }
        }
    }

    /// `3=app,4=acme-http`; the older bare form `3,4` means app listeners. Unknown roles
    /// and fds 0–2 are skipped.
    pub(crate) fn parse_listen_fds(value: &str) -> Vec<(RawFd, Role)> {
        value
            .split(',')
            .filter_map(|item| {
                let (fd, role) = match item.split_once('=') {
                    Some((fd, role)) => (fd, Role::parse(role.trim())?),
                    None => (item, Role::App),
                };
                fd.trim().parse::<RawFd>().ok().filter(|fd| *fd > 2).map(|fd| (fd, role))
            })
            .collect()
    }

    pub(crate) fn format_listen_fds(listeners: &[(RawFd, Role)]) -> String {
        listeners
            .iter()
            .map(|(fd, role)| format!("{fd}={}", role.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Write ends of "parent alive" pipes: kept open until this process exits.
    static ALIVE: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

    /// Starts `exe` as this process's successor, handing over `listeners`, and waits until
    /// it is ready. Returns its PID, or why it failed (it is killed if still running).
    pub(crate) async fn start_successor(
        exe: &Path,
        listeners: &[(RawFd, Role)],
        timeout: Duration,
        detach: bool,
    ) -> Result<u32, Failure> {
        let pipe = || {
            pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Failure::new(format!("cannot create a pipe: {e}"), None))
        };
        let (ready_r, ready_w) = pipe()?;
        let (secrets_r, secrets_w) = pipe()?;
        let (alive_r, alive_w) = pipe()?;
        let mut keep: Vec<RawFd> = listeners.iter().map(|(fd, _)| *fd).collect();
        keep.extend([ready_w.as_raw_fd(), secrets_r.as_raw_fd(), alive_r.as_raw_fd()]);
        let list = format_listen_fds(listeners);

        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(std::env::args_os().skip(1))
            .env(READY_FD, ready_w.as_raw_fd().to_string())
            .env(SECRETS_FD, secrets_r.as_raw_fd().to_string())
            .env(PARENT_FD, alive_r.as_raw_fd().to_string())
            // systemd's socket-activation variables were for this process only.
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            // Until it is ready, the successor dies with this attempt (e.g. shutdown mid-upgrade).
            .kill_on_drop(true);
        if list.is_empty() {
            cmd.env_remove(LISTEN_FDS);
        } else {
            cmd.env(LISTEN_FDS, list);
        }
        // SAFETY: only async-signal-safe calls (fcntl, setsid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &keep {
                    if nix::libc::fcntl(*fd, nix::libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if detach {
                    // A daemon must not get the terminal's SIGHUP when the terminal closes.
                    nix::libc::setsid();
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::new(format!("cannot start {}: {e}", exe.display()), None))?;
        let pid = child.id().unwrap_or(0);
        drop((ready_w, secrets_r, alive_r));
        ALIVE.lock().expect("alive pipes").push(alive_w);
        let secrets = crate::secrets::export();
        // The pipe buffer (64 KiB) holds the few secrets there are; the child reads at start.
        let _ = std::fs::File::from(secrets_w).write_all(&secrets);

        let ready = tokio::task::spawn_blocking(move || {
            let mut byte = [0u8; 1];
            std::fs::File::from(ready_r).read(&mut byte).map(|n| n == 1)
        });
        let outcome = tokio::select! {
            ready = ready => match ready {
                Ok(Ok(true)) => Ok(pid),
                _ => Err(Failure::exited(pid, child.wait().await)),
            },
            status = child.wait() => Err(Failure::exited(pid, status)),
            _ = tokio::time::sleep(timeout) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(Failure::new(
                    format!(
                        "new process {pid} was not ready within {}s (--restart-timeout) and was \
                         killed",
                        timeout.as_secs_f64()
                    ),
                    None,
                ))
            }
        };
        if outcome.is_ok() {
            // The successor now serves on its own: dropping the handle must not kill it.
            std::mem::forget(child);
        }
        outcome
    }
}

/// Why a successor did not become ready.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: String,
    /// The successor's exit code, when it exited with one.
    pub(crate) code: Option<i32>,
}

impl Failure {
    fn new(reason: String, code: Option<i32>) -> Failure {
        Failure { reason, code }
    }

    #[cfg(unix)]
    fn exited(pid: u32, status: std::io::Result<std::process::ExitStatus>) -> Failure {
        match status {
            Ok(status) => Failure::new(
                format!("new process {pid} exited ({status}) before it was ready"),
                status.code(),
            ),
            Err(e) => Failure::new(format!("new process {pid} failed: {e}"), None),
        }
    }
}

/// Stand-ins where restart does not exist (Windows): nothing is inherited.
#[cfg(not(unix))]
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    pub(crate) listeners: Vec<(i32, crate::serve::Role)>,
}

#[cfg(not(unix))]
impl Inherited {
    pub(crate) fn from_env() -> Inherited {
        Inherited::default()
    }
    pub(crate) fn has_starter(&self) -> bool {
        false
    }
    pub(crate) fn signal_ready(&mut self) {}
    pub(crate) fn parent_draining(&self) -> bool {
        false
    }
}

#[cfg(not(unix))]
pub(crate) async fn start_successor(
    _: &std::path::Path,
    _: &[(i32, crate::serve::Role)],
    _: Duration,
    _: bool,
) -> Result<u32, Failure> {
    Err(Failure::new("graceful restart is not available on this platform".into(), None))
}

#[cfg(all(test, unix))]
mod tests {
    use super::{format_listen_fds, parse_listen_fds};
    use crate::serve::Role;

    #[test]
    fn listen_fds_carry_roles_and_accept_the_bare_form() {
        assert_eq!(
            parse_listen_fds("3=app,4=acme-http"),
            vec![(3, Role::App), (4, Role::AcmeHttp)]
        );
        assert_eq!(parse_listen_fds("3,4"), vec![(3, Role::App), (4, Role::App)]);
        assert_eq!(parse_listen_fds("1,5=bogus, 6 = app"), vec![(6, Role::App)]);
        assert_eq!(format_listen_fds(&[(3, Role::App), (4, Role::AcmeHttp)]), "3=app,4=acme-http");
    }
}
