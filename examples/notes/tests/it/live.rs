//! Live updates with the real binary: the list page of one window follows the changes made
//! in another (headless Chromium, per user), event streams handed over by SIGHUP under load
//! without a failed request and without holding the drain, SIGTERM with open streams, and
//! events between two server processes on one PostgreSQL database.
//!
//! [`EventClient`] reads `text/event-stream` on a raw socket as a browser's `EventSource`
//! does: it reconnects after the stream's `retry:` hint with `Last-Event-ID`, and records
//! what each connection got and how it ended.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::browser::{LIST_STREAM_OPEN, ROW_COUNT, Timing, signed_in_browser_as};
use crate::support::load::Load;
use crate::support::procs::{
    Cleanup, stop, wait_for_successor, wait_gone, wait_until, with_pid_file,
};
use crate::support::{
    Credentials, Database, Engine, Launch, PATIENCE, TESTER, client, connect, create_note, signal,
    tempdir, try_create_note,
};

/// The event the notes server publishes when an author's notes change.
const CHANGED: &str = "notes-changed";

// ---------------------------------------------------------------------------------------
// An event-stream client

/// What one client saw, over all its connections.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Connections answered `200 text/event-stream`.
    connects: usize,
    /// When the connection open now was answered; `None` between connections.
    open_since: Option<Instant>,
    /// When each connection that ended with the retry hint ended.
    farewells: Vec<Instant>,
    /// The names of the events received, in order.
    events: Vec<String>,
    /// Connections refused or cut, answers that were not a stream, streams that ended
    /// without the retry hint.
    failures: Vec<String>,
}

struct Shared {
    seen: Mutex<Seen>,
    stop: AtomicBool,
    /// The connection open now, to shut down when the client stops.
    socket: Mutex<Option<TcpStream>>,
}

/// An event-stream client of `/notes/events` on a thread of its own.
struct EventClient {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// How one connection ended.
struct Ended {
    /// Its last block was the retry hint alone (the server ended the stream on purpose).
    farewell: bool,
    retry: Option<Duration>,
    last_id: Option<String>,
}

impl EventClient {
    /// Opens the stream with `cookie`; with `follow`, reconnects whenever a stream ends, as
    /// a browser does, until [`EventClient::finish`].
    fn open(port: u16, cookie: &str, follow: bool) -> EventClient {
        let shared = Arc::new(Shared {
            seen: Mutex::default(),
            stop: AtomicBool::new(false),
            socket: Mutex::default(),
        });
        let (inner, cookie) = (shared.clone(), cookie.to_string());
        let thread = std::thread::spawn(move || {
            let mut last_id = None;
            let mut retry = Duration::from_secs(1);
            loop {
                let outcome = read_stream(port, &cookie, last_id.as_deref(), &inner);
                if inner.stop.load(Ordering::Relaxed) {
                    return;
                }
                let mut seen = inner.seen.lock().unwrap();
                seen.open_since = None;
                match outcome {
                    Ok(ended) => {
                        if ended.farewell {
                            seen.farewells.push(Instant::now());
                        } else {
                            seen.failures.push("the stream ended without the retry hint".into());
                        }
                        retry = ended.retry.unwrap_or(retry);
                        last_id = ended.last_id.or(last_id);
                    }
                    Err(e) => seen.failures.push(e),
                }
                drop(seen);
                if !follow {
                    return;
                }
                std::thread::sleep(retry);
            }
        });
        EventClient { shared, thread: Some(thread) }
    }

    fn seen(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits until the stream is open (answered), having connected at least `connects` times.
    fn wait_open(&self, connects: usize) {
        wait_until(PATIENCE, "the event stream is open", |state| {
            let seen = self.seen();
            *state = format!("{seen:?}");
            (seen.open_since.is_some() && seen.connects >= connects).then_some(())
        });
    }

    /// Waits until `count` events named `name` came.
    fn wait_events(&self, name: &str, count: usize) {
        wait_until(PATIENCE, &format!("{count} `{name}` events"), |state| {
            let seen = self.seen();
            *state = format!("{seen:?}");
            (seen.events.iter().filter(|e| *e == name).count() >= count).then_some(())
        });
    }

    /// Stops the client (closing its connection) and returns what it saw.
    fn finish(mut self) -> Seen {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(socket) = self.shared.socket.lock().unwrap().take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("event client thread panicked");
        }
        self.seen()
    }
}

/// One connection: the request, the answer's head, then the chunked body parsed as events
/// until it ends.
fn read_stream(
    port: u16,
    cookie: &str,
    last_id: Option<&str>,
    shared: &Shared,
) -> Result<Ended, String> {
    let mut socket = connect(port).map_err(|e| format!("connect: {e}"))?;
    // Keep-alive comments come every --sse-keep-alive (15 s): a longer silence is a failure.
    socket.set_read_timeout(Some(PATIENCE)).map_err(|e| e.to_string())?;
    *shared.socket.lock().unwrap() = Some(socket.try_clone().map_err(|e| e.to_string())?);
    let last_id = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let head = format!(
        "GET /notes/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\
         Cookie: {cookie}\r\n{last_id}\r\n"
    );
    socket.write_all(head.as_bytes()).map_err(|e| format!("send the request: {e}"))?;
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    let read_line = |reader: &mut BufReader<TcpStream>, line: &mut String| {
        line.clear();
        match reader.read_line(line) {
            Ok(0) => Err("connection closed".to_string()),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => Err(format!("read: {e}")),
        }
    };
    let status = read_line(&mut reader, &mut line)?;
    let mut headers = Vec::new();
    loop {
        let header = read_line(&mut reader, &mut line)?;
        if header.is_empty() {
            break;
        }
        headers.push(header.to_ascii_lowercase());
    }
    if !status.starts_with("HTTP/1.1 200")
        || !headers.iter().any(|h| h == "content-type: text/event-stream")
        || !headers.iter().any(|h| h == "transfer-encoding: chunked")
    {
        return Err(format!("not an event stream: {status} {headers:?}"));
    }
    {
        let mut seen = shared.seen.lock().unwrap();
        seen.connects += 1;
        seen.open_since = Some(Instant::now());
    }
    let mut ended = Ended { farewell: false, retry: None, last_id: None };
    let mut pending = Vec::new();
    loop {
        let size = read_line(&mut reader, &mut line);
        let size = match size {
            Ok(size) => usize::from_str_radix(size.trim(), 16)
                .map_err(|_| format!("bad chunk size {size:?}"))?,
            // A connection closed right after the hint ended the stream too.
            Err(_) if ended.farewell => return Ok(ended),
            Err(e) => return Err(format!("stream cut: {e}")),
        };
        if size == 0 {
            return Ok(ended);
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).map_err(|e| format!("stream cut mid-chunk: {e}"))?;
        pending.extend_from_slice(&chunk[..size]);
        // Whole blocks (an event, the retry hint, a comment) end with a blank line.
        while let Some(at) = pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = pending.drain(..at + 2).collect();
            let block = String::from_utf8_lossy(&block).into_owned();
            let fields: Vec<(&str, &str)> = block
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with(':'))
                .map(|l| l.split_once(':').map_or((l, ""), |(k, v)| (k, v.trim_start())))
                .collect();
            ended.farewell = !fields.is_empty() && fields.iter().all(|(k, _)| *k == "retry");
            for (key, value) in &fields {
                match *key {
                    "retry" => ended.retry = value.parse().ok().map(Duration::from_millis),
                    "id" => ended.last_id = Some(value.to_string()),
                    "event" => shared.seen.lock().unwrap().events.push(value.to_string()),
                    _ => {}
                }
            }
        }
    }
}

/// The hand-over of a SIGHUP to the server `old`: the new process's PID, and the time from
/// the signal until `old` exited (its drain).
fn hand_over(pid_file: &std::path::Path, port: u16, old: u32) -> (u32, Duration) {
    let start = Instant::now();
    assert!(signal(old, "HUP"), "kill -HUP {old}");
    let new = wait_for_successor(pid_file, port, old);
    wait_gone(old);
    (new, start.elapsed())
}

// ---------------------------------------------------------------------------------------
// In the browser

/// JavaScript: the titles in the list.
const TITLES: &str = "Array.from(document.querySelectorAll('#note-list li[id^=\"note-\"] a.title'), \
                      a => a.innerText)";

#[tokio::test]
async fn browser_list_follows_the_authors_changes_made_in_another_window() {
    let _timing = Timing::start("live list");
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let writer = signed_in_browser_as(&server, TESTER).await;
    let reader = signed_in_browser_as(&server, TESTER).await;
    let stranger = signed_in_browser_as(&server, "stranger").await;

    // Every /notes/rows request of a list page, counted.
    let count_rows = "window.__rows = 0;
         document.addEventListener('htmx:afterRequest', (e) => {
           if (e.detail.xhr.responseURL.includes('/notes/rows')) window.__rows++;
         });";
    for browser in [&reader, &stranger] {
        browser.goto(&server.url("/notes")).await;
        browser.instrument().await;
        browser.js(count_rows, json!([])).await;
    }
    // Changes made before a list's stream is open would not reach it: wait until the
    // extension's EventSource (in htmx's data of the element) is open.
    for browser in [&reader, &stranger] {
        browser.wait("the list's event stream to open", LIST_STREAM_OPEN, json!([])).await;
    }

    // Written in one window…
    let title = "Seen live in the other window";
    writer.goto(&server.url("/notes/new")).await;
    writer.type_into("#note-form input[name=title]", title).await;
    writer.type_into("#note-form [name=content]", "no reload needed").await;
    writer.click("#note-form button[type=submit]").await;
    let id = writer
        .wait(
            "the new note's page",
            "const m = location.pathname.match(/^\\/notes\\/(\\d+)$/); return m && m[1];",
            json!([]),
        )
        .await;
    // …listed in the other, without a reload.
    let listed = format!("return {TITLES}.includes(arguments[0]);");
    reader.wait("the new note in the other window's list", &listed, json!([title])).await;
    reader.assert_same_document("the live update").await;

    // Deleted in one window, gone from the other.
    writer.js("window.confirm = () => true;", json!([])).await;
    let id = id.as_str().expect("the note id").to_string();
    writer.click(&format!("form[action=\"/notes/{id}/delete\"] button[type=submit]")).await;
    let gone = format!("return !{TITLES}.includes(arguments[0]) && {ROW_COUNT} === 0;");
    reader.wait("the note gone from the other window's list", &gone, json!([title])).await;
    reader.assert_same_document("the live update after the delete").await;
    let reader_rows = reader.js("return window.__rows;", json!([])).await;
    assert_eq!(reader_rows, json!(2), "the reader's list refetched once per change");

    // The other user's list heard nothing of it: its first refetch is for its own note,
    // published after the writer's two changes (one hub, in order).
    let credentials = Credentials::sign_in_as(&Launch::serve(dir.path()), server.port, "stranger");
    let own = "The stranger's own note";
    try_create_note(&client(), server.port, &credentials, own, "mine").await.unwrap();
    let listed = format!("return {TITLES}.includes(arguments[0]);");
    stranger.wait("the stranger's own note, live", &listed, json!([own])).await;
    let stranger_rows = stranger.js("return window.__rows;", json!([])).await;
    assert_eq!(stranger_rows, json!(1), "the stranger's list refetched for its own note only");
    stranger.assert_same_document("the stranger's live update").await;
}

// ---------------------------------------------------------------------------------------
// Restarts

#[test]
fn sighups_hand_open_streams_to_the_new_process_under_load_without_holding_the_drain() {
    const RESTARTS: usize = 20;
    const STREAMS: usize = 50;
    const CLIENTS: usize = 8;
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    let launch = Launch::serve(dir.path()).args(["--shutdown-timeout", "10", "--sse-retry", "1"]);
    let server = with_pid_file(launch, &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let port = server.port;
    let credentials = server.credentials();

    // The load's POSTs create notes: every stream gets their events.
    let load = Load::start(port, CLIENTS, &credentials);
    load.wait_progress(50);
    // A hand-over under the same load without streams, to compare.
    let (mut pid, without_streams) = hand_over(&pid_file, port, server.pid());
    load.wait_progress(10);

    let clients: Vec<EventClient> =
        (0..STREAMS).map(|_| EventClient::open(port, &credentials.cookie, true)).collect();
    for client in &clients {
        client.wait_open(1);
    }
    let mut hand_overs = Vec::new();
    for round in 1..=RESTARTS {
        let signalled = Instant::now();
        let (new, took) = hand_over(&pid_file, port, pid);
        pid = new;
        hand_overs.push(took);
        // The old process is gone, so an open stream is one on the new process; it must
        // have ended with the retry hint since the signal.
        wait_until(PATIENCE, &format!("round {round}: every stream is open on {pid}"), |state| {
            let waiting: Vec<usize> = (clients.iter().enumerate())
                .filter(|(_, client)| {
                    let seen = client.seen();
                    let hint = seen.farewells.last().copied().filter(|at| *at > signalled);
                    let back = hint.is_some_and(|hint| seen.open_since.is_some_and(|o| o > hint));
                    !back
                })
                .map(|(i, _)| i)
                .collect();
            *state = format!("streams not yet back: {waiting:?}");
            waiting.is_empty().then_some(())
        });
        load.wait_progress(10);
    }
    let totals = load.finish();
    let seen: Vec<Seen> = clients.into_iter().map(EventClient::finish).collect();
    let events: usize = seen.iter().map(|s| s.events.len()).sum();
    let slowest = hand_overs.iter().max().copied().unwrap_or_default();
    let mean = hand_overs.iter().sum::<Duration>() / RESTARTS as u32;
    eprintln!(
        "{RESTARTS} hand-overs with {STREAMS} open streams under load: {} requests ({} POSTs), \
         {} failed; {events} events received; hand-over under load without streams \
         {without_streams:?}, with streams mean {mean:?}, slowest {slowest:?}",
        totals.done, totals.posts, totals.failed
    );
    stop(pid);

    assert_eq!(totals.failed, 0, "failed requests: {:#?}", totals.failures);
    for (i, seen) in seen.iter().enumerate() {
        assert!(seen.failures.is_empty(), "stream {i}: {:?}", seen.failures);
        assert!(seen.farewells.len() >= RESTARTS, "stream {i} got {} hints", seen.farewells.len());
        assert!(seen.connects > RESTARTS, "stream {i} connected {} times", seen.connects);
        assert!(seen.events.iter().any(|e| e == CHANGED), "stream {i} got no event");
    }
    assert!(
        slowest < SHUTDOWN_TIMEOUT,
        "a hand-over took {slowest:?}: streams held the drain to --shutdown-timeout"
    );
}

#[test]
fn sigterm_with_open_streams_exits_well_before_the_shutdown_timeout() {
    let dir = tempdir();
    let mut server = Launch::serve(dir.path()).args(["--shutdown-timeout", "30"]).start();
    let cookie = server.credentials().cookie;
    let clients: Vec<EventClient> =
        (0..10).map(|_| EventClient::open(server.port, &cookie, false)).collect();
    for client in &clients {
        client.wait_open(1);
    }
    let start = Instant::now();
    assert!(signal(server.pid(), "TERM"));
    let status = server.wait_exit(PATIENCE).expect("the server exits");
    let took = start.elapsed();
    // About a second: connections this young get that long before they are closed (the
    // server's first-request grace), whatever they carry.
    eprintln!("SIGTERM with 10 open streams: exited after {took:?}");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(took < Duration::from_secs(10), "exit took {took:?} of the 30 s shutdown timeout");
    for (i, client) in clients.into_iter().enumerate() {
        let seen = client.finish();
        assert!(seen.failures.is_empty(), "stream {i}: {:?}", seen.failures);
        assert_eq!(seen.farewells.len(), 1, "stream {i} ends with the retry hint: {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Several processes on PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stream_on_one_process_gets_the_events_of_another() {
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let db = Database::new(Engine::Postgres, dir_a.path());
    let (launch_a, launch_b) =
        (Launch::serve_on(&db, dir_a.path()), Launch::serve_on(&db, dir_b.path()));
    let (a, b, tester, stranger, stranger_on_b) = tokio::task::block_in_place(|| {
        let (a, b) = (launch_a.start(), launch_b.start());
        let tester = Credentials::sign_in(&launch_a, a.port);
        let stranger = Credentials::sign_in_as(&launch_a, a.port, "stranger");
        let stranger_on_b = Credentials::sign_in_as(&launch_b, b.port, "stranger");
        (a, b, tester, stranger, stranger_on_b)
    });
    let tester_stream = EventClient::open(a.port, &tester.cookie, false);
    let stranger_stream = EventClient::open(a.port, &stranger.cookie, false);
    tokio::task::block_in_place(|| {
        tester_stream.wait_open(1);
        stranger_stream.wait_open(1);
    });

    // The tester's note, written through B, reaches the tester's stream on A.
    create_note(&client(), &b, "Written on B", "heard on A").await;
    tokio::task::block_in_place(|| tester_stream.wait_events(CHANGED, 1));
    // The stranger's own note, written after it, is the first event the stranger hears:
    // NOTIFYs arrive in commit order, so the tester's was not sent to the stranger.
    try_create_note(&client(), b.port, &stranger_on_b, "The stranger's", "on B").await.unwrap();
    tokio::task::block_in_place(|| stranger_stream.wait_events(CHANGED, 1));
    let (tester_seen, stranger_seen) = (tester_stream.finish(), stranger_stream.finish());
    assert_eq!(tester_seen.events, [CHANGED], "{tester_seen:?}");
    assert_eq!(stranger_seen.events, [CHANGED], "{stranger_seen:?}");
    assert!(tester_seen.failures.is_empty() && stranger_seen.failures.is_empty());
    drop((a, b));
}
