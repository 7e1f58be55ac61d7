//! Logging: the `tracing` subscriber on stderr (`--log-level`, `--log-format`), written
//! through a combining writer.
//!
//! The access log writes a line per request. Written with one `write(2)` each from every
//! worker thread, the lines also contend for stderr's lock. Here a thread that logs while
//! another is writing only appends its line to a buffer and goes on; the writing thread
//! writes what piled up before it lets go. An idle server's line is written at once, by
//! the thread that logged it; nothing waits for a background thread and nothing is
//! dropped (loggers wait only when 1 MiB is pending). [`flush`] at exit waits for a write
//! in progress.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::{LogFormat, Settings};

/// Loggers wait (rather than grow the buffer) while this much is not yet written.
const BEHIND: usize = 1 << 20;

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

/// Waits (up to a second) until every line logged so far is written to stderr. Called
/// before the process exits and before it prints its own last words with `eprintln!`.
pub(crate) fn flush() {
    WRITER.wait_written(Duration::from_secs(1));
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
        WRITER.write(bytes, &mut std::io::stderr());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static WRITER: Combining = Combining::new();

struct Combining {
    state: Mutex<State>,
    /// Loggers that are too far ahead, and [`flush`], wait here for the writer.
    written: Condvar,
}

struct State {
    /// Lines appended while another thread writes.
    pending: Vec<u8>,
    /// A thread is writing; it writes `pending` before it stops.
    writing: bool,
    /// Threads waiting on `written` (a notification costs a syscall even with none).
    waiting: usize,
}

impl Combining {
    const fn new() -> Combining {
        Combining {
            state: Mutex::new(State { pending: Vec::new(), writing: false, waiting: 0 }),
            written: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, a line is whole or
        // absent, so the state is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, mut state: MutexGuard<'a, State>, limit: Duration) -> MutexGuard<'a, State> {
        state.waiting += 1;
        let mut state =
            self.written.wait_timeout(state, limit).unwrap_or_else(|e| e.into_inner()).0;
        state.waiting -= 1;
        state
    }

    /// Writes `line` to `sink`, or leaves it to the thread that is writing.
    fn write(&self, line: &[u8], sink: &mut impl Write) {
        let mut state = self.lock();
        if state.writing {
            while state.writing && state.pending.len() >= BEHIND {
                state = self.wait(state, Duration::from_secs(1));
            }
            if state.writing {
                state.pending.extend_from_slice(line);
                return;
            }
        }
        state.writing = true;
        drop(state);
        // A log that cannot be written (stderr closed) has nowhere to report it.
        let _ = sink.write_all(line);
        let mut batch = Vec::new();
        loop {
            let mut state = self.lock();
            if state.pending.is_empty() {
                state.writing = false;
                if state.waiting > 0 {
                    self.written.notify_all();
                }
                return;
            }
            std::mem::swap(&mut state.pending, &mut batch);
            if state.waiting > 0 {
                self.written.notify_all();
            }
            drop(state);
            let _ = sink.write_all(&batch);
            batch.clear();
        }
    }

    /// Waits until no thread is writing, at most `limit`.
    fn wait_written(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        while state.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.wait(state, left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order() {
        let writer: &'static Combining = Box::leak(Box::new(Combining::new()));
        let out: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        // A slow sink, so that lines pile up while one thread writes.
        struct Slow(&'static Mutex<Vec<u8>>);
        impl Write for Slow {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_micros(50));
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..500 {
                        writer.write(format!("thread {t} line {i}\n").as_bytes(), &mut Slow(out));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        writer.wait_written(Duration::from_secs(10));
        let out = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 2000);
        for t in 0..4 {
            let lines: Vec<&str> =
                out.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            let expected: Vec<String> = (0..500).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(lines, expected, "thread {t}'s lines whole and in order");
        }
    }
}
