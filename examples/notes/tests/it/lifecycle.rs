//! Running and stopping: graceful shutdown on SIGTERM, the PID file, the JSON log, and the
//! process lifecycle of docs/lifecycle.md: zero-downtime restart on SIGHUP (under load,
//! with a replaced binary, failed upgrades), detaching for systemd's Type=forking,
//! Type=notify messages, simple mode as PID 1.
//!
//! Servers that a restart starts are not the test's children: they are found through the
//! PID file and `/proc`, and killed at the end of each test by a [`Cleanup`] guard.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::both_engines;
use crate::support::fds::{Fds, fd_counts, fd_counts_to, server_has_read_its_connections};
use crate::support::load::Load;
use crate::support::probes::{SlowPost, live, live_version, post_note};
use crate::support::procs::{
    Cleanup, alive, children_of, processes_mentioning, read_pid_file, replace_file, stop,
    wait_for_successor, wait_gone, wait_until, with_pid_file,
};
use crate::support::{
    BIN, Credentials, Database, Engine, Launch, PATIENCE, Server, VERSION, client, db_path,
    files_in, get, raw_get, signal, tempdir,
};

both_engines!(sigterm_shuts_down_gracefully_and_keeps_the_data, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let mut server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let id = post_note(
        server.port,
        &server.credentials(),
        "Survives a restart",
        "written before SIGTERM",
    )
    .expect("create a note");

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status:?}");
    assert!(
        server.log().iter().any(|l| l.contains("stopped")),
        "no `stopped` line:\n{}",
        server.log().join("\n")
    );

    if engine == Engine::Sqlite {
        let conn = rusqlite::Connection::open_with_flags(
            db.path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
    // No connection of the stopped server is left on the database server.
    if engine == Engine::Postgres {
        let left = db.psql(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        assert_eq!(left.trim(), "0", "sessions left after SIGTERM");
    }

    // The same database serves the note after a restart (migrations are not reapplied).
    let server = Launch::serve_on(&db, dir.path()).start();
    let (status, body) = get(&http, &server, &format!("/notes/{id}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("Survives a restart"), "{body}");
    assert!(
        !server.log().iter().any(|l| l.contains("0001_notes.up.sql")),
        "migration applied twice:\n{}",
        server.log().join("\n")
    );
});

#[tokio::test]
async fn pid_file_names_the_server_while_it_runs() {
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    // `--detach false`: the process started here is the server (see `forking_*` for detaching).
    let mut server = with_pid_file(Launch::serve(dir.path()), &pid_file).start();
    // `start` returned after the `ready` line, which is logged once the PID file is written.
    let content = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("PID file {} after ready: {e}", pid_file.display()));
    assert_eq!(content.trim(), server.pid().to_string(), "PID file content {content:?}");
    let (status, _) = get(&client(), &server, "/healthz/live").await;
    assert_eq!(status, 200);

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!pid_file.exists(), "PID file left after SIGTERM");
    let leftovers: Vec<_> =
        files_in(dir.path()).into_iter().filter(|f| f.contains("pid")).collect();
    assert!(leftovers.is_empty(), "PID temporary files left: {leftovers:?}");
}

#[tokio::test]
async fn json_log_format() {
    let dir = tempdir();
    let mut server = Launch::serve(dir.path()).args(["--log-format", "json"]).start();
    let res = (server.credentials().attach(client().get(server.url("/notes"))))
        .header("X-Request-Id", "json-log-req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client()
        .get(server.url("/missing"))
        .header("X-Request-Id", "json-log-req-2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    for (request_id, path, status) in
        [("json-log-req-1", "/notes", 200), ("json-log-req-2", "/missing", 404)]
    {
        let line = server
            .wait_for_log(&format!("with request_id {request_id}"), |l| l.contains(request_id));
        let entry: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {line}"));
        let find = |field: &str| {
            entry.get(field).or_else(|| entry["fields"].get(field)).cloned().unwrap_or(Value::Null)
        };
        assert_eq!(find("method"), "GET", "{line}");
        assert_eq!(find("path"), path, "{line}");
        assert_eq!(find("status"), status, "{line}");
        assert_eq!(find("request_id"), request_id, "{line}");
    }

    assert_eq!(server.terminate().code(), Some(0));
    let log = server.log();
    assert!(log.len() >= 4, "too few log lines: {log:?}");
    for line in &log {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(entry.is_object(), "log line is not an object: {line}");
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Checks, about five times over one second, that `pid` still runs and serves and that
/// the PID file still names it.
fn keeps_serving(port: u16, pid: u32, pid_file: &Path) {
    for _ in 0..5 {
        assert!(alive(pid), "process {pid} is gone");
        assert_eq!(read_pid_file(pid_file), Some(pid), "the PID file no longer names {pid}");
        if let Err(e) = live_version(port) {
            panic!("process {pid} does not serve: {e}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies `binary` to DIR/bin/server (mode 755) and returns that path, which a test may
/// then replace, as a deployment does.
fn install_binary(dir: &Path, binary: &Path) -> PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let path = bin_dir.join("server");
    let bytes = std::fs::read(binary).unwrap_or_else(|e| panic!("read {}: {e}", binary.display()));
    replace_file(&path, &bytes, 0o755);
    path
}

fn count_lines(server: &Server, needle: &str) -> usize {
    server.log().iter().filter(|l| l.contains(needle)).count()
}

// ---------------------------------------------------------------------------------------
// Zero-downtime restart (SIGHUP)

// On SQLite and on PostgreSQL (`::sqlite`, `::postgres`).
both_engines!(blocking sighup_restarts_under_load_without_failing_a_request, |engine: Engine| {
    const RESTARTS: usize = 10;
    const CLIENTS: usize = 32;
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let pid_file = dir.path().join("server.pid");
    let mut server = with_pid_file(Launch::serve_on(&db, dir.path()), &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let port = server.port;
    let mut pid = read_pid_file(&pid_file).expect("PID file after ready");
    assert_eq!(pid, server.pid(), "with --detach false the PID file names the process started");

    // Cookies and CSRF token from the first process: they must stay valid across restarts
    // (the keys are configured; sighup_keeps_generated_secrets_and_stop_start_does_not
    // checks generated ones).
    let credentials = server.credentials();
    let load = Load::start(port, CLIENTS, &credentials);
    load.wait_progress(50);
    let database = db_path(dir.path());
    // On PostgreSQL each pooled connection also holds epoll/eventfd descriptors: they follow
    // the load as the connections do.
    let stable = |f: &Fds| match engine {
        Engine::Sqlite => f.stable(),
        Engine::Postgres => f.stable_on_postgres(),
    };
    let pg_port = (engine == Engine::Postgres).then(|| {
        let authority = db.dsn.split('@').nth(1).expect("user@host:port in the DSN");
        let port = authority.split('/').next().unwrap().rsplit_once(':').expect("a port").1;
        port.parse::<u16>().expect("the PostgreSQL port")
    });
    let mut fds = vec![fd_counts_to(pid, &database, pg_port)];
    let mut slow_failures = Vec::new();
    let mut slow_created = 0;
    let mut pids = vec![pid];
    for round in 1..=RESTARTS {
        let slow = SlowPost::start(
            port,
            &credentials,
            &format!("slow {round}"),
            Duration::from_millis(1500),
        );
        let old = pid;
        assert!(signal(old, "HUP"), "kill -HUP {old} failed");
        pid = wait_for_successor(&pid_file, port, old);
        wait_gone(old);
        match slow.expect_created() {
            Ok(_) => slow_created += 1,
            Err(e) => slow_failures.push(format!("round {round}: {e}")),
        }
        fds.push(fd_counts_to(pid, &database, pg_port));
        pids.push(pid);
        load.wait_progress(10);
    }
    let totals = load.finish();
    eprintln!(
        "restart under load on {engine:?}: {} requests done ({} POSTs), {} failed, {RESTARTS} restarts, \
         {slow_created} slow POSTs created; PIDs {pids:?}; stable descriptors per generation {:?}; \
         all {:?}",
        totals.done,
        totals.posts,
        totals.failed,
        fds.iter().map(stable).collect::<Vec<_>>(),
        fds.iter().map(|f| f.all).collect::<Vec<_>>()
    );

    let first = server.wait_exit(PATIENCE).expect("the first process exits after the hand-over");
    assert_eq!(first.code(), Some(0), "exit status of the first process after its restart");
    stop(pid);
    assert!(!pid_file.exists(), "PID file left after SIGTERM to the last process");

    assert_eq!(
        totals.failed, 0,
        "failed requests during {RESTARTS} restarts: {:#?}",
        totals.failures
    );
    assert!(
        slow_failures.is_empty(),
        "slow requests that did not complete with 303: {slow_failures:#?}"
    );
    assert_eq!(count_lines(&server, "SIGHUP received"), RESTARTS, "`SIGHUP received` lines");
    assert_eq!(count_lines(&server, "restart failed"), 0, "a restart failed");
    // Every 303 stored its note, exactly once.
    assert_eq!(
        db.count_notes(),
        totals.posts as i64 + RESTARTS as i64,
        "notes in the database vs POSTs answered 303"
    );
    // Descriptors do not pile up from one generation to the next (client connections and
    // SQLite files excluded: they follow the load). The first process has inherited
    // nothing; compare from the first restarted one.
    let stable: Vec<usize> = fds.iter().map(stable).collect();
    for (generation, &count) in stable.iter().enumerate().skip(2) {
        assert!(
            count <= stable[1] + 2,
            "process generation {generation} has {count} descriptors, generation 1 had {}: \
             {stable:?} ({fds:?})",
            stable[1]
        );
    }
});

#[test]
fn sighup_picks_up_a_binary_replaced_on_disk() {
    let hello = Path::new(BIN).with_file_name("hello");
    assert!(
        hello.exists(),
        "{} not found: build the `hello` example with the same profile and target as this test \
         (e.g. `cargo build -p hello`, or \
         `cargo build --release --target x86_64-unknown-linux-gnu -p hello`; scripts/test.sh \
         builds it)",
        hello.display()
    );
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    let bin = install_binary(dir.path(), Path::new(BIN));
    let server = with_pid_file(Launch::serve(dir.path()).program(&bin), &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, old) = (server.port, server.pid());
    assert_eq!(live_version(port), Ok(VERSION.to_string()));
    let home = raw_get(port, "/").expect("GET /");
    assert_eq!(home.status, 200);
    assert!(!String::from_utf8_lossy(&home.body).contains("Hello from Burrow!"));

    // Deploy: the new binary is renamed over the old one while it runs.
    replace_file(&bin, &std::fs::read(&hello).unwrap(), 0o755);
    assert!(signal(old, "HUP"));
    let new = wait_for_successor(&pid_file, port, old);
    wait_gone(old);
    assert_eq!(read_pid_file(&pid_file), Some(new));
    assert_eq!(
        live_version(port),
        Ok(format!("{VERSION}+hello")),
        "/healthz/live after the restart into `hello`"
    );
    let home = raw_get(port, "/").expect("GET / after the restart");
    assert_eq!(home.status, 200);
    assert!(
        String::from_utf8_lossy(&home.body).contains("Hello from Burrow!"),
        "GET / after the restart: {:?}",
        String::from_utf8_lossy(&home.body)
    );
    stop(new);
    assert!(!pid_file.exists(), "PID file left after SIGTERM");
}

#[test]
fn failed_upgrade_binary_that_exits_changes_nothing() {
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    let bin = install_binary(dir.path(), Path::new(BIN));
    let server = with_pid_file(Launch::serve(dir.path()).program(&bin), &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, old) = (server.port, server.pid());

    replace_file(&bin, b"#!/bin/sh\nexit 1\n", 0o755);
    let mark = server.log_len();
    assert!(signal(old, "HUP"));
    let (_, line) =
        server.wait_for_log_after(mark, "`restart failed`", |l| l.contains("restart failed"));
    eprintln!("logged: {line}");
    keeps_serving(port, old, &pid_file);
    assert_eq!(
        processes_mentioning(dir.path().to_str().unwrap()),
        vec![old],
        "processes left after the failed restart"
    );

    // The next deployment works.
    replace_file(&bin, &std::fs::read(BIN).unwrap(), 0o755);
    assert!(signal(old, "HUP"));
    let new = wait_for_successor(&pid_file, port, old);
    wait_gone(old);
    stop(new);
}

#[test]
fn failed_upgrade_invalid_config_changes_nothing() {
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    let config = dir.path().join("app.toml");
    // The port comes from the file (not `--port`, which would win over it), so the invalid
    // value below is the one in effect.
    let valid = "[server]\nport = 0\n\n[log]\nlevel = \"info\"\n";
    std::fs::write(&config, valid).unwrap();
    let launch = Launch::new(dir.path())
        .arg("--database-dsn")
        .arg(db_path(dir.path()))
        .arg("--config")
        .arg(&config);
    let server = with_pid_file(launch, &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, old) = (server.port, server.pid());

    replace_file(&config, b"[server]\nport = \"x\"\n", 0o644);
    let mark = server.log_len();
    assert!(signal(old, "HUP"));
    let (_, line) =
        server.wait_for_log_after(mark, "`restart failed`", |l| l.contains("restart failed"));
    eprintln!("logged: {line}");
    keeps_serving(port, old, &pid_file);

    replace_file(&config, valid.as_bytes(), 0o644);
    assert!(signal(old, "HUP"));
    let new = wait_for_successor(&pid_file, port, old);
    wait_gone(old);
    assert!(live(port));
    stop(new);
}

#[test]
fn sighup_during_a_restart_is_ignored() {
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    let server = with_pid_file(Launch::serve(dir.path()), &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, old) = (server.port, server.pid());

    // A slow request keeps the old process draining for a while after the hand-over, so
    // the second SIGHUP falls into the restart or the drain, whatever the machine's speed.
    let slow =
        SlowPost::start(port, &server.credentials(), "during two SIGHUPs", Duration::from_secs(2));
    let mark = server.log_len();
    assert!(signal(old, "HUP"));
    // Two signals sent back to back could merge into one pending signal; send the second
    // once the first has been handled.
    let (at, _) =
        server.wait_for_log_after(mark, "`SIGHUP received`", |l| l.contains("SIGHUP received"));
    assert!(signal(old, "HUP"), "the old process is gone right after the first SIGHUP");
    let (_, line) =
        server.wait_for_log_after(at + 1, "`SIGHUP ignored`", |l| l.contains("SIGHUP ignored"));
    eprintln!("logged: {line}");

    let new = wait_for_successor(&pid_file, port, old);
    wait_gone(old);
    assert_eq!(slow.expect_created().map(|_| ()), Ok(()));
    // Exactly one new process, and it stays the only one.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        processes_mentioning(dir.path().to_str().unwrap()),
        vec![new],
        "server processes after two SIGHUPs"
    );
    assert_eq!(read_pid_file(&pid_file), Some(new));
    let ready_lines = server.log().iter().filter(|l| l.contains("ready pid=")).count();
    assert_eq!(
        ready_lines,
        2,
        "`ready` lines (first process + one new one):\n{}",
        server.log().join("\n")
    );
    assert_eq!(count_lines(&server, "SIGHUP received"), 1, "`SIGHUP received` lines");
    // The new process inherited no client connection of the old one (the slow request's
    // was open when it started): once idle, it holds no TCP connection at all.
    wait_until(Duration::from_secs(10), "the idle new process holds no TCP connection", |state| {
        let fds = fd_counts(new, &db_path(dir.path()));
        *state = format!("{fds:?}");
        (fds.connections == 0).then_some(())
    });
    stop(new);
}

#[test]
fn sighup_keeps_generated_secrets_and_stop_start_does_not() {
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    // No CSRF or session key is configured: the server generates them.
    let mut server = with_pid_file(Launch::serve(dir.path()).without_keys(), &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, old) = (server.port, server.pid());
    let credentials = server.credentials();
    assert!(
        !credentials.token.is_empty() && !credentials.cookie.is_empty(),
        "the new-note form has no CSRF token or no cookie, so there is no generated secret to \
         check: {credentials:?}"
    );
    post_note(port, &credentials, "before the restart", "").expect("POST with the form's token");
    let forged =
        Credentials { token: credentials.token.chars().rev().collect(), ..credentials.clone() };
    assert!(
        post_note(port, &forged, "forged", "").is_err(),
        "a POST with a wrong CSRF token was accepted"
    );

    assert!(signal(old, "HUP"));
    let new = wait_for_successor(&pid_file, port, old);
    wait_gone(old);
    // The form loaded from the old process still posts: the keys were handed over.
    post_note(port, &credentials, "after the restart", "")
        .expect("POST with a token of the previous process after SIGHUP");
    // Not through the environment (the test starts the server with PATH alone; what the
    // restart adds may name descriptors, not carry keys) nor through a file.
    let environ =
        std::fs::read(format!("/proc/{new}/environ")).expect("environment of the new process");
    for var in String::from_utf8_lossy(&environ)
        .split('\0')
        .filter(|v| !v.is_empty() && !v.starts_with("PATH="))
    {
        assert!(
            var.len() <= 40,
            "the new process's environment holds a long value, a secret?: {var}"
        );
    }
    let extra: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|f| !f.starts_with("app.db") && f != "server.pid")
        .collect();
    assert!(extra.is_empty(), "files besides the database and the PID file: {extra:?}");
    let log = server.log().join("\n");
    let first_status =
        server.wait_exit(PATIENCE).expect("the first process exits after the hand-over");
    assert_eq!(first_status.code(), Some(0));
    stop(new);
    drop(server);

    // A stop/start generates new keys: the old form no longer posts.
    let server = Launch::serve(dir.path()).without_keys().start();
    let res = post_note(server.port, &credentials, "after a stop/start", "");
    assert!(
        res.as_ref().is_err_and(|e| e.contains("403")),
        "POST with a token of a stopped server: {res:?}\nlog before:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown

both_engines!(blocking sigterm_lets_a_slow_request_finish, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let pid_file = dir.path().join("server.pid");
    let mut server = with_pid_file(Launch::serve_on(&db, dir.path()), &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, pid) = (server.port, server.pid());

    let slow = SlowPost::start(
        port,
        &server.credentials(),
        "finished during shutdown",
        Duration::from_secs(2),
    );
    // Shut down only once the server has accepted the connection and read the request head
    // (its socket has no unread bytes): the request is in flight, not waiting in the backlog.
    wait_until(PATIENCE, "the server reads the slow request", |state| {
        *state = "no accepted connection with its bytes read".into();
        server_has_read_its_connections(pid).then_some(())
    });
    assert!(signal(pid, "TERM"));
    server.wait_for_log("`SIGTERM received; shutting down`", |l| {
        l.contains("SIGTERM received; shutting down")
    });
    // Signals during the drain change nothing, and the log says so (a SIGHUP that restarted
    // a stopping server, or vanished without a word, would surprise an operator).
    assert!(signal(pid, "HUP"));
    server.wait_for_log("`SIGHUP ignored` while draining", |l| {
        l.contains("SIGHUP ignored: this process is already shutting down")
    });
    let id = slow.expect_created().expect("the request in flight completes with 303");
    let status = server.wait_exit(PATIENCE).expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status:?}");
    assert_eq!(count_lines(&server, "SIGHUP received"), 0, "a stopping server restarted");
    server.wait_for_log("`stopped`", |l| l.contains("stopped"));
    assert!(!pid_file.exists(), "PID file left after SIGTERM");
    drop(server);

    let server = Launch::serve_on(&db, dir.path()).start();
    let request = crate::support::RawRequest::get(server.port, &format!("/notes/{id}"));
    let res = request.headers(server.credentials().headers()).send().expect("GET the note");
    assert_eq!(res.status, 200);
    assert!(String::from_utf8_lossy(&res.body).contains("finished during shutdown"));
});

// ---------------------------------------------------------------------------------------
// PID 1: simple mode

#[test]
fn as_pid_1_sighup_is_ignored_and_sigterm_drains() {
    let dir = tempdir();
    let mut server =
        Launch::serve(dir.path()).wrapped(["unshare", "--fork", "--pid", "--mount-proc"]).start();
    let _cleanup = Cleanup::new(dir.path());
    let port = server.port;
    // `unshare --fork` is the test's child; the server (PID 1 inside) is its child.
    let host_pid =
        wait_until(Duration::from_secs(10), "the server under unshare is found", |state| {
            let children = children_of(server.pid());
            *state = format!("children of unshare ({}): {children:?}", server.pid());
            children.first().copied()
        });
    let mode = server.wait_for_log("naming simple mode", |l| l.contains("simple"));
    assert!(mode.contains("PID 1"), "mode line does not give PID 1 as the reason: {mode}");

    let mark = server.log_len();
    assert!(signal(host_pid, "HUP"));
    server.wait_for_log_after(mark, "`SIGHUP ignored`", |l| l.contains("SIGHUP ignored"));
    for _ in 0..5 {
        assert!(alive(host_pid), "the server stopped on SIGHUP");
        assert!(live(port), "the server does not answer after SIGHUP");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        children_of(server.pid()),
        vec![host_pid],
        "SIGHUP as PID 1 started another process"
    );

    assert!(signal(host_pid, "TERM"));
    let status = server.wait_exit(PATIENCE).expect("unshare exits after the server's SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status of unshare (the server's): {status:?}");
    server.wait_for_log("`stopped`", |l| l.contains("stopped"));
}

// ---------------------------------------------------------------------------------------
// systemd

/// What systemd does with deploy/systemd/server-forking.service: ExecStart returns once the
/// server is up; MAINPID comes from PIDFile; ExecReload is `kill -HUP $MAINPID`.
#[test]
fn forking_unit_start_reload_stop() {
    let dir = tempdir();
    let pid_file = dir.path().join("server.pid");
    let dsn = format!("sqlite:///{}", db_path(dir.path()).display());
    assert!(dsn.starts_with("sqlite:////"), "{dsn}");
    let mut exec_start = Launch::new(dir.path())
        .arg("--pid-file")
        .arg(&pid_file)
        .args(["--database-dsn", &dsn, "--port", "0"])
        .spawn();
    let _cleanup = Cleanup::new(dir.path());
    let status = exec_start
        .wait_exit(PATIENCE)
        .unwrap_or_else(|| panic!("ExecStart did not exit; log:\n{}", exec_start.log().join("\n")));
    assert_eq!(
        status.code(),
        Some(0),
        "ExecStart exit status; log:\n{}",
        exec_start.log().join("\n")
    );
    // The server logs to the stderr it inherited; --port 0, so the port comes from there.
    exec_start.wait_listening();
    let port = exec_start.port;
    let mut main_pid = read_pid_file(&pid_file).expect("PIDFile once ExecStart returned");
    assert_ne!(main_pid, exec_start.pid(), "the PID file names ExecStart's own process");
    assert!(alive(main_pid), "MAINPID {main_pid} is not running");
    assert!(live(port), "MAINPID {main_pid} does not serve");

    let load = Load::start(port, 8, &exec_start.credentials());
    load.wait_progress(20);
    for _ in 0..5 {
        let old = main_pid;
        assert!(signal(old, "HUP"), "ExecReload: kill -HUP {old} failed");
        wait_gone(old);
        main_pid = read_pid_file(&pid_file).expect("PIDFile after a reload");
        assert_ne!(main_pid, old, "the PID file still names the process that exited");
        assert!(alive(main_pid), "new MAINPID {main_pid} is not running");
        assert!(live(port), "new MAINPID {main_pid} does not serve");
        load.wait_progress(10);
    }
    let totals = load.finish();
    eprintln!("forking unit: {} requests done, {} failed, 5 reloads", totals.done, totals.failed);
    assert_eq!(totals.failed, 0, "failed requests during reloads: {:#?}", totals.failures);

    stop(main_pid);
    assert!(!pid_file.exists(), "PID file left after stop");

    // A start that fails: ExecStart exits 2 with one line, and writes no PID file.
    let bad_dir = tempdir();
    let bad_pid_file = bad_dir.path().join("server.pid");
    let out = Launch::new(bad_dir.path())
        .arg("--pid-file")
        .arg(&bad_pid_file)
        .args([
            "--database-dsn",
            &format!("sqlite:///{}", db_path(bad_dir.path()).display()),
            "--port",
            "not-a-port",
        ])
        .run();
    assert_eq!(out.code(), Some(2), "ExecStart with a bad --port: {out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {:?}", out.stderr);
    assert!(lines[0].starts_with("server: error: ") && lines[0].contains("port"), "{:?}", lines[0]);
    assert!(!bad_pid_file.exists(), "PID file written by a failed start");
}

/// Receives sd_notify datagrams until one satisfies `pred`; every message is kept in `all`.
fn receive_until(
    socket: &std::os::unix::net::UnixDatagram,
    all: &mut Vec<String>,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut buf = vec![0u8; 4096];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                all.push(message.clone());
                if pred(&message) {
                    return message;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("receive on the notify socket: {e}"),
        }
        assert!(Instant::now() < deadline, "no notification {what}; received: {all:?}");
    }
}

#[test]
fn notify_unit_ready_reloading_stopping() {
    let dir = tempdir();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let server =
        Launch::serve(dir.path()).env("NOTIFY_SOCKET", socket_path.to_str().unwrap()).start();
    let _cleanup = Cleanup::new(dir.path());
    let (port, old) = (server.port, server.pid());
    let mut all = Vec::new();
    receive_until(&socket, &mut all, "READY=1", |m| m.lines().any(|l| l == "READY=1"));

    assert!(signal(old, "HUP"));
    let reloading =
        receive_until(&socket, &mut all, "RELOADING=1", |m| m.lines().any(|l| l == "RELOADING=1"));
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 without MONOTONIC_USEC=: {reloading:?}"
    );
    let main = receive_until(&socket, &mut all, "MAINPID=", |m| {
        m.lines().any(|l| l.starts_with("MAINPID="))
    });
    let new: u32 = main
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .unwrap()
        .parse()
        .expect("MAINPID value");
    if !main.lines().any(|l| l == "READY=1") {
        receive_until(&socket, &mut all, "READY=1 after MAINPID=", |m| {
            m.lines().any(|l| l == "READY=1")
        });
    }
    assert_ne!(new, old, "MAINPID names the old process");
    assert!(alive(new), "MAINPID {new} is not running");
    wait_gone(old);
    assert!(live(port), "MAINPID {new} does not serve");

    let before_stop = all.len();
    assert!(signal(new, "TERM"));
    receive_until(&socket, &mut all, "STOPPING=1", |m| m.lines().any(|l| l == "STOPPING=1"));
    wait_gone(new);

    // The sequence of the messages that matter, in order, without repeats or extras.
    let events: Vec<&str> = all
        .iter()
        .flat_map(|m| {
            let mut events = Vec::new();
            for line in m.lines() {
                match line {
                    "READY=1" => events.push("READY"),
                    "RELOADING=1" => events.push("RELOADING"),
                    "STOPPING=1" => events.push("STOPPING"),
                    l if l.starts_with("MAINPID=") => events.insert(0, "MAINPID"),
                    _ => {}
                }
            }
            events
        })
        .collect();
    assert_eq!(
        events,
        ["READY", "RELOADING", "MAINPID", "READY", "STOPPING"],
        "notifications: {all:?}"
    );
    assert!(
        !all[..before_stop].iter().any(|m| m.contains("STOPPING=1")),
        "STOPPING=1 before SIGTERM: {all:?}"
    );
}
