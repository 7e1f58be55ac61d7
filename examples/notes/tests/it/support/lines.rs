//! A child's output, captured line by line as it is written, so a test can wait for a log
//! line while the child keeps running.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::PATIENCE;

#[derive(Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

/// The lines a child wrote to one pipe, filled by a reader thread that drains the pipe
/// until EOF so the child never blocks on a full pipe.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<LinesState>, Condvar)>);

impl Lines {
    pub(super) fn capture(pipe: impl Read + Send + 'static) -> (Lines, JoinHandle<()>) {
        let lines = Lines::default();
        let shared = lines.clone();
        let handle = std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = strip_ansi(
                            String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']),
                        );
                        let (state, cv) = &*shared.0;
                        state.lock().unwrap().lines.push(line);
                        cv.notify_all();
                    }
                }
            }
            let (state, cv) = &*shared.0;
            state.lock().unwrap().closed = true;
            cv.notify_all();
        });
        (lines, handle)
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.0.lock().unwrap().lines.clone()
    }

    /// The lines, each with its newline, as one string.
    pub(super) fn text(&self) -> String {
        self.snapshot().iter().map(|l| format!("{l}\n")).collect()
    }

    /// Waits until a line at index `from` or later satisfies `pred`; `None` if the pipe
    /// closed (the child exited) or patience ran out first.
    pub fn wait_for(&self, from: usize, pred: impl Fn(&str) -> bool) -> Option<(usize, String)> {
        let deadline = Instant::now() + PATIENCE;
        let (state, cv) = &*self.0;
        let mut guard = state.lock().unwrap();
        let mut checked = from;
        loop {
            while checked < guard.lines.len() {
                if pred(&guard.lines[checked]) {
                    return Some((checked, guard.lines[checked].clone()));
                }
                checked += 1;
            }
            if guard.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Waits until the pipe is closed (the child exited). False if patience ran out.
    pub(super) fn wait_closed(&self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let (state, cv) = &*self.0;
        let mut guard = state.lock().unwrap();
        while !guard.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
        true
    }
}

/// Removes ANSI escape sequences (colored log levels), so lines match plain text.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
