//! A started `server` process: its port, its log, signals, and its end (SIGTERM when
//! dropped, its log printed if the test failed).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::csrf::Credentials;
use super::launch::Launch;
use super::lines::Lines;
use super::postgres::PgDatabase;

/// Sends a signal (`"HUP"`, `"TERM"`, `"KILL"`…) to `pid` with kill(1); false if kill
/// failed (e.g. no such process).
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running server; sent SIGTERM (then killed, if need be) when dropped. Its log is
/// printed when the test fails.
pub struct Server {
    child: Child,
    pub port: u16,
    stderr: Lines,
    stdout: Lines,
    readers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
    what: String,
    /// The PostgreSQL database it uses, dropped after the process ended.
    _db: Option<std::sync::Arc<PgDatabase>>,
    /// How it was started: its database, for signing in through the CLI.
    launch: Launch,
    /// A signed-in browser's cookies and token, made on first use.
    credentials: std::sync::Mutex<Option<Credentials>>,
}

impl Server {
    pub(super) fn new(
        child: Child,
        stdout: Lines,
        stderr: Lines,
        readers: Vec<JoinHandle<()>>,
        what: String,
        db: Option<std::sync::Arc<PgDatabase>>,
        launch: Launch,
    ) -> Server {
        let credentials = std::sync::Mutex::new(None);
        Server {
            child,
            port: 0,
            stderr,
            stdout,
            readers,
            exit: None,
            what,
            _db: db,
            launch,
            credentials,
        }
    }

    /// A sign-in link's path for `username` ([`super::csrf::login_link`]), e.g. for a
    /// real browser to open.
    pub fn login_link(&self, username: &str) -> String {
        super::csrf::login_link(&self.launch, username)
    }

    /// A signed-in browser's cookies and CSRF token ([`Credentials::sign_in`], once per
    /// server): what every notes page needs.
    pub fn credentials(&self) -> Credentials {
        let mut slot = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| Credentials::sign_in(&self.launch, self.port)).clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the `listening on http://127.0.0.1:PORT` line and the `ready` line after
    /// it (written by this process or by one it started: they share stderr), and sets
    /// `port`.
    pub fn wait_listening(&mut self) {
        self.wait_listening_on("http");
    }

    /// [`Server::wait_listening`] for `scheme` (`http` or `https`).
    pub(super) fn wait_listening_on(&mut self, scheme: &str) {
        let mark = format!("listening on {scheme}://127.0.0.1:");
        let Some((at, line)) = self.stderr.wait_for(0, |l| l.contains(&mark)) else {
            panic!("`{}` never logged `{mark}PORT`; stderr:\n{}", self.what, self.log().join("\n"));
        };
        let digits: String = line[line.find(&mark).unwrap() + mark.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        self.port = digits.parse().unwrap_or_else(|_| panic!("no port in `{line}`"));
        assert_ne!(self.port, 0, "listening line names port 0: {line}");
        if self.stderr.wait_for(at + 1, |l| l.contains("ready")).is_none() {
            panic!("`{}` never logged `ready`; stderr:\n{}", self.what, self.log().join("\n"));
        }
    }

    /// Waits up to `within` for the process itself (not one it started) to exit, and
    /// reaps it. `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit {
            return Some(status);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                self.exit = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many stderr lines were captured so far: a mark for [`Server::wait_for_log_after`].
    pub fn log_len(&self) -> usize {
        self.stderr.snapshot().len()
    }

    /// Waits for a log line at index `from` or later satisfying `pred`; returns its index
    /// and text.
    pub fn wait_for_log_after(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        match self.stderr.wait_for(from, pred) {
            Some(found) => found,
            None => {
                panic!("no log line {what} after line {from}; stderr:\n{}", self.log().join("\n"))
            }
        }
    }

    /// The stderr lines so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Waits for a log line satisfying `pred` (log lines are written while or just after
    /// a response is sent, so they may trail the response a little).
    pub fn wait_for_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.stderr.wait_for(0, pred) {
            Some((_, line)) => line,
            None => panic!("no log line {what}; stderr:\n{}", self.log().join("\n")),
        }
    }

    /// Sends SIGTERM and waits for the exit; all output has been read afterwards.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        signal(self.pid(), "TERM");
        if !self.stderr.wait_closed() {
            let _ = self.child.kill();
        }
        let status = self.child.wait().expect("wait for server");
        self.stdout.wait_closed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.exit = Some(status);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() {
            if let Ok(None) = self.child.try_wait() {
                signal(self.pid(), "TERM");
                if !self.stderr.wait_closed() {
                    let _ = self.child.kill();
                }
            }
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- stderr of `{}` (port {}) ----", self.what, self.port);
            for line in self.stderr.snapshot() {
                eprintln!("{line}");
            }
            eprintln!("---- end of stderr ----");
        }
    }
}
