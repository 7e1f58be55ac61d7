//! Test support: the real `server` binary as a child process, its output captured line by
//! line, and a few helpers for HTML answers.
//!
//! Every test gets its own temporary directory (database, config, PID file) and its own
//! port (`--port 0`; the port is read from the `listening on http://127.0.0.1:PORT` log
//! line), so tests run in parallel.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_server");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Upper bound for waiting on a child (a log line, its exit). Not a performance
/// assertion: it only keeps a broken server from hanging the suite forever.
const PATIENCE: Duration = Duration::from_secs(60);

/// UID/GID of `nobody`, for tests that need file permissions to apply (we run as root).
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------
// Captured output

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
    fn capture(pipe: impl Read + Send + 'static) -> (Lines, JoinHandle<()>) {
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
    fn wait_closed(&self) -> bool {
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

fn send_sigterm(pid: u32) {
    signal(pid, "TERM");
}

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

// ---------------------------------------------------------------------------------------
// Launching

/// The session hash key every server gets unless the test says otherwise (see
/// [`Launch::without_keys`]): 32 bytes as 64 hex characters.
pub const SESSION_HASH_KEY: &str =
    "5e5510a0c0ffee00112233445566778899aabbccddeeff00deadbeefcafe0001";
/// The CSRF key every server gets unless the test says otherwise.
pub const CSRF_KEY: &str = "c5bf00d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7c5bf0002";

/// A `server` invocation: arguments, environment, working directory, user.
///
/// The environment is cleared, so settings of the machine running the tests (`PORT`,
/// `HOST`, `DATABASE_DSN`…) cannot leak in. As in production, the session and CSRF keys
/// are configured ([`SESSION_HASH_KEY`], [`CSRF_KEY`]; a test's own `env` wins): without
/// them the server generates keys and logs a warning for each, which tests counting stderr
/// lines would see. [`Launch::without_keys`] runs a server without them.
#[derive(Clone)]
pub struct Launch {
    dir: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// Set SESSION_HASH_KEY and CSRF_KEY (before `envs`, which may override them).
    keys: bool,
    nobody: bool,
    /// The executable to run instead of `BIN` (e.g. a copy that a test replaces).
    program: Option<PathBuf>,
    /// A command the server runs under (e.g. `unshare --fork --pid`).
    wrapper: Vec<String>,
}

/// A finished `server` run.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Launch {
    /// A run with `dir` as working directory and no arguments.
    pub fn new(dir: &Path) -> Launch {
        Launch {
            dir: dir.to_path_buf(),
            args: Vec::new(),
            envs: Vec::new(),
            keys: true,
            nobody: false,
            program: None,
            wrapper: Vec::new(),
        }
    }

    /// `--port 0 --database-dsn DIR/app.db`: what almost every test serves with.
    pub fn serve(dir: &Path) -> Launch {
        Launch::new(dir).args(["--port", "0", "--database-dsn"]).arg(db_path(dir))
    }

    pub fn arg(mut self, arg: impl AsRef<Path>) -> Launch {
        self.args.push(arg.as_ref().to_str().expect("utf-8 argument").to_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs without the default SESSION_HASH_KEY and CSRF_KEY (keys set with
    /// [`Launch::env`] still apply): the server generates keys and warns about each.
    pub fn without_keys(mut self) -> Launch {
        self.keys = false;
        self
    }

    /// Runs `program` instead of the `server` binary the tests were built with.
    pub fn program(mut self, program: &Path) -> Launch {
        self.program = Some(program.to_path_buf());
        self
    }

    /// Runs the server under a wrapper command, e.g. `["unshare", "--fork", "--pid"]`.
    pub fn wrapped<I, S>(mut self, wrapper: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.wrapper = wrapper.into_iter().map(|a| a.as_ref().to_string()).collect();
        self
    }

    /// Runs the server as user and group `nobody` (through `setpriv`), so that file
    /// permissions apply although the tests run as root.
    pub fn nobody(mut self) -> Launch {
        self.nobody = true;
        self
    }

    fn command(&self) -> Command {
        let program = self.program.clone().unwrap_or_else(|| PathBuf::from(BIN));
        let mut line: Vec<std::ffi::OsString> = self.wrapper.iter().map(Into::into).collect();
        if self.nobody {
            line.extend([
                "setpriv".into(),
                format!("--reuid={NOBODY}").into(),
                format!("--regid={NOBODY}").into(),
                "--clear-groups".into(),
            ]);
        }
        line.push(program.into_os_string());
        let mut cmd = Command::new(&line[0]);
        cmd.args(&line[1..])
            .args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        if self.keys {
            cmd.env("SESSION_HASH_KEY", SESSION_HASH_KEY).env("CSRF_KEY", CSRF_KEY);
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn describe(&self) -> String {
        let user = if self.nobody { " (as nobody)" } else { "" };
        let keys = if self.keys { "SESSION_HASH_KEY=… CSRF_KEY=… " } else { "" };
        let envs: String = self.envs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let wrapper: String = self.wrapper.iter().map(|w| format!("{w} ")).collect();
        let program = self
            .program
            .as_deref()
            .map_or_else(|| "server".to_string(), |p| p.display().to_string());
        format!("{keys}{envs}{wrapper}{program} {}{user}", self.args.join(" "))
    }

    /// Runs to completion (for commands and start-up errors) and returns its output.
    /// Panics if it is still running after a generous delay (e.g. it started serving).
    pub fn run(&self) -> Output {
        let mut child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        let (stdout, out_reader) = Lines::capture(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = Lines::capture(child.stderr.take().expect("piped stderr"));
        if !stderr.wait_closed() || !stdout.wait_closed() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{}` did not exit; stderr so far:\n{}",
                self.describe(),
                stderr.snapshot().join("\n")
            );
        }
        let status = child.wait().expect("wait for server");
        let _ = out_reader.join();
        let _ = err_reader.join();
        let join =
            |lines: &Lines| lines.snapshot().iter().map(|l| format!("{l}\n")).collect::<String>();
        Output { status, stdout: join(&stdout), stderr: join(&stderr) }
    }

    /// Starts serving and waits for the `listening on http://127.0.0.1:PORT` line and the
    /// `ready` line after it.
    pub fn start(&self) -> Server {
        let mut server = self.spawn();
        server.wait_listening();
        server
    }

    /// Starts the process and returns at once, its output being captured (port 0 until
    /// [`Server::wait_listening`]). For processes that exit by design, such as a `--pid-file`
    /// launcher that detaches the server.
    pub fn spawn(&self) -> Server {
        let mut child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        let (stdout, out_reader) = Lines::capture(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = Lines::capture(child.stderr.take().expect("piped stderr"));
        Server {
            child,
            port: 0,
            stderr,
            stdout,
            readers: vec![out_reader, err_reader],
            exit: None,
            what: self.describe(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A serving child

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
}

impl Server {
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
        const MARK: &str = "listening on http://127.0.0.1:";
        let Some((at, line)) = self.stderr.wait_for(0, |l| l.contains(MARK)) else {
            panic!(
                "`{}` never logged `{MARK}PORT`; stderr:\n{}",
                self.what,
                self.stderr.snapshot().join("\n")
            );
        };
        let digits: String = line[line.find(MARK).unwrap() + MARK.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        self.port = digits.parse().unwrap_or_else(|_| panic!("no port in `{line}`"));
        assert_ne!(self.port, 0, "listening line names port 0: {line}");
        if self.stderr.wait_for(at + 1, |l| l.contains("ready")).is_none() {
            panic!(
                "`{}` never logged `ready`; stderr:\n{}",
                self.what,
                self.stderr.snapshot().join("\n")
            );
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
        send_sigterm(self.pid());
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
                send_sigterm(self.pid());
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

// ---------------------------------------------------------------------------------------
// Files and directories

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("notes-it-").tempdir().expect("create a temporary directory")
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("app.db")
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// True if running as root and `setpriv` exists, which the `nobody` tests need.
pub fn can_drop_privileges() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    root && setpriv
}

/// The names of the files in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// HTTP

/// An HTTP client that does not follow redirects (303s stay visible) and keeps no
/// connections alive across a server restart.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("build the HTTP client")
}

/// The ids of the `id="note-{id}"` elements in an HTML answer, in document order.
pub fn note_ids(html: &str) -> Vec<i64> {
    const MARK: &str = "id=\"note-";
    let mut ids = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && rest[digits.len()..].starts_with('"') {
            ids.push(digits.parse().expect("note id"));
        }
    }
    ids
}

pub fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().expect("ASCII header").to_string())
}

/// Posts the note form, with the cookies and CSRF token of a freshly loaded form, and
/// returns the new note's id, from `Location: /notes/{id}`.
pub async fn create_note(
    client: &reqwest::Client,
    server: &Server,
    title: &str,
    content: &str,
) -> i64 {
    let credentials = Credentials::fetch(server.port);
    let res = credentials
        .attach(client.post(server.url("/notes")))
        .form(&[("title", title), ("content", content)])
        .send()
        .await
        .expect("POST /notes");
    if res.status() != 303 {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        panic!("POST /notes {:?}: expected 303, got {status}:\n{}", short(title), short(&body));
    }
    let location = header(&res, "location").expect("Location header on 303");
    location
        .strip_prefix("/notes/")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("Location `{location}` is not /notes/{{id}}"))
}

/// GETs `path` and returns status and body.
pub async fn get(client: &reqwest::Client, server: &Server, path: &str) -> (u16, String) {
    let res =
        client.get(server.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// GETs `path` as htmx does (`HX-Request: true`).
pub async fn get_htmx(client: &reqwest::Client, server: &Server, path: &str) -> (u16, String) {
    let res = client
        .get(server.url(path))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Percent-encodes a query-string value (the client has no query builder).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// At most the first 4000 characters of `text`, for assertion messages.
pub fn short(text: &str) -> &str {
    match text.char_indices().nth(4000) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// A response read off a raw socket.
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A new connection to the server's port, with generous read and write timeouts.
pub fn connect(port: u16) -> std::io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// `GET path` on a new connection (`Connection: close`); an error instead of a panic if
/// the connection or the answer fails.
pub fn raw_get(port: u16, path: &str) -> std::io::Result<RawResponse> {
    use std::io::Write;
    let mut stream = connect(port)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
    read_response(&mut BufReader::new(stream))
}

/// POSTs a form of `body.len()` bytes the way curl sends large bodies: with
/// `Expect: 100-continue`, sending the body only if the server asks for it with
/// `100 Continue`. A server that rejects the request from its headers (413) answers
/// before any body byte is sent, so the answer cannot be lost to a connection reset
/// while the client is still writing, as it can with a client that writes eagerly.
pub fn post_expecting_continue(
    server: &Server,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    use std::io::Write;
    let mut stream = connect(server.port).expect("connect");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n",
        server.port,
        body.len()
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write request head");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut response = read_response(&mut reader).expect("read the answer to the request head");
    if response.status == 100 {
        stream.write_all(body).expect("write body after 100 Continue");
        response = read_response(&mut reader).expect("read the answer after the body");
    }
    response
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Reads one response (status line, headers, body by Content-Length, chunks or EOF; no
/// body after `100 Continue`).
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<RawResponse> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before the status line",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) =
            trimmed.split_once(':').ok_or_else(|| invalid(format!("bad header {trimmed:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = RawResponse { status, headers, body: Vec::new() };
    if status == 100 {
        return Ok(response);
    }
    if let Some(length) = response.header("content-length") {
        let mut body =
            vec![0; length.parse().map_err(|_| invalid(format!("bad content-length {length}")))?];
        reader.read_exact(&mut body)?;
        response.body = body;
    } else if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// CSRF

/// What a browser holds after loading a form: its cookies (among them the `_csrf` cookie)
/// and the form's CSRF token, which every POST, PUT, PATCH and DELETE must carry.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// `name=value; name=value`, for a `Cookie` header.
    pub cookie: String,
    /// The `csrf_token` field of the form.
    pub token: String,
}

impl Credentials {
    /// Loads `GET /notes/new` (the new-note form) as a browser would, on a new connection.
    pub fn fetch(port: u16) -> Credentials {
        let res = raw_get(port, "/notes/new").expect("GET /notes/new");
        let html = String::from_utf8_lossy(&res.body);
        assert_eq!(res.status, 200, "GET /notes/new: {html}");
        let cookie = res
            .headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.split(';').next().unwrap_or("").trim())
            .collect::<Vec<_>>()
            .join("; ");
        Credentials { cookie, token: csrf_token(&html).unwrap_or_default() }
    }

    /// The headers that carry these credentials (`Cookie`, `X-CSRF-Token`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if !self.cookie.is_empty() {
            headers.push(("Cookie", self.cookie.clone()));
        }
        if !self.token.is_empty() {
            headers.push(("X-CSRF-Token", self.token.clone()));
        }
        headers
    }

    /// Adds these credentials' headers to a request.
    pub fn attach(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        request
    }
}

/// The value of the first `<input type="hidden" name="csrf_token" value="…">` of a page.
pub fn csrf_token(html: &str) -> Option<String> {
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    html.find(FIELD).map(|at| html[at + FIELD.len()..].chars().take_while(|&c| c != '"').collect())
}
