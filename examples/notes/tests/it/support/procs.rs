//! Processes that are not the test's children (a restarted server is started by the one
//! before it), seen through `/proc` and PID files, SIGHUP hand-overs between them, and
//! [`Cleanup`], which kills them when the test ends.
//!
//! Linux only, like the lifecycle contract these helpers check.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::probes::live;
use super::{Launch, PATIENCE, Server, chmod, signal};

/// Polls `check` every 20 ms until it returns `Some`; panics with `what` (and the last
/// state `check` reported through `state`) after `within`.
pub fn wait_until<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    let mut state = String::new();
    loop {
        if let Some(found) = check(&mut state) {
            return found;
        }
        if Instant::now() >= deadline {
            panic!("gave up after {within:?} waiting until {what}; last seen: {state}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// PID files and /proc

/// The PID a PID file names, if it exists and holds one.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `--pid-file FILE --detach false`: the PID file of a server that stays the test's child
/// until its first restart.
pub fn with_pid_file(launch: Launch, pid_file: &Path) -> Launch {
    launch.arg("--pid-file").arg(pid_file).args(["--detach", "false"])
}

/// Waits until the PID file names a running process other than `old` and
/// `/healthz/live` answers; returns that PID.
pub fn wait_for_successor(pid_file: &Path, port: u16, old: u32) -> u32 {
    wait_until(
        PATIENCE,
        &format!("the PID file names a new serving process (old: {old})"),
        |state| {
            let named = read_pid_file(pid_file);
            *state = format!("PID file names {named:?}; old process alive: {}", alive(old));
            let pid = named.filter(|&p| p != old && alive(p))?;
            live(port).then_some(pid)
        },
    )
}

/// SIGHUP to `server`, which hands over to a new process: waits until that process logged
/// `ready` (on the stderr they share) and `server` itself exited with code 0.
pub fn hand_over(server: &mut Server) {
    let mark = server.log_len();
    assert!(signal(server.pid(), "HUP"), "kill -HUP {}", server.pid());
    server.wait_for_log_after(mark, "new process ready", |l| {
        l.contains("new process") && l.contains("ready")
    });
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)).and_then(|s| s.code()),
        Some(0),
        "old process exit"
    );
}

/// Waits until `pid` has exited (gone from /proc, or a zombie).
pub fn wait_gone(pid: u32) {
    wait_until(PATIENCE, &format!("process {pid} exits"), |state| {
        *state = format!("/proc/{pid} still there, process running");
        (!alive(pid)).then_some(())
    });
}

/// SIGTERM to a server that is not the test's child; waits for its exit.
pub fn stop(pid: u32) {
    assert!(signal(pid, "TERM"), "kill -TERM {pid} failed");
    wait_gone(pid);
}

/// The state letter of a process (`R`, `S`, `Z`…), `None` if there is no such process.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid …`; comm may hold spaces and parentheses.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The parent PID of a process.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// True while the process runs: it exists and is not a zombie (an exited child not yet
/// reaped by its parent still has a `/proc` entry).
pub fn alive(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The running children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    all_pids().into_iter().filter(|&p| parent(p) == Some(pid) && alive(p)).collect()
}

/// Running processes (other than this one) whose command line mentions `needle`, e.g.
/// the unique temporary directory of a test: every server that test started, whoever
/// its parent is.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| String::from_utf8_lossy(&raw).replace('\0', " ").contains(needle))
        })
        .collect()
}

/// Kills, when dropped, every process whose command line mentions the test's directory,
/// so servers that are not the test's children (restarted, detached, in a PID namespace)
/// do not outlive it. Declare it after the `Server`, so it is dropped first.
pub struct Cleanup {
    needle: String,
}

impl Cleanup {
    pub fn new(dir: &Path) -> Cleanup {
        Cleanup { needle: dir.to_str().expect("utf-8 path").to_string() }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let pids = processes_mentioning(&self.needle);
        for &pid in &pids {
            signal(pid, "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for &pid in pids.iter().filter(|&&p| alive(p)) {
            eprintln!("process {pid} still runs 15 s after SIGTERM; killing it");
            signal(pid, "KILL");
        }
    }
}

/// Writes `contents` to `path` atomically (temporary file + rename), as a deployment
/// replaces a binary or a config file, with the given mode.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) {
    let tmp: PathBuf = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    chmod(&tmp, mode);
    std::fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", tmp.display(), path.display()));
}
