//! Processes that are not the test's children (a restarted server is started by the one
//! before it), seen through `/proc` and PID files, and SIGHUP hand-overs between them; raw
//! HTTP/1.1 requests that report errors instead of panicking, among them a POST whose body
//! is trickled.
//!
//! Linux only, like the lifecycle contract these helpers check.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{Credentials, Launch, RawResponse, connect, raw_get, read_response, signal};

/// Upper bound for waiting on a process-level event (a restart, an exit). Not a performance
/// assertion: it only keeps a broken server from hanging the suite.
pub const PATIENCE: Duration = Duration::from_secs(60);

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

/// The targets of a process's file descriptors (`socket:[123]`, `/path`, `pipe:[456]`…).
fn fd_links(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("list /proc/{pid}/fd: {e}"))
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// The TCP sockets of a process's network namespace: inode → (state, bytes received but
/// not yet read). State `0A` is LISTEN.
fn tcp_sockets(pid: u32) -> std::collections::HashMap<String, (String, u64)> {
    let mut sockets = std::collections::HashMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let (Some(st), Some(queues), Some(inode)) =
                (fields.get(3), fields.get(4), fields.get(9))
            {
                let rx = queues
                    .split_once(':')
                    .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
                    .unwrap_or(0);
                sockets.insert(inode.to_string(), (st.to_string(), rx));
            }
        }
    }
    sockets
}

fn socket_inode(link: &str) -> Option<&str> {
    link.strip_prefix("socket:[").and_then(|l| l.strip_suffix(']'))
}

/// The open file descriptors of a process, by kind.
#[derive(Clone, Copy, Debug)]
pub struct Fds {
    pub all: usize,
    /// TCP connections (not listening sockets): they come and go with the clients.
    pub connections: usize,
    /// The SQLite files (database, -wal, -shm): their number follows the connection pool.
    pub database: usize,
}

impl Fds {
    /// The descriptors that do not depend on the traffic: what must not grow from one
    /// process generation to the next.
    pub fn stable(&self) -> usize {
        self.all - self.connections - self.database
    }
}

/// Counts the open file descriptors of `pid`; `database` is the SQLite file.
pub fn fd_counts(pid: u32, database: &Path) -> Fds {
    let links = fd_links(pid);
    let tcp = tcp_sockets(pid);
    let connection = |link: &String| {
        let Some(inode) = socket_inode(link) else { return false };
        // A socket closed between the two reads is in neither table: a connection too.
        tcp.get(inode).is_none_or(|(st, _)| st != "0A") && !unix_socket(inode)
    };
    let database = database.to_str().expect("utf-8 path");
    Fds {
        all: links.len(),
        connections: links.iter().filter(|l| connection(l)).count(),
        database: links.iter().filter(|l| l.starts_with(database)).count(),
    }
}

/// True if the process holds at least one accepted TCP connection and has read every byte
/// received on each (so a request whose head was sent is being handled).
pub fn server_has_read_its_connections(pid: u32) -> bool {
    let tcp = tcp_sockets(pid);
    let connections: Vec<u64> = fd_links(pid)
        .iter()
        .filter_map(|l| tcp.get(socket_inode(l)?))
        .filter(|(st, _)| st != "0A")
        .map(|&(_, rx)| rx)
        .collect();
    !connections.is_empty() && connections.iter().all(|&rx| rx == 0)
}

fn unix_socket(inode: &str) -> bool {
    std::fs::read_to_string("/proc/net/unix")
        .is_ok_and(|t| t.lines().skip(1).any(|l| l.split_whitespace().nth(6) == Some(inode)))
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
    crate::support::chmod(&tmp, mode);
    std::fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", tmp.display(), path.display()));
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1

/// The `version` of `GET /healthz/live` if it answers 200, else a description of what it
/// answered.
pub fn live_version(port: u16) -> Result<String, String> {
    let res = raw_get(port, "/healthz/live").map_err(|e| format!("GET /healthz/live: {e}"))?;
    let body = String::from_utf8_lossy(&res.body).into_owned();
    if res.status != 200 {
        return Err(format!("GET /healthz/live: {} {body}", res.status));
    }
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("GET /healthz/live: not JSON ({e}): {body}"))?;
    json["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("GET /healthz/live: no version in {body}"))
}

/// True if `GET /healthz/live` answers 200.
pub fn live(port: u16) -> bool {
    live_version(port).is_ok()
}

/// `POST /notes` on a new connection with the given credentials; the id from
/// `303 Location: /notes/{id}`, or a description of what came instead.
pub fn post_note(
    port: u16,
    credentials: &Credentials,
    title: &str,
    content: &str,
) -> Result<i64, String> {
    let body = format!(
        "title={}&content={}",
        crate::support::encode(title),
        crate::support::encode(content)
    );
    let fail = |e: std::io::Error| format!("POST /notes {title:?}: {e}");
    let mut stream = connect(port).map_err(fail)?;
    let mut head = format!(
        "POST /notes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in credentials.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(fail)?;
    created(title, read_response(&mut BufReader::new(stream)).map_err(fail)?)
}

/// The id of `303 Location: /notes/{id}`, or a description of the answer.
fn created(title: &str, res: RawResponse) -> Result<i64, String> {
    let location = res.header("location").unwrap_or("").to_string();
    if res.status != 303 {
        return Err(format!(
            "POST /notes {title:?}: expected 303, got {} {}",
            res.status,
            String::from_utf8_lossy(&res.body)
        ));
    }
    location
        .strip_prefix("/notes/")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("POST /notes {title:?}: Location {location:?}"))
}

/// A `POST /notes` whose body is sent a few bytes at a time over `over`, from its own
/// thread: a request that is in flight for a while.
pub struct SlowPost {
    pub title: String,
    thread: JoinHandle<Result<RawResponse, String>>,
}

impl SlowPost {
    /// Connects, sends the head and the first bytes of the body, then returns (the rest
    /// of the body follows from the thread).
    pub fn start(port: u16, credentials: &Credentials, title: &str, over: Duration) -> SlowPost {
        let (tx, started) = mpsc::channel();
        let body = format!(
            "title={}&content=sent+slowly+{}",
            crate::support::encode(title),
            "x".repeat(40)
        );
        let extra: String = credentials
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let thread = std::thread::spawn(move || {
            let fail = |step: &str, e: std::io::Error| format!("slow POST ({step}): {e}");
            let mut stream = connect(port).map_err(|e| fail("connect", e))?;
            let head = format!(
                "POST /notes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).map_err(|e| fail("head", e))?;
            let chunks: Vec<&[u8]> = body.as_bytes().chunks(body.len().div_ceil(16)).collect();
            let pause = over / chunks.len() as u32;
            for (i, chunk) in chunks.iter().enumerate() {
                if let Err(e) = stream.write_all(chunk) {
                    // The server may have answered early (e.g. 403) and closed: show that.
                    return read_response(&mut BufReader::new(stream)).map_err(|_| fail("body", e));
                }
                if i == 0 {
                    let _ = tx.send(());
                }
                std::thread::sleep(pause);
            }
            read_response(&mut BufReader::new(stream)).map_err(|e| fail("response", e))
        });
        // The thread signals once the first body bytes are out (or drops the sender on error).
        let _ = started.recv_timeout(Duration::from_secs(30));
        SlowPost { title: title.to_string(), thread }
    }

    /// Waits for the answer; `Err` describes what went wrong instead of a 303.
    pub fn finish(self) -> Result<RawResponse, String> {
        self.thread.join().unwrap_or_else(|_| Err("slow POST thread panicked".into()))
    }

    /// Waits for the answer and checks it is `303 Location: /notes/{id}`; returns the id.
    pub fn expect_created(self) -> Result<i64, String> {
        let title = format!("{} (slow)", self.title);
        created(&title, self.finish()?)
    }
}
