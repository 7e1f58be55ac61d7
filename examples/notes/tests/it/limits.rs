//! Hostile and overloading clients against the real binary: searches that would keep the
//! database busy long after their request ended, shutdown while they run, connections
//! that never speak (plain, HTTP/2 preface, TLS), idle keep-alive connections, the
//! connection caps, a low open-file limit, and oversized request headers.
//!
//! Durations here are deadlines the server promises (`--header-timeout`,
//! `--shutdown-timeout`…) checked with generous slack, never performance figures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::https::trusting;
use crate::support::{
    Launch, RawRequest, Server, client, connect, db_path, encode, generate_notes, get, raw_get,
    read_response, short, signal, tempdir,
};

// ---------------------------------------------------------------------------------------
// Helpers

/// A notes database with 50,000 generated notes, made once per test run and copied into
/// each test's directory: large enough that a search for 12 common words costs about half
/// a second of CPU.
fn big_database(dir: &Path) -> PathBuf {
    static TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, template) = TEMPLATE.get_or_init(|| {
        let holder = tempdir();
        let path = generate_notes(holder.path(), 50_000);
        (holder, path)
    });
    let path = db_path(dir);
    std::fs::copy(template, &path).expect("copy the notes database");
    path
}

/// A search within the limits (12 words, no short prefix) that matches most notes of
/// [`big_database`], so it ranks ~40,000 rows.
const EXPENSIVE_SEARCH: &str = "alpha OR burrow OR cedar OR delta OR ember OR fjord OR granite \
                                OR harbor OR indigo OR juniper OR kestrel OR lantern";

/// The search of the attack: hundreds of one-letter and two-letter prefixes.
fn hostile_search() -> String {
    let letters = 'a'..='z';
    let mut terms: Vec<String> = letters.clone().map(|a| format!("{a}*")).collect();
    terms.extend(letters.flat_map(|a| ('a'..='z').map(move |b| format!("{a}{b}*"))).take(300));
    terms.join(" OR ")
}

fn search_path(q: &str) -> String {
    format!("/notes?q={}", encode(q))
}

/// Sends `n` GETs of `path` at once; returns each status (0 when the request failed)
/// and body.
async fn parallel_gets(server: &Server, path: &str, n: usize) -> Vec<(u16, String)> {
    let http = client();
    let credentials = server.credentials();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = credentials.attach(http.get(server.url(path)));
            tokio::spawn(async move {
                match request.send().await {
                    Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
                    Err(_) => (0, String::new()),
                }
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(n);
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

/// A field of /proc/PID/status in kB (e.g. `RssAnon`: memory the process owns, unlike
/// the pages of the database file that SQLite maps, which the kernel can drop).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// CPU time the process used so far (user + system), in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Raises this test process's soft open-file limit to its hard limit (at least 8192 when
/// running as root), since a test here holds hundreds of sockets while other tests run.
fn raise_own_open_files_limit() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
        let hard: u64 = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
            .unwrap_or(1024);
        let target = hard.max(8192);
        let status = std::process::Command::new("prlimit")
            .args(["--pid", &std::process::id().to_string()])
            .arg(format!("--nofile={target}:{target}"))
            .status()
            .expect("run prlimit (util-linux)");
        assert!(status.success(), "prlimit could not raise the open-file limit to {target}");
    });
}

/// Opens a TCP connection to the server from `source`, any 127.0.0.0/8 address (the
/// server counts connections per client address). std cannot bind before connecting;
/// tokio's TcpSocket can, and the stream is handed back as a blocking std stream.
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Waits until the server closed `stream` (EOF or reset); the bytes it sent first (an
/// HTTP/2 server sends its SETTINGS) are read and ignored. `Err` when it is still open
/// after `within`.
fn wait_closed(stream: &mut TcpStream, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("still open after {within:?}"));
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("still open after {within:?}"));
            }
            Err(_) => return Ok(()),
        }
    }
}

/// The HTTP/2 connection preface, and an empty SETTINGS frame (what a client sends first).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Probes `/healthz/live` on a new connection every 100 ms from `source` until `stop`;
/// returns (answers 200, other outcomes with what they were).
fn probe_until(
    port: u16,
    source: [u8; 4],
    stop: &std::sync::atomic::AtomicBool,
) -> (usize, Vec<String>) {
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let stream = connect_from(source, port);
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match RawRequest::get(port, "/healthz/live").send_on(stream).map_err(|e| e.to_string()) {
            Ok(res) if res.status == 200 => ok += 1,
            Ok(res) => failed.push(format!("status {}", res.status)),
            Err(e) => failed.push(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (ok, failed)
}

// ---------------------------------------------------------------------------------------
// Expensive queries

#[tokio::test]
async fn searches_are_bounded_and_interrupted_when_their_request_times_out() {
    let dir = tempdir();
    big_database(dir.path());
    // Far below what a search takes: a search alone, with the others waiting for its
    // result (a new read's runs take turns), took 98 ms on an idle 2-core machine in a
    // fast hour (0.3–0.5 s when loaded). The hostile searches below answer in 1–2 ms.
    let server = Launch::serve(dir.path()).args(["--request-timeout", "30ms"]).start();
    let pid = server.pid();
    let baseline_kb = status_kb(pid, "RssAnon");

    // The attack's query never reaches SQLite: it is over the limits.
    for (status, body) in parallel_gets(&server, &search_path(&hostile_search()), 8).await {
        assert_eq!(status, 200, "hostile search: {}", short(&body));
        assert!(body.contains("Invalid search"), "{}", short(&body));
    }

    // Within the limits but slower than the request timeout: 8 at once.
    let replies = parallel_gets(&server, &search_path(EXPENSIVE_SEARCH), 8).await;
    let timed_out = Instant::now();
    assert!(
        replies.iter().all(|(s, _)| *s == 503),
        "statuses: {:?}",
        replies.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let (status, _) = get(&client(), &server, "/notes").await;
    assert_eq!(status, 200, "a normal page right after the timeouts");
    assert!(
        timed_out.elapsed() < Duration::from_secs(1),
        "answered {:?} after the timeouts",
        timed_out.elapsed()
    );

    // Their statements stopped with their requests: the process is idle, not ranking rows
    // for answers nobody waits for any more (each search needs ~0.5 s of CPU alone).
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let used = cpu_ticks(pid) - before;
    assert!(used <= 15, "the server used {used}0 ms of CPU in 600 ms after every request ended");

    let grown_kb = status_kb(pid, "RssAnon").saturating_sub(baseline_kb);
    assert!(
        grown_kb < 32 * 1024,
        "anonymous memory grew by {grown_kb} kB (baseline {baseline_kb} kB)"
    );
}

#[tokio::test]
async fn a_read_past_the_database_read_timeout_is_interrupted() {
    let dir = tempdir();
    big_database(dir.path());
    let server = Launch::serve(dir.path())
        .args(["--request-timeout", "60", "--database-read-timeout", "50ms"])
        .start();
    let (status, body) = get(&client(), &server, &search_path(EXPENSIVE_SEARCH)).await;
    assert_eq!(status, 503, "{}", short(&body));
    server.wait_for_log("the read budget in the log", |l| {
        l.contains("--database-read-timeout") && l.contains("interrupted")
    });
    assert_eq!(get(&client(), &server, "/notes").await.0, 200);
}

#[tokio::test]
async fn sigterm_during_expensive_searches_exits_within_the_shutdown_timeout() {
    let dir = tempdir();
    big_database(dir.path());
    let mut server = Launch::serve(dir.path())
        .args(["--request-timeout", "60", "--shutdown-timeout", "100ms"])
        .start();
    let http = client();
    let credentials = server.credentials();
    // One search per reader (16 on two cores): together they would keep both cores busy
    // for well over two seconds, however fast the machine, if shutdown waited for them.
    let searches: Vec<_> = (0..16)
        .map(|_| {
            let request = credentials.attach(http.get(server.url(&search_path(EXPENSIVE_SEARCH))));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    assert!(signal(server.pid(), "TERM"));
    let status = server.wait_exit(Duration::from_secs(30)).expect("the server exits");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    // Generous slack for a loaded machine (tests run in parallel); waiting for the
    // searches instead would take seconds.
    assert!(
        took < Duration::from_millis(100 + 1500),
        "exited {took:?} after SIGTERM with --shutdown-timeout 100ms"
    );
    let mut cut_short = 0;
    for search in searches {
        cut_short += usize::from(!matches!(search.await.unwrap(), Ok(200)));
    }
    assert!(cut_short > 0, "every search completed: the server was not busy at SIGTERM");
}

// ---------------------------------------------------------------------------------------
// Connections

#[test]
fn silent_connections_are_closed_by_the_header_timeout_while_clients_are_served() {
    raise_own_open_files_limit();
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--header-timeout", "2s"]).start();
    let port = server.port;
    let opened = Instant::now();
    let mut silent: Vec<(&str, TcpStream)> = Vec::new();
    for i in 0..500 {
        let mut stream = connect(port).expect("connect");
        let kind = match i % 10 {
            // Half an HTTP/2 preface: hyper still waits to know the protocol.
            0 => {
                stream.write_all(&H2_PREFACE[..10]).unwrap();
                "partial h2 preface"
            }
            // A whole preface and SETTINGS, then no request (h2c).
            1 => {
                stream.write_all(H2_PREFACE).unwrap();
                stream.write_all(H2_EMPTY_SETTINGS).unwrap();
                "h2c after the preface"
            }
            // Half a request line.
            2 => {
                stream.write_all(b"GET /notes HT").unwrap();
                "partial request line"
            }
            _ => "silent",
        };
        silent.push((kind, stream));
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|scope| {
        let probe = scope.spawn(|| probe_until(port, [127, 0, 0, 1], &stop));
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        probe.join().unwrap()
    });
    assert!(failed.is_empty(), "probe failures while 500 connections sat silent: {failed:?}");
    assert!(ok >= 10, "only {ok} probes answered");
    for (kind, stream) in &mut silent {
        let left = Duration::from_secs(6).saturating_sub(opened.elapsed());
        wait_closed(stream, left.max(Duration::from_millis(1)))
            .unwrap_or_else(|e| panic!("a {kind} connection: {e} (--header-timeout 2s)"));
    }
}

#[tokio::test]
async fn idle_tls_connections_are_closed_by_the_header_timeout() {
    raise_own_open_files_limit();
    let dir = tempdir();
    let server = Launch::serve(dir.path())
        .args(["--tls-mode", "selfsigned", "--header-timeout", "1s"])
        .start_https();
    let cert = dir.path().join("data/certs/selfsigned-cert.pem");
    let config = trusting(&cert, &["h2", "http/1.1"]);
    let mut idle = Vec::new();
    for _ in 0..20 {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await;
        idle.push(tls.expect("TLS handshake"));
    }
    // A handshake that is never started is closed by the same deadline.
    let mut silent = connect(server.port).unwrap();
    let started = Instant::now();
    for tls in &mut idle {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(tls, &mut buf),
        )
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("unexpected {n} bytes on an idle TLS connection"),
            Err(_) => {
                panic!("an idle TLS connection is open {:?} after the handshake", started.elapsed())
            }
        }
    }
    wait_closed(&mut silent, Duration::from_secs(5)).expect("a connection without a handshake");
}

#[test]
fn a_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--idle-timeout", "1s"]).start();
    let mut stream = connect(server.port).unwrap();
    write!(stream, "GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let res = read_response(&mut reader).unwrap();
    assert_eq!(res.status, 200);
    let answered = Instant::now();
    wait_closed(&mut stream, Duration::from_secs(5)).expect("idle keep-alive connection");
    assert!(
        answered.elapsed() >= Duration::from_millis(800),
        "closed after only {:?}",
        answered.elapsed()
    );
}

// Draining asks an idle keep-alive connection to close at once, also one that answered
// many requests after it registered for the signal (a connection looks at the signal's
// waiters only once it was sent, `serve::conn::DrainRx`), well before its idle or header
// timeout or the shutdown timeout would close it.
#[test]
fn sigterm_closes_an_idle_keep_alive_connection_at_once() {
    let dir = tempdir();
    let mut server = Launch::serve(dir.path())
        .args(["--idle-timeout", "60s", "--header-timeout", "30s", "--shutdown-timeout", "30s"])
        .start();
    let mut stream = connect(server.port).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    for _ in 0..20 {
        write!(stream, "GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
    }
    assert!(signal(server.pid(), "TERM"));
    wait_closed(&mut stream, Duration::from_secs(5)).expect("an idle connection after SIGTERM");
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status:?}");
}

// A slowloris on a kept-alive connection: the next request's headers begin and never end.
// No request is in flight (hyper sees none before its headers are complete), so the idle
// timeout asks the connection to close and the header timeout drops it.
#[test]
fn a_next_request_whose_headers_never_end_is_closed_after_the_idle_and_header_timeouts() {
    let dir = tempdir();
    let server =
        Launch::serve(dir.path()).args(["--idle-timeout", "1s", "--header-timeout", "1s"]).start();
    let mut stream = connect(server.port).unwrap();
    write!(stream, "GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
    let answered = Instant::now();
    // Half a request head, then a byte now and then: never a whole head.
    write!(stream, "GET /healthz/live HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let dripping = std::thread::spawn({
        let mut stream = stream.try_clone().unwrap();
        move || {
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(250));
                if stream.write_all(b"a").is_err() {
                    return;
                }
            }
        }
    });
    wait_closed(&mut stream, Duration::from_secs(4)).expect("a head that never ends");
    let closed_after = answered.elapsed();
    assert!(closed_after >= Duration::from_millis(800), "closed after only {closed_after:?}");
    dripping.join().unwrap();
}

#[tokio::test]
async fn an_idle_http2_connection_gets_goaway_after_the_idle_timeout() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--idle-timeout", "1s"]).start();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(format!("http://127.0.0.1:{}/healthz/live", server.port))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await.expect("h2c request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    drop(response);
    let answered = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection is still open after 5 s");
    assert!(
        answered.elapsed() >= Duration::from_millis(800),
        "closed after only {:?}",
        answered.elapsed()
    );
}

#[test]
fn connections_beyond_the_per_address_cap_are_refused_and_logged_once() {
    let dir = tempdir();
    let server = Launch::serve(dir.path())
        .args(["--max-connections-per-ip", "20", "--header-timeout", "10s"])
        .start();
    let held: Vec<TcpStream> = (0..20).map(|_| connect_from([127, 0, 0, 1], server.port)).collect();
    // Each further connection from the same address is closed at once.
    for _ in 0..30 {
        let mut extra = connect_from([127, 0, 0, 1], server.port);
        wait_closed(&mut extra, Duration::from_secs(3)).expect("a connection over the cap");
    }
    // Another address is served.
    let stream = connect_from([127, 0, 0, 2], server.port);
    let res = RawRequest::get(server.port, "/healthz/live").send_on(stream).unwrap();
    assert_eq!(res.status, 200, "a client at 127.0.0.2");
    server.wait_for_log("the refusal", |l| l.contains("refused a connection from 127.0.0.1"));
    let lines = server.log().iter().filter(|l| l.contains("refused a connection")).count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} refusal lines for 30 refusals (at most one a second)"
    );
    drop(held);
}

#[test]
fn at_the_connection_cap_new_clients_wait_until_a_connection_closes() {
    let dir = tempdir();
    let server = Launch::serve(dir.path())
        .args([
            "--max-connections",
            "30",
            "--max-connections-per-ip",
            "0",
            "--header-timeout",
            "2s",
        ])
        .start();
    let held: Vec<TcpStream> = (0..30).map(|_| connect(server.port).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    let res = raw_get(server.port, "/healthz/live").expect("the waiting client is served");
    assert_eq!(res.status, 200);
    assert!(
        asked.elapsed() >= Duration::from_millis(1000),
        "served after {:?}, while 30 connections held the cap",
        asked.elapsed()
    );
    server.wait_for_log("the cap in the log", |l| l.contains("connection limit reached"));
    drop(held);
}

#[test]
fn a_low_open_file_limit_lowers_the_cap_instead_of_failing_accepts() {
    raise_own_open_files_limit();
    let dir = tempdir();
    let server = Launch::serve(dir.path())
        .args(["--header-timeout", "2s"])
        .wrapped(["prlimit", "--nofile=160:160"])
        .start();
    server.wait_for_log("the lowered cap", |l| {
        l.contains("serving at most 32 connections") && l.contains("open-file limit is 160")
    });
    // 32 are accepted, the rest wait in the listen backlog, the probe behind them.
    let held: Vec<TcpStream> = (0..80).map(|_| connect(server.port).unwrap()).collect();
    let res = raw_get(server.port, "/healthz/live").expect("served once silent ones are closed");
    assert_eq!(res.status, 200);
    let accept_failures = server.log().iter().filter(|l| l.contains("accept failed")).count();
    assert!(accept_failures <= 2, "{accept_failures} 'accept failed' lines");
    drop(held);
}

#[test]
fn oversized_request_headers_get_431_and_normal_large_ones_pass() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let send = |header_bytes: usize| {
        let request = RawRequest::get(server.port, "/healthz/live");
        request.header("X-Big", "x".repeat(header_bytes)).send().map(|r| r.status)
    };
    assert_eq!(send(32 * 1024).unwrap(), 200, "a 32 KB header");
    assert_eq!(send(100 * 1024).unwrap(), 431, "a 100 KB header");
}
