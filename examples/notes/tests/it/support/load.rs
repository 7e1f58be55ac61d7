//! A load generator for restart tests: concurrent client tasks that send requests without
//! pause until stopped, and count every answer that is not the expected status and every
//! connection error.
//!
//! Half of the tasks share one pooling client (keep-alive connections, which a restart
//! must move to the new process), the other half a client that keeps no idle connection
//! (a new connection per request). The requests rotate over `GET /notes`,
//! `GET /healthz/live` and `POST /notes`. The POSTs carry the cookies and CSRF token of
//! a form loaded before the first restart: they keep working only if the restarted
//! processes accept them (same configured keys, or generated keys handed over).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Credentials;

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    posts: AtomicU64,
    failed: AtomicU64,
    /// The first failures, described.
    failures: Mutex<Vec<String>>,
}

/// What a load run did.
#[derive(Debug)]
pub struct Totals {
    /// Requests answered with the expected status.
    pub done: u64,
    /// Of those, `POST /notes` answered with 303 (each created a note).
    pub posts: u64,
    /// Requests with another status, or a connection, timeout or body error.
    pub failed: u64,
    /// The first failures (at most 20).
    pub failures: Vec<String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts `tasks` client tasks against `127.0.0.1:port`; POSTs carry `credentials`
    /// (cookies and CSRF token), obtained once, before any restart.
    pub fn start(port: u16, tasks: usize, credentials: &Credentials) -> Load {
        let credentials = Arc::new(credentials.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (stop2, counters2) = (stop.clone(), counters.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let builder = || {
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .timeout(Duration::from_secs(30))
                };
                let keep_alive = builder().build().expect("HTTP client");
                let fresh = builder().pool_max_idle_per_host(0).build().expect("HTTP client");
                let mut handles = Vec::new();
                for task in 0..tasks {
                    let client = if task % 2 == 0 { keep_alive.clone() } else { fresh.clone() };
                    let kind = if task % 2 == 0 { "keep-alive" } else { "new-connection" };
                    handles.push(tokio::spawn(client_task(
                        client,
                        kind,
                        port,
                        task,
                        credentials.clone(),
                        stop2.clone(),
                        counters2.clone(),
                    )));
                }
                for handle in handles {
                    handle.await.expect("load task panicked");
                }
            });
        });
        Load { stop, counters, thread: Some(thread) }
    }

    /// Requests answered as expected so far.
    pub fn done(&self) -> u64 {
        self.counters.done.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more requests are done than now, so the load really runs
    /// (bounded; panics if it does not get there).
    pub fn wait_progress(&self, n: u64) {
        let target = self.done() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done() < target {
            assert!(
                Instant::now() < deadline,
                "load made no progress: {} done, {} failed",
                self.done(),
                self.counters.failed.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the tasks (each finishes its current request) and returns the totals.
    pub fn finish(mut self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("load thread panicked");
        }
        Totals {
            done: self.counters.done.load(Ordering::Relaxed),
            posts: self.counters.posts.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            failures: self.counters.failures.lock().unwrap().clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn client_task(
    client: reqwest::Client,
    kind: &str,
    port: u16,
    task: usize,
    credentials: Arc<Credentials>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        let (what, expected, request) = match (task + n) % 3 {
            0 => ("GET /notes", 200, credentials.attach(client.get(url("/notes")))),
            1 => ("GET /healthz/live", 200, client.get(url("/healthz/live"))),
            _ => {
                let title = format!("load {task}-{n}");
                let post = client
                    .post(url("/notes"))
                    .form(&[("title", title.as_str()), ("content", "under load")]);
                ("POST /notes", 303, credentials.attach(post))
            }
        };
        let outcome = match request.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                // Read the whole body: a connection cut mid-body is a failure too.
                match res.bytes().await {
                    Ok(_) if status == expected => Ok(()),
                    Ok(body) => Err(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )),
                    Err(e) => Err(format!("{status}, body error: {}", chain(&e))),
                }
            }
            Err(e) => Err(chain(&e)),
        };
        match outcome {
            Ok(()) => {
                counters.done.fetch_add(1, Ordering::Relaxed);
                if expected == 303 {
                    counters.posts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(message) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let mut failures = counters.failures.lock().unwrap();
                if failures.len() < 20 {
                    failures.push(format!("{what} ({kind} client): {message}"));
                }
            }
        }
    }
}

/// An error and its sources on one line (reqwest's Display hides the cause).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
