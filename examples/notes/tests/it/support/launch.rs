//! How a test runs the `server` binary: [`Launch`] (arguments, environment, user, wrapper),
//! run to completion into an [`Output`] or started as a [`Server`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::csrf::TESTER;
use super::files::{NOBODY, db_path};
use super::lines::Lines;
use super::postgres::{Database, PgDatabase};
use super::server::Server;

pub const BIN: &str = env!("CARGO_BIN_EXE_server");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
    /// The PostgreSQL database the server uses, kept until the last server using it ends.
    db: Option<Arc<PgDatabase>>,
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
            db: None,
        }
    }

    /// `--port 0 --database-dsn DIR/app.db`: what almost every test serves with.
    pub fn serve(dir: &Path) -> Launch {
        Launch::new(dir).args(["--port", "0", "--database-dsn"]).arg(db_path(dir))
    }

    /// `--port 0 --database-dsn DSN` of `db` (DIR/app.db, or a database on the PostgreSQL
    /// test cluster): [`Launch::serve`] on either engine.
    pub fn serve_on(db: &Database, dir: &Path) -> Launch {
        Launch::new(dir).args(["--port", "0"]).database(db)
    }

    /// Adds `--database-dsn DSN` of `db`, and keeps its PostgreSQL database while the
    /// servers started from this launch run.
    pub fn database(mut self, db: &Database) -> Launch {
        self.db = db.pg.clone();
        self.args(["--database-dsn", &db.dsn])
    }

    /// Adds `--tls-mode selfsigned --tls-cert-dir CERTS`.
    pub fn selfsigned(self, certs: &Path) -> Launch {
        self.args(["--tls-mode", "selfsigned", "--tls-cert-dir"]).arg(certs)
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

    /// The same run without the wrapper command.
    pub fn unwrapped(mut self) -> Launch {
        self.wrapper.clear();
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
        let (mut child, stdout, stderr, readers) = self.spawn_captured();
        if !stderr.wait_closed() || !stdout.wait_closed() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{}` did not exit; stderr so far:\n{}", self.describe(), stderr.text());
        }
        let status = child.wait().expect("wait for server");
        for reader in readers {
            let _ = reader.join();
        }
        Output { status, stdout: stdout.text(), stderr: stderr.text() }
    }

    /// Starts serving plain HTTP and waits for the `listening on http://127.0.0.1:PORT`
    /// line and the `ready` line after it.
    pub fn start(&self) -> Server {
        let mut server = self.spawn();
        server.wait_listening();
        server
    }

    /// Starts serving HTTPS (`--tls-mode selfsigned` or `manual`) and waits for the
    /// `listening on https://127.0.0.1:PORT` line and the `ready` line after it.
    pub fn start_https(&self) -> Server {
        let mut server = self.spawn();
        server.wait_listening_on("https");
        server
    }

    /// Starts and waits for the `ready` line only: for a server on ports the test chose
    /// (ACME mode), which logs no `listening on …://127.0.0.1:PORT` line to read one from.
    pub fn start_ready(&self) -> Server {
        let server = self.spawn();
        server.wait_for_log("ready", |l| l.contains("ready pid="));
        server
    }

    /// Starts the process and returns at once, its output being captured (port 0 until
    /// [`Server::wait_listening`]). For processes that exit by design, such as a `--pid-file`
    /// launcher that detaches the server.
    pub fn spawn(&self) -> Server {
        let (child, stdout, stderr, readers) = self.spawn_captured();
        Server::new(child, stdout, stderr, readers, self.describe(), self.db.clone(), self.clone())
    }

    /// The started child, its stdout and stderr as they are captured, and the threads
    /// capturing them.
    fn spawn_captured(&self) -> (Child, Lines, Lines, Vec<JoinHandle<()>>) {
        let mut child = spawn_when_not_busy(&mut self.command())
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        let (stdout, out_reader) = Lines::capture(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = Lines::capture(child.stderr.take().expect("piped stderr"));
        (child, stdout, stderr, vec![out_reader, err_reader])
    }
}

/// Starts `command`, and again for up to a second while its program is busy (ETXTBSY). A
/// test that has just written a binary (`install_binary`) can find it still open for
/// writing: a child that another test thread forked in the meantime holds a copy of the
/// descriptor until its own exec closes it, microseconds later. Go's `os/exec` tests retry
/// the same way.
fn spawn_when_not_busy(command: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            spawned => return spawned,
        }
    }
}

/// Fills DIR/app.db with `count` generated notes of [`TESTER`]'s (`server users create`,
/// `server generate-notes --user`); returns its path.
pub fn generate_notes(dir: &Path, count: usize) -> PathBuf {
    let db = db_path(dir);
    generate(Launch::new(dir).arg("--database-dsn").arg(&db), count);
    db
}

/// Fills `db` with `count` generated notes of [`TESTER`]'s, on either engine.
pub fn generate_notes_in(db: &Database, dir: &Path, count: usize) {
    generate(Launch::new(dir).database(db), count);
}

fn generate(launch: Launch, count: usize) {
    let created = launch.clone().args(["users", "create", TESTER]).run();
    assert!(created.code() == Some(0) || created.stderr.contains("taken"), "{created:?}");
    let out =
        launch.args(["generate-notes", "--user", TESTER, "--count", &count.to_string()]).run();
    assert_eq!(out.code(), Some(0), "generate-notes: {out:?}");
}

/// A program still open for writing elsewhere is started once it is closed, where a plain
/// spawn fails with ETXTBSY.
#[test]
fn a_program_open_for_writing_starts_once_it_is_closed() {
    use std::io::Write;
    let dir = super::files::tempdir();
    let program = dir.path().join("exits");
    let mut file = std::fs::File::create(&program).unwrap();
    file.write_all(b"#!/bin/sh\nexit 0\n").unwrap();
    super::files::chmod(&program, 0o755);
    let err = Command::new(&program).spawn().expect_err("started while open for writing");
    assert_eq!(err.kind(), std::io::ErrorKind::ExecutableFileBusy, "{err}");
    let closer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(file);
    });
    let mut child = spawn_when_not_busy(&mut Command::new(&program)).unwrap();
    assert!(child.wait().unwrap().success());
    closer.join().unwrap();
}
