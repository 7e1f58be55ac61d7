//! Logging: the `tracing` subscriber on stderr (`--log-level`, `--log-format`), written
//! by a writer thread, the access log in batches.
//!
//! The access log writes a line per request. Written with one `write(2)` each, the lines
//! cost as much CPU as the rest of a small request (issue 13's profile). Here every line
//! is appended to a buffer that a writer thread writes. An access line waits up to
//! [`DELAY`] for others, or until [`BATCH`] bytes are pending: under load hundreds of them
//! go out in one `write(2)`, and only the first line after a quiet spell (or the one that
//! fills a batch) wakes the thread. Every other line (ready, signals,
//! hand-over, warnings, an app's own events) has the thread write at once, after the lines
//! before it, so an operator or a supervisor watching the log sees it when it happens.
//! A kill -9 loses at most [`DELAY`] of access lines; nothing is dropped otherwise:
//! loggers wait when 1 MiB is pending. [`flush`] writes everything; the process calls it
//! before it exits.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tracing::Metadata;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, Settings};

/// Loggers wait (rather than grow the buffer) while this much is not yet written.
const BEHIND: usize = 1 << 20;
/// How long the writer thread gathers access lines before it writes them.
const DELAY: Duration = Duration::from_millis(10);
/// The writer thread writes once this much is pending, before its delay is up: a loaded
/// server's 10 ms of lines (1.3 MB at 100,000 requests/s) would otherwise sit in two
/// buffers of that size.
const BATCH: usize = 64 * 1024;

/// How the access log writes its lines: through `tracing` (the default, also when [`init`]
/// was not called, e.g. under a test's own subscriber), or formatted here (see
/// [`access_format`]).
static ACCESS: AtomicU8 = AtomicU8::new(ACCESS_TRACING);
const ACCESS_TRACING: u8 = 0;
const ACCESS_TEXT: u8 = 1;
const ACCESS_JSON: u8 = 2;

pub(crate) fn init(settings: &Settings) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let installed =
        subscriber(settings.log_format, filter(settings.log_level), ansi, Batched).try_init();
    // The access log's lines are formatted by `http::access_log` when they would be logged
    // and need no colours: the same line for a fraction of the cost (`tracing`'s
    // formatting was 5% of a small request's CPU time).
    if installed.is_ok() && settings.log_level >= tracing::Level::INFO && !ansi {
        let format = match settings.log_format {
            LogFormat::Text => ACCESS_TEXT,
            LogFormat::Json => ACCESS_JSON,
        };
        ACCESS.store(format, Ordering::Relaxed);
    }
}

/// What `--log-level` lets through: `level` for burrow and the apps; dependencies that are
/// noisy at debug stay at warn.
pub(crate) fn filter(level: tracing::Level) -> Targets {
    ["hyper", "hyper_util", "h2", "tower_http"]
        .into_iter()
        .fold(Targets::new().with_default(level), |targets, noisy| {
            targets.with_target(noisy, tracing::Level::WARN)
        })
}

/// The subscriber of `--log-format`, writing to `writer`. The filter is a [`Targets`], not
/// an `EnvFilter`: the levels are fixed (`--log-level`), and an `EnvFilter` compiles regular
/// expressions to parse them, which the server paid for at every start (code pages and
/// heap it never used again).
pub(crate) fn subscriber<W>(
    format: LogFormat,
    filter: Targets,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // The formatter's own level filter lets through what the targets may want, no more:
    // the most verbose of them is the level `tracing`'s macros check before anything else.
    let most_verbose = filter.iter().map(|(_, level)| level).chain(filter.default_level()).max();
    let builder = tracing_subscriber::fmt()
        .with_max_level(most_verbose.unwrap_or(tracing::level_filters::LevelFilter::OFF))
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => Box::new(builder.with_target(false).finish().with(filter)),
        LogFormat::Json => Box::new(
            builder.json().flatten_event(true).with_current_span(false).finish().with(filter),
        ),
    }
}

/// The format in which the access log formats its own lines, or `None` when it logs
/// through `tracing`.
pub(crate) fn access_format() -> Option<LogFormat> {
    match ACCESS.load(Ordering::Relaxed) {
        ACCESS_TEXT => Some(LogFormat::Text),
        ACCESS_JSON => Some(LogFormat::Json),
        _ => None,
    }
}

/// Writes a line the access log formatted, as the subscriber writes its access lines.
pub(crate) fn write_access(line: &[u8]) {
    let _ = Line { now: false }.write_all(line);
}

/// The current time as the subscriber writes it, `2026-12-02T21:26:30.767232Z`. The part
/// down to the second is formatted once per second and thread.
pub(crate) fn timestamp() -> [u8; 27] {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> =
            const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (cached, mut second) = SECOND.get();
    if cached != secs {
        let at = time::OffsetDateTime::from_unix_timestamp(secs as i64)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let (date, clock) = (at.date(), at.time());
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            clock.hour(),
            clock.minute(),
            clock.second()
        );
        second.copy_from_slice(&text.as_bytes()[..19]);
        SECOND.set((secs, second));
    }
    let mut out = [0; 27];
    out[..19].copy_from_slice(&second);
    let mut micros = since_epoch.subsec_micros();
    out[19] = b'.';
    for digit in out[20..26].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out[26] = b'Z';
    out
}

/// Writes every line logged so far to stderr, waiting at most a second. Called before the
/// process exits and before it prints its own last words with `eprintln!`.
pub(crate) fn flush() {
    if let Some(Some(writer)) = WRITER.get() {
        writer.flush(Duration::from_secs(1));
    }
}

/// The subscriber's writer: each event's formatted line is appended to the batch.
struct Batched;

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { now: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line { now: meta.target() != ACCESS_TARGET }
    }
}

/// The access log's target: its lines are the ones that may wait.
pub(crate) const ACCESS_TARGET: &str = "burrow::access";

/// tracing-subscriber formats an event into its own buffer and hands it over with one
/// `write_all`, so one `write` here is one whole line (or several, never half of one).
struct Line {
    /// Written at once rather than within [`DELAY`].
    now: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match writer() {
            Some(writer) => writer.append(bytes, self.now),
            // No thread for the writer: write directly, as without batching.
            None => std::io::stderr().write_all(bytes)?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static WRITER: OnceLock<Option<&'static Writer>> = OnceLock::new();

/// The writer, its thread started on first use.
fn writer() -> Option<&'static Writer> {
    *WRITER.get_or_init(|| {
        let writer: &'static Writer = Box::leak(Box::new(Writer::new(DELAY)));
        let thread = std::thread::Builder::new().name("burrow-log".into());
        thread.spawn(move || writer.write_batches(Stderr::new())).ok().map(|_| writer)
    })
}

/// The writer thread's sink: stderr. When stderr is a regular file (`server 2>>app.log`),
/// the kernel keeps what is written in memory for up to 30 s (`vm.dirty_expire_centisecs`)
/// and then writes it all at once: a busy server logs ~20 MB/s, so that is hundreds of MB
/// in one go, and the database's checkpoints wait behind it for their `fsync`s (issue 13:
/// the POST's p99 went from 5.6 to 19–51 ms when it ran half a minute after a plaintext
/// run). So every [`WRITE_BEHIND`] bytes the thread starts the file's write-back itself,
/// as PostgreSQL does for its files (`*_flush_after`): `sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE` queues the dirty pages and waits for none of them.
struct Stderr {
    /// A duplicate of stderr when it is a regular file (Linux only).
    file: Option<std::fs::File>,
    /// Bytes written since the last write-back.
    unsent: usize,
}

/// Bytes written between two starts of write-back.
const WRITE_BEHIND: usize = 1 << 20;

impl Stderr {
    fn new() -> Stderr {
        #[cfg(target_os = "linux")]
        let file = std::os::fd::AsFd::as_fd(&std::io::stderr())
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .ok()
            .filter(|f| f.metadata().is_ok_and(|m| m.file_type().is_file()));
        #[cfg(not(target_os = "linux"))]
        let file = None;
        Stderr { file, unsent: 0 }
    }
}

impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = std::io::stderr().write(bytes)?;
        #[cfg(target_os = "linux")]
        if let Some(file) = &self.file {
            self.unsent += written;
            if self.unsent < WRITE_BEHIND {
                return Ok(written);
            }
            self.unsent = 0;
            // SAFETY: the descriptor is open (owned by `file`); offset 0 and length 0 mean
            // the whole file, of which only the dirty pages are queued.
            unsafe {
                nix::libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(file),
                    0,
                    0,
                    nix::libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

struct Writer {
    /// [`DELAY`], but for tests.
    delay: Duration,
    state: Mutex<State>,
    /// The writer thread waits here: for a first line, or for the end of its delay.
    wake: Condvar,
    /// Loggers that are too far ahead, and [`flush`], wait here for writes.
    written: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The writer thread waits for a first line: the next one must wake it (and only
    /// then, so a busy server pays no wake-up per line).
    asleep: bool,
    /// The writer thread gathers lines for [`DELAY`]: a line to write now wakes it.
    gathering: bool,
    /// The writer thread is writing a batch taken from `pending`.
    writing: bool,
    /// A line to write now, or [`flush`], asked for a write without delay.
    flush: bool,
    /// Threads waiting on `written` (a notification costs a syscall even with none).
    waiting: usize,
}

impl Writer {
    fn new(delay: Duration) -> Writer {
        Writer { delay, state: Mutex::default(), wake: Condvar::new(), written: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, a line is whole or
        // absent, so the state is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, line: &[u8], now: bool) {
        let mut state = self.lock();
        while state.pending.len() >= BEHIND {
            state = self.wait_written(state, Duration::from_secs(1));
        }
        let was = state.pending.len();
        state.pending.extend_from_slice(line);
        if now {
            state.flush = true;
        }
        let full = was < BATCH && state.pending.len() >= BATCH;
        if state.asleep || ((now || full) && state.gathering) {
            state.asleep = false;
            self.wake.notify_one();
        }
    }

    fn wait_written<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        limit: Duration,
    ) -> MutexGuard<'a, State> {
        state.waiting += 1;
        let mut state =
            self.written.wait_timeout(state, limit).unwrap_or_else(|e| e.into_inner()).0;
        state.waiting -= 1;
        state
    }

    /// The writer thread: waits for a line, gathers more for its delay (or until a
    /// flush), writes them all to `sink` in one call, and again.
    fn write_batches(&self, mut sink: impl Write) {
        let mut batch = Vec::new();
        let mut state = self.lock();
        loop {
            while state.pending.is_empty() {
                state.writing = false;
                if state.waiting > 0 {
                    self.written.notify_all();
                }
                state.asleep = true;
                state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            let deadline = Instant::now() + self.delay;
            state.gathering = true;
            while !state.flush && state.pending.len() < BATCH {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self.wake.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
            }
            state.gathering = false;
            state.flush = false;
            std::mem::swap(&mut state.pending, &mut batch);
            state.writing = true;
            if state.waiting > 0 {
                self.written.notify_all();
            }
            drop(state);
            // A log that cannot be written (stderr closed) has nowhere to report it.
            let _ = sink.write_all(&batch);
            batch.clear();
            // After a burst (the writer fell behind), give back what a batch does not need.
            batch.shrink_to(2 * BATCH);
            state = self.lock();
        }
    }

    /// Has the writer thread write now, and waits (at most `limit`) until it has written
    /// everything.
    fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        while !state.pending.is_empty() || state.writing {
            state.flush = true;
            self.wake.notify_one();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.wait_written(state, left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps what it is given (and counts the writes).
    #[derive(Clone, Default)]
    struct Kept(std::sync::Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut kept = self.0.lock().unwrap();
            kept.0.extend_from_slice(bytes);
            kept.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn started(delay: Duration) -> (&'static Writer, Kept) {
        let writer: &'static Writer = Box::leak(Box::new(Writer::new(delay)));
        let kept = Kept::default();
        let sink = kept.clone();
        std::thread::spawn(move || writer.write_batches(sink));
        (writer, kept)
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_order_and_batched() {
        let (writer, kept) = started(DELAY);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        writer.append(format!("thread {t} line {i}\n").as_bytes(), false);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        writer.flush(Duration::from_secs(10));
        let (bytes, writes) = kept.0.lock().unwrap().clone();
        let out = String::from_utf8(bytes).unwrap();
        assert_eq!(out.lines().count(), 8000);
        for t in 0..4 {
            let lines: Vec<&str> =
                out.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            let expected: Vec<String> = (0..2000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(lines, expected, "thread {t}'s lines whole and in order");
        }
        assert!(writes < 8000, "8000 lines in {writes} writes: not batched");
    }

    #[test]
    fn a_full_batch_is_written_before_the_delay_is_up() {
        let (writer, kept) = started(Duration::from_secs(3600));
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let lines = 3 * BATCH / line.len();
        for _ in 0..lines {
            writer.append(&line, false);
        }
        let waited = Instant::now();
        while kept.0.lock().unwrap().0.len() < 2 * BATCH {
            assert!(waited.elapsed() < Duration::from_secs(10), "nothing written in 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        writer.flush(Duration::from_secs(10));
        assert_eq!(kept.0.lock().unwrap().0.len(), lines * line.len(), "every line once");
    }

    #[test]
    fn a_line_is_written_without_a_flush() {
        let (writer, kept) = started(DELAY);
        writer.append(b"alone\n", false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while kept.0.lock().unwrap().0.is_empty() {
            assert!(Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(kept.0.lock().unwrap().0, b"alone\n");
    }

    #[test]
    fn a_line_to_write_now_does_not_wait_for_the_delay() {
        // A delay no test run reaches: a line seen at all did not wait for it.
        let (writer, kept) = started(Duration::from_secs(3600));
        // The thread is gathering access lines: a line to write now cuts that short and
        // goes out after them, in one write long before the delay is over.
        writer.append(b"access 1\n", false);
        std::thread::sleep(Duration::from_millis(1));
        writer.append(b"access 2\n", false);
        writer.append(b"SIGHUP received\n", true);
        let start = Instant::now();
        loop {
            let (bytes, _) = kept.0.lock().unwrap().clone();
            if bytes.ends_with(b"SIGHUP received\n") {
                assert_eq!(bytes, b"access 1\naccess 2\nSIGHUP received\n");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the line was never written");
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    #[test]
    fn the_level_applies_to_the_app_and_dependencies_stay_at_warn() {
        let lines = |level| {
            let kept = Kept::default();
            let sink = kept.clone();
            let subscriber =
                subscriber(LogFormat::Text, filter(level), false, move || sink.clone());
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "burrow::serve", "app debug");
                tracing::info!(target: "notes", "app info");
                tracing::debug!(target: "hyper::proto::h1", "hyper debug");
                tracing::warn!(target: "hyper", "hyper warn");
                tracing::error!(target: "tower_http::trace", "tower error");
            });
            let kept = kept.0.lock().unwrap();
            String::from_utf8(kept.0.clone()).unwrap()
        };
        let debug = lines(tracing::Level::DEBUG);
        for shown in ["app debug", "app info", "hyper warn", "tower error"] {
            assert!(debug.contains(shown), "{shown:?} missing at debug:\n{debug}");
        }
        assert!(!debug.contains("hyper debug"), "hyper's debug shown:\n{debug}");
        let error = lines(tracing::Level::ERROR);
        assert!(!error.contains("app info") && !error.contains("app debug"), "{error}");
        // As before: the dependencies' warnings are shown whatever the app's level.
        assert!(error.contains("hyper warn") && error.contains("tower error"), "{error}");
    }
}
