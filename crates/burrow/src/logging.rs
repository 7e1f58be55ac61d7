//! Logging: the `tracing` subscriber on stderr (`--log-level`, `--log-format`), written
//! in batches by a writer thread.
//!
//! The access log writes a line per request. Written with one `write(2)` each, the lines
//! cost as much CPU as the rest of a small request (issue 13's profile). Here a line is
//! appended to a buffer, and a writer thread writes the buffer at most every [`DELAY`]:
//! under load hundreds of lines go out in one `write(2)`, and only the first line after a
//! quiet spell wakes the thread. A line reaches stderr within [`DELAY`] (a kill -9 loses
//! at most that much of the log); nothing is dropped: loggers wait when 1 MiB is pending.
//! [`flush`] writes everything at once; the process calls it before it exits.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::{LogFormat, Settings};

/// Loggers wait (rather than grow the buffer) while this much is not yet written.
const BEHIND: usize = 1 << 20;
/// How long the writer thread gathers lines before it writes them.
const DELAY: Duration = Duration::from_millis(10);

pub(crate) fn init(settings: &Settings) {
    let level = settings.log_level.to_string().to_lowercase();
    // Dependencies are noisy at debug; the app's own level applies to burrow and apps.
    let filter =
        EnvFilter::try_new(format!("{level},hyper=warn,hyper_util=warn,h2=warn,tower_http=warn"))
            .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(Batched).with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
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
        Line
    }
}

/// tracing-subscriber formats an event into its own buffer and hands it over with one
/// `write_all`, so one `write` here is one whole line (or several, never half of one).
struct Line;

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match writer() {
            Some(writer) => writer.append(bytes),
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
        let writer: &'static Writer = Box::leak(Box::default());
        let thread = std::thread::Builder::new().name("burrow-log".into());
        thread.spawn(move || writer.write_batches(std::io::stderr())).ok().map(|_| writer)
    })
}

#[derive(Default)]
struct Writer {
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
    /// The writer thread is writing a batch taken from `pending`.
    writing: bool,
    /// [`flush`] asked for a write now.
    flush: bool,
    /// Threads waiting on `written` (a notification costs a syscall even with none).
    waiting: usize,
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, a line is whole or
        // absent, so the state is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.lock();
        while state.pending.len() >= BEHIND {
            state = self.wait_written(state, Duration::from_secs(1));
        }
        state.pending.extend_from_slice(line);
        if state.asleep {
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

    /// The writer thread: waits for a line, gathers more for [`DELAY`] (or until a
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
            if !state.flush {
                state = self.wake.wait_timeout(state, DELAY).unwrap_or_else(|e| e.into_inner()).0;
            }
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
            // After a burst, give back what a quiet server does not need.
            batch.shrink_to(64 * 1024);
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

    fn started() -> (&'static Writer, Kept) {
        let writer: &'static Writer = Box::leak(Box::default());
        let kept = Kept::default();
        let sink = kept.clone();
        std::thread::spawn(move || writer.write_batches(sink));
        (writer, kept)
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_order_and_batched() {
        let (writer, kept) = started();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        writer.append(format!("thread {t} line {i}\n").as_bytes());
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
    fn a_line_is_written_without_a_flush() {
        let (writer, kept) = started();
        writer.append(b"alone\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while kept.0.lock().unwrap().0.is_empty() {
            assert!(Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(kept.0.lock().unwrap().0, b"alone\n");
    }
}
