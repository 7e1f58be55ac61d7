//! SQLite in production (docs/sqlite.md), against the real binary, real database files and
//! real signals: `server backup` and the guide's `sqlite3 app.db ".backup …"` beside a
//! server under write load, acknowledged writes surviving `kill -9` (also on PostgreSQL:
//! `acknowledged_writes_survive_kill_9::postgres`), the WAL kept bounded
//! by the server's checkpoints and emptied when idle (and left alone with
//! `--database-checkpoints external`), and `server check` on bad and good setups.
//!
//! Nothing here asserts a duration: loops are bounded, waits have generous deadlines that
//! only keep a broken server from hanging the suite, and the figures (acknowledged writes,
//! WAL sizes) are printed.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::both_engines;
use crate::support::tools::succeeds;
use crate::support::{
    Credentials, Database, Engine, Launch, NOBODY, Output, PATIENCE, Server, chmod, db_path,
    files_in, generate_notes, require_nobody, sidecar, signal, tempdir, try_create_note,
};

/// `WAL_RESTART_BYTES` of crates/burrow/src/db/sqlite.rs: past this size the writer forces
/// a RESTART checkpoint (the size is looked at every 64 commits).
const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Writers and readers

/// A note the server acknowledged with `303 Location: /notes/{id}`.
#[derive(Clone, Debug)]
struct Acked {
    id: i64,
    title: String,
}

/// What the writer tasks share.
#[derive(Default)]
struct Shared {
    acked: Mutex<Vec<Acked>>,
    /// Answers other than 303, and requests that failed.
    failed: AtomicU64,
    /// The first failures, described.
    failures: Mutex<Vec<String>>,
    /// The next note number; writers stop at their limit.
    next: AtomicUsize,
}

/// How writers post.
#[derive(Clone)]
struct Load {
    /// Titles are `{prefix} {n}`, unique across the writers.
    prefix: String,
    tasks: usize,
    /// Bytes of note content.
    content: usize,
    /// Stop after this many notes (acknowledged or not).
    limit: usize,
    /// Pause after each request.
    pause: Duration,
}

impl Load {
    fn new(prefix: &str, tasks: usize, content: usize) -> Load {
        Load {
            prefix: prefix.to_string(),
            tasks,
            content,
            limit: usize::MAX,
            pause: Duration::ZERO,
        }
    }

    fn limit(mut self, limit: usize) -> Load {
        self.limit = limit;
        self
    }

    fn pause(mut self, pause: Duration) -> Load {
        self.pause = pause;
        self
    }
}

/// Client tasks that POST notes (with the cookies and CSRF token of one loaded form) and
/// record every acknowledged one.
struct Writers {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What writers did.
struct Report {
    acked: Vec<Acked>,
    failed: u64,
    failures: Vec<String>,
}

impl Writers {
    fn start(port: u16, credentials: &Credentials, load: Load) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let client = http_client();
        let tasks = (0..load.tasks)
            .map(|_| {
                let (stop, shared, client, credentials, load) = (
                    stop.clone(),
                    shared.clone(),
                    client.clone(),
                    credentials.clone(),
                    load.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = shared.next.fetch_add(1, Ordering::Relaxed);
                        if n >= load.limit {
                            break;
                        }
                        let title = format!("{} {n}", load.prefix);
                        let content = content(&title, load.content);
                        match try_create_note(&client, port, &credentials, &title, &content).await {
                            Ok(id) => shared.acked.lock().unwrap().push(Acked { id, title }),
                            Err(e) => {
                                shared.failed.fetch_add(1, Ordering::Relaxed);
                                let mut failures = shared.failures.lock().unwrap();
                                if failures.len() < 20 {
                                    failures.push(e);
                                }
                            }
                        }
                        if !load.pause.is_zero() {
                            tokio::time::sleep(load.pause).await;
                        }
                    }
                })
            })
            .collect();
        Writers { stop, shared, tasks }
    }

    /// The notes acknowledged so far.
    fn acked(&self) -> Vec<Acked> {
        self.shared.acked.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.shared.acked.lock().unwrap().len()
    }

    /// Waits until `n` notes are acknowledged.
    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count() < n {
            if Instant::now() > deadline || self.tasks.iter().all(|t| t.is_finished()) {
                panic!(
                    "{} of {n} notes acknowledged; {} failed requests, first ones: {:#?}",
                    self.count(),
                    self.shared.failed.load(Ordering::Relaxed),
                    self.shared.failures.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the tasks (a request in flight finishes or fails first).
    async fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.join().await
    }

    /// Waits for the tasks to reach their limit.
    async fn join(self) -> Report {
        for task in self.tasks {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("writers did not finish")
                .expect("writer task panicked");
        }
        let shared =
            Arc::try_unwrap(self.shared).unwrap_or_else(|_| panic!("writer state still shared"));
        Report {
            acked: shared.acked.into_inner().unwrap(),
            failed: shared.failed.into_inner(),
            failures: shared.failures.into_inner().unwrap(),
        }
    }
}

/// Client tasks that keep reading: full-text searches ranked over every note (each note
/// contains the searched word) and list pages, as many concurrent users would.
struct Readers {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Readers {
    /// `credentials`: a signed-in browser's (notes are their author's).
    fn start(port: u16, credentials: &Credentials, tasks: usize) -> Readers {
        let cookie = credentials.cookie.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let client = http_client();
        let tasks = (0..tasks)
            .map(|task| {
                let (stop, done, failures, client, cookie) =
                    (stop.clone(), done.clone(), failures.clone(), client.clone(), cookie.clone());
                tokio::spawn(async move {
                    let mut i = task;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let path = if i % 2 == 0 {
                            format!("/notes?q=lantern&page={}", i % 20 + 1)
                        } else {
                            format!("/notes?page={}", i % 50 + 1)
                        };
                        let url = format!("http://127.0.0.1:{port}{path}");
                        let outcome = match client.get(url).header("Cookie", &cookie).send().await {
                            Ok(res) if res.status() == 200 => {
                                res.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                            }
                            Ok(res) => Err(res.status().to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        match outcome {
                            Ok(()) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.lock().unwrap().push(format!("GET {path}: {e}")),
                        }
                    }
                })
            })
            .collect();
        Readers { stop, done, failures, tasks }
    }

    /// Stops the tasks; returns the reads done and the failures.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("readers did not finish")
                .expect("reader task panicked");
        }
        (self.done.load(Ordering::Relaxed), std::mem::take(&mut *self.failures.lock().unwrap()))
    }
}

/// A keep-alive client that does not follow redirects.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Note text of `len` bytes; every note contains the word `lantern` (the readers' search).
fn content(title: &str, len: usize) -> String {
    const WORDS: [&str; 10] = [
        "lorem", "ipsum", "lantern", "dolor", "harbor", "meadow", "copper", "willow", "amet",
        "quiet",
    ];
    let mut text = format!("{title}:");
    let mut i = title.len();
    while text.len() < len {
        text.push(' ');
        text.push_str(WORDS[i % WORDS.len()]);
        i += 1;
    }
    text.truncate(len.max(title.len()));
    text
}

/// The server's signed-in cookies and CSRF token, made on a thread that may block.
async fn credentials(server: &Server) -> Credentials {
    tokio::task::block_in_place(|| server.credentials())
}

/// Runs a `server` command to completion off the async runtime.
async fn run(launch: Launch) -> Output {
    tokio::task::spawn_blocking(move || launch.run()).await.expect("run server command")
}

/// Starts a server off the async runtime.
async fn start(launch: Launch) -> Server {
    tokio::task::spawn_blocking(move || launch.start()).await.expect("start server")
}

// ---------------------------------------------------------------------------------------
// Database files

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `PRAGMA integrity_check` and every note (id → title) of a database.
fn read_notes(conn: &Connection, what: &str) -> HashMap<i64, String> {
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{what}: integrity_check: {e}"));
    assert_eq!(check, "ok", "{what}: PRAGMA integrity_check");
    let mut stmt =
        conn.prepare("SELECT id, title FROM notes").unwrap_or_else(|e| panic!("{what}: {e}"));
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A backup copy: opens, passes integrity_check, has `journal_mode`; its notes.
fn read_copy(path: &Path, journal_mode: &str) -> HashMap<i64, String> {
    let conn = Connection::open(path)
        .unwrap_or_else(|e| panic!("open the backup {}: {e}", path.display()));
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, journal_mode, "journal mode of {}", path.display());
    read_notes(&conn, &path.display().to_string())
}

/// The live database (read-only; a server may be running on it).
fn read_live(db: &Path) -> HashMap<i64, String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    read_notes(&conn, &db.display().to_string())
}

/// Every acknowledged note is in `notes`, under its id.
fn assert_all_present(notes: &HashMap<i64, String>, acked: &[Acked], what: &str) {
    let missing: Vec<&Acked> =
        acked.iter().filter(|a| notes.get(&a.id) != Some(&a.title)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} acknowledged notes missing (or under another id), e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

/// The path of a `Backed up SRC to PATH (… MB in … s, … MB/s; integrity ok)` line.
fn backed_up_to(out: &Output) -> (PathBuf, String) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Backed up "))
        .unwrap_or_else(|| panic!("no `Backed up` line: {out:?}"));
    let (_, rest) = line.split_once(" to ").unwrap_or_else(|| panic!("{line}"));
    let (path, figures) = rest.rsplit_once(" (").unwrap_or_else(|| panic!("{line}"));
    assert!(figures.contains("MB/s") && figures.contains("integrity ok"), "{line}");
    (PathBuf::from(path), figures.trim_end_matches(')').to_string())
}

/// `app-YYYYMMDD-HHMMSS.db`.
fn is_dated_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == "app-YYYYMMDD-HHMMSS.db".len()
        && name.starts_with("app-20")
        && name.ends_with(".db")
        && b[4..12].iter().all(u8::is_ascii_digit)
        && b[12] == b'-'
        && b[13..19].iter().all(u8::is_ascii_digit)
}

fn backup(dir: &Path, db: &Path, dest: &Path) -> Launch {
    Launch::new(dir).arg("backup").arg(dest).arg("--database-dsn").arg(db)
}

// ---------------------------------------------------------------------------------------
// Backups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_the_server_writes_is_consistent_and_complete() {
    let dir = tempdir();
    let db = db_path(dir.path());
    // A database of a few MB, so that writes go on while the copy runs.
    tokio::task::block_in_place(|| generate_notes(dir.path(), 5000));
    let mut server = start(Launch::serve(dir.path())).await;
    let writers = Writers::start(
        server.port,
        &credentials(&server).await,
        Load::new("during backup", 3, 1000),
    );
    writers.wait_for(100).await;

    // Into a directory: app-YYYYMMDD-HHMMSS.db, a second process, writes going on.
    let before = writers.acked();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let out = run(backup(dir.path(), &db, &backups)).await;
    let during = writers.count() - before.len();
    assert_eq!(out.code(), Some(0), "backup into a directory: {out:?}");
    let (path, figures) = backed_up_to(&out);
    let names = files_in(&backups);
    assert_eq!(
        names.len(),
        1,
        "the backup directory holds the backup only (no partial file): {names:?}"
    );
    assert!(
        is_dated_name(&names[0]),
        "backup file name {:?} is not app-YYYYMMDD-HHMMSS.db",
        names[0]
    );
    assert_eq!(path, backups.join(&names[0]), "the path printed is the file written");
    let notes = read_copy(&path, "delete");
    assert_all_present(&notes, &before, "backup into a directory");
    assert!(notes.len() >= 5000 + before.len(), "{} notes in the backup", notes.len());
    eprintln!(
        "backup under load: {figures}; {} notes in the copy, {} acknowledged before it began \
         (all present), {during} acknowledged while it ran",
        notes.len(),
        before.len()
    );

    // To an explicit file, still under load.
    writers.wait_for(before.len() + during + 50).await;
    let before = writers.acked();
    let explicit = dir.path().join("explicit.db");
    let out = run(backup(dir.path(), &db, &explicit)).await;
    assert_eq!(out.code(), Some(0), "backup to a file: {out:?}");
    assert_eq!(backed_up_to(&out).0, explicit);
    assert_all_present(&read_copy(&explicit, "delete"), &before, "backup to a file");
    let leftovers: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|f| f.contains("partial") || f.starts_with("explicit.db-"))
        .collect();
    assert!(leftovers.is_empty(), "files left beside the backup: {leftovers:?}");

    // Into a directory that does not exist: an error naming it; nothing written.
    let missing = dir.path().join("no-such-dir").join("x.db");
    let out = run(backup(dir.path(), &db, &missing)).await;
    assert_eq!(out.code(), Some(2), "backup into a missing directory: {out:?}");
    assert!(out.stderr.contains("no-such-dir") && out.stderr.contains("does not exist"), "{out:?}");
    assert!(!dir.path().join("no-such-dir").exists());

    let report = writers.finish().await;
    assert_eq!(report.failed, 0, "writes failed while backups ran: {:#?}", report.failures);
    assert_eq!(server.terminate().code(), Some(0));

    // No server: the command opens the database itself.
    let offline = dir.path().join("offline.db");
    let out = run(backup(dir.path(), &db, &offline)).await;
    assert_eq!(out.code(), Some(0), "backup without a server: {out:?}");
    assert_all_present(&read_copy(&offline, "delete"), &report.acked, "backup without a server");
    for suffix in ["-wal", "-shm", "-journal"] {
        assert!(
            !dir.path().join(format!("offline.db{suffix}")).exists(),
            "offline.db{suffix} left beside the backup"
        );
    }
    eprintln!(
        "backup: {} notes acknowledged in all, every one in the backup taken after the server \
         stopped",
        report.acked.len()
    );
}

/// The guide's command, `sqlite3 app.db ".backup DEST"`, beside the running server: both
/// sides wait for each other's locks (busy_timeout), so neither fails. The CLI copies 100
/// pages per step and starts over whenever the server commits in between (docs/sqlite.md),
/// so the load here is a steady trickle, not a flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite3_backup_command_beside_the_running_server() {
    let found = succeeds("sqlite3", &["-version"]);
    assert!(found, "this test needs the sqlite3 command-line shell (scripts/test.sh installs it)");
    let dir = tempdir();
    let db = db_path(dir.path());
    let mut server = start(Launch::serve(dir.path())).await;
    let writers = Writers::start(
        server.port,
        &credentials(&server).await,
        Load::new("beside sqlite3", 2, 1000).pause(Duration::from_millis(5)),
    );
    writers.wait_for(100).await;

    let before = writers.acked();
    let dest = dir.path().join("guide-backup.db");
    let (db2, dest2, cwd) = (db.clone(), dest.clone(), dir.path().to_path_buf());
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("sqlite3")
            .arg(&db2)
            .arg(format!(".backup {}", dest2.display()))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sqlite3");
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().expect("wait for sqlite3").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sqlite3 .backup did not finish within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("sqlite3 output");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert!(status.success(), "sqlite3 .backup: {status:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.trim().is_empty(), "sqlite3 .backup wrote to stderr: {stderr}");

    // The server keeps writing afterwards, and no write failed meanwhile.
    let mark = writers.count();
    writers.wait_for(mark + 20).await;
    let report = writers.finish().await;
    assert_eq!(report.failed, 0, "writes failed beside sqlite3 .backup: {:#?}", report.failures);
    // `.backup` copies the file as it is: still in WAL mode.
    let notes = read_copy(&dest, "wal");
    assert_all_present(&notes, &before, "sqlite3 .backup");
    assert_eq!(server.terminate().code(), Some(0));
    eprintln!(
        "sqlite3 .backup beside the server: {} notes in the copy, {} acknowledged before it \
         began (all present), {} writes in all, 0 failed",
        notes.len(),
        before.len(),
        report.acked.len()
    );
}

// ---------------------------------------------------------------------------------------
// Durability

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants), for delays that
/// vary from trial to trial yet are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

// WAL mode with synchronous=NORMAL: a commit is in the -wal file (the OS page cache)
// before it is acknowledged, so killing the process loses nothing acknowledged (a power
// loss may lose the last commits; that needs synchronous=FULL). On PostgreSQL a commit is
// acknowledged once the database server has it: killing `server` loses nothing either.
both_engines!(acknowledged_writes_survive_kill_9, |engine: Engine| async move {
    const TRIALS: usize = 10;
    const SEED: u64 = 0x5eed_2026;
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let mut rng = Lcg(SEED);
    let mut server = start(Launch::serve_on(&db, dir.path())).await;
    let (mut all, mut delays, mut wal_at_kill, mut per_trial) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for trial in 1..=TRIALS {
        let delay = Duration::from_millis(50 + rng.next() % 451);
        let writers = Writers::start(
            server.port,
            &credentials(&server).await,
            Load::new(&format!("trial {trial}"), 3, 300),
        );
        writers.wait_for(1).await;
        tokio::time::sleep(delay).await;
        assert!(signal(server.pid(), "KILL"), "kill -9 {}", server.pid());
        let (killed, status) = tokio::task::spawn_blocking(move || {
            let status = server.wait_exit(PATIENCE);
            (server, status)
        })
        .await
        .unwrap();
        let status = status.expect("the server exits after kill -9");
        assert_eq!(status.signal(), Some(9), "trial {trial}: exit status {status:?}");
        drop(killed);
        if engine == Engine::Sqlite {
            wal_at_kill.push(size(&sidecar(&db.path(), "-wal")));
        }
        let report = writers.finish().await;

        // The same database, after the crash (SQLite recovers the WAL on open), through a
        // new server.
        server = start(Launch::serve_on(&db, dir.path())).await;
        let notes = tokio::task::spawn_blocking({
            let db = db.clone();
            move || db.notes()
        })
        .await
        .unwrap();
        assert_all_present(
            &notes,
            &report.acked,
            &format!("trial {trial} (kill -9 after {delay:?})"),
        );
        // …and the new server serves them.
        if let Some(last) = report.acked.iter().max_by_key(|a| a.id) {
            let request = http_client().get(server.url(&format!("/notes/{}", last.id)));
            let res = credentials(&server).await.attach(request).send().await;
            let res = res.expect("GET the last acknowledged note");
            assert_eq!(res.status(), 200, "trial {trial}: GET /notes/{}", last.id);
            let body = res.text().await.unwrap();
            assert!(body.contains(&last.title), "trial {trial}: {:?} not served", last.title);
        }
        delays.push(delay.as_millis());
        per_trial.push(report.acked.len());
        all.extend(report.acked);
    }
    assert_eq!(server.terminate().code(), Some(0));
    let notes = db.notes();
    assert_all_present(&notes, &all, "after the last server stopped");
    let found = all.iter().filter(|a| notes.get(&a.id) == Some(&a.title)).count();
    eprintln!(
        "kill -9 on {engine:?}: {TRIALS} trials (seed {SEED:#x}), {} writes acknowledged, {found} found after \
         restart; acknowledged per trial {per_trial:?}; kill after {delays:?} ms; -wal bytes at \
         each kill {wal_at_kill:?}",
        all.len()
    );
});

// ---------------------------------------------------------------------------------------
// WAL size

/// Samples the size of the -wal file every 50 ms on its own thread.
struct WalSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: JoinHandle<usize>,
}

impl WalSampler {
    fn start(wal: PathBuf) -> WalSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (stop2, max2) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            let mut samples = 0;
            while !stop2.load(Ordering::Relaxed) {
                max2.fetch_max(size(&wal), Ordering::Relaxed);
                samples += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        WalSampler { stop, max, thread }
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Stops; the largest size seen and the number of samples.
    fn finish(self) -> (u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().expect("sampler");
        (self.max.load(Ordering::Relaxed), samples)
    }
}

/// Polls every 50 ms until the file is empty; false after `within`.
async fn wait_empty(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while size(path) > 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Sustained writes (3000 notes of 2 KB from 4 clients) while 2 clients keep reading
/// (ranked full-text searches over every note, list pages). Without checkpoints this load
/// writes about 120 MB of WAL (about 40 KB per note, as the external-checkpoints test
/// below prints). The bound: WAL_RESTART_BYTES (past it the writer RESTARTs, looking every
/// 64 commits) plus 16 MiB for those 64 commits (under 3 MiB here) and a checkpoint in
/// progress: 80 MiB. Once writes stop, the idle TRUNCATE empties the -wal file (after 1 s
/// without writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_stays_bounded_under_sustained_writes_and_is_emptied_when_idle() {
    const NOTES: usize = 3000;
    const BOUND: u64 = WAL_RESTART_BYTES + 16 * MIB;
    let dir = tempdir();
    let db = db_path(dir.path());
    let wal = sidecar(&db, "-wal");
    let mut server = start(Launch::serve(dir.path())).await;
    let credentials = credentials(&server).await;
    let sampler = WalSampler::start(wal.clone());
    let writers = Writers::start(server.port, &credentials, Load::new("wal", 4, 2000).limit(NOTES));
    let readers = Readers::start(server.port, &credentials, 2);
    let started = Instant::now();
    let report = writers.join().await;
    let elapsed = started.elapsed();
    let (reads, read_failures) = readers.finish().await;
    let under_load = sampler.max();
    let emptied = wait_empty(&wal, Duration::from_secs(15)).await;
    let (max, samples) = sampler.finish();

    assert_eq!(report.failed, 0, "failed writes: {:#?}", report.failures);
    assert!(read_failures.is_empty(), "failed reads: {read_failures:#?}");
    assert_eq!(report.acked.len(), NOTES);
    eprintln!(
        "WAL under load: {NOTES} notes of 2 KB in {elapsed:.1?} ({:.0} writes/s) with {reads} \
         reads; -wal max {:.1} MiB over {samples} samples (bound {} MiB); database {:.1} MiB; \
         -wal emptied when idle: {emptied}",
        NOTES as f64 / elapsed.as_secs_f64(),
        max as f64 / MIB as f64,
        BOUND / MIB,
        size(&db) as f64 / MIB as f64
    );
    assert!(under_load > 0, "the -wal file never grew: the test did not exercise the WAL");
    assert!(max <= BOUND, "the -wal file reached {max} bytes, over the bound of {BOUND}");
    assert!(emptied, "the -wal file still holds {} bytes after the writes stopped", size(&wal));
    assert_eq!(read_live(&db).len(), NOTES);
    assert_eq!(server.terminate().code(), Some(0));
}

/// A reader holding one snapshot (as `server backup` or `sqlite3 .backup` do) keeps the
/// idle TRUNCATE from completing; once it lets go, the -wal file is emptied. The reader
/// holds it longer than the idle delay (1 s) plus the connection's busy_timeout (5 s):
/// a checkpoint that gave up once must be tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_truncation_waits_for_a_long_reader_and_then_empties_the_wal() {
    let dir = tempdir();
    let db = db_path(dir.path());
    let wal = sidecar(&db, "-wal");
    let mut server = start(Launch::serve(dir.path())).await;
    let writers =
        Writers::start(server.port, &credentials(&server).await, Load::new("pinned", 2, 2000));
    writers.wait_for(100).await;
    let reader = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader.execute_batch("BEGIN; SELECT count(*) FROM notes;").unwrap();
    // Writes after the snapshot: WAL frames the reader keeps from being checkpointed.
    let mark = writers.count();
    writers.wait_for(mark + 100).await;
    let report = writers.finish().await;
    assert_eq!(report.failed, 0, "failed writes: {:#?}", report.failures);

    tokio::time::sleep(Duration::from_secs(7)).await;
    let pinned = size(&wal);
    assert!(pinned > 0, "the -wal file was emptied while a reader still used it");
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let emptied = wait_empty(&wal, Duration::from_secs(10)).await;
    eprintln!(
        "long reader: -wal {:.1} MiB while the reader held its snapshot; emptied after it let \
         go: {emptied}",
        pinned as f64 / MIB as f64
    );
    assert!(emptied, "the -wal file still holds {} bytes after the reader finished", size(&wal));
    assert_eq!(server.terminate().code(), Some(0));
}

/// `--database-checkpoints external` (Litestream): the server never checkpoints, so the
/// database file does not change while the -wal file grows, and nothing empties the -wal
/// file when writes pause (the server-mode tests above see it emptied within a second or
/// two). Closing the last connection at shutdown folds the WAL in, as SQLite always does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_checkpoints_leave_the_wal_to_another_tool() {
    const NOTES: usize = 1000;
    let dir = tempdir();
    let db = db_path(dir.path());
    let wal = sidecar(&db, "-wal");
    let mut server =
        start(Launch::serve(dir.path()).args(["--database-checkpoints", "external"])).await;
    let credentials = credentials(&server).await;
    let file_before = std::fs::read(&db).unwrap();
    let report =
        Writers::start(server.port, &credentials, Load::new("external", 4, 2000).limit(NOTES))
            .join()
            .await;
    assert_eq!(report.failed, 0, "failed writes: {:#?}", report.failures);
    let wal_after_writes = size(&wal);
    // Longer than the idle delay (1 s) and a few ticks of the idle checkpointer (250 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wal_idle = size(&wal);
    let file_after = std::fs::read(&db).unwrap();
    eprintln!(
        "external checkpoints: {NOTES} notes; -wal {:.1} MiB after the writes ({} KB per note), \
         {:.1} MiB after 3 s idle; database file {} bytes, unchanged: {}",
        wal_after_writes as f64 / MIB as f64,
        wal_after_writes / NOTES as u64 / 1000,
        wal_idle as f64 / MIB as f64,
        file_after.len(),
        file_before == file_after
    );
    assert!(
        wal_after_writes > 4 * MIB,
        "the -wal file holds {wal_after_writes} bytes after {NOTES} notes of 2 KB"
    );
    // Not equal: the notes app's periodic jobs are queued on the clock (the attachment
    // sweep at every tenth minute), and one that falls in the 3 s appends to the WAL. The
    // idle checkpoint would empty it; any checkpoint would change the database file.
    assert!(
        wal_idle >= wal_after_writes,
        "the -wal file shrank while idle ({wal_after_writes} to {wal_idle} bytes): the server \
         checkpointed"
    );
    assert!(
        file_before == file_after,
        "the database file changed: the server checkpointed into it"
    );
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(read_live(&db).len(), NOTES);
}

// ---------------------------------------------------------------------------------------
// server check

/// The `✗ …` lines of `server check`.
fn problems(out: &Output) -> Vec<String> {
    out.stdout.lines().filter_map(|l| l.strip_prefix("✗ ")).map(str::to_string).collect()
}

/// Each entry of `expected` (fragments of one line) matches a problem line, and there are
/// no others; the exit code is 1 and the count is printed.
fn assert_problems(out: &Output, expected: &[&[&str]]) {
    let found = problems(out);
    for fragments in expected {
        assert!(
            found.iter().any(|line| fragments.iter().all(|f| line.contains(f))),
            "no problem line containing {fragments:?}; stdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
    }
    assert_eq!(found.len(), expected.len(), "problem lines:\n{}", found.join("\n"));
    assert!(
        out.stdout.contains(&format!("{} problem(s) found.", expected.len())),
        "stdout:\n{}",
        out.stdout
    );
    assert_eq!(out.code(), Some(1), "exit code of check with problems: {out:?}");
}

/// A temporary directory `nobody` can enter, with a `data` directory it owns.
fn nobody_dir() -> (tempfile::TempDir, PathBuf) {
    require_nobody();
    let dir = tempdir();
    chmod(dir.path(), 0o755);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    (dir, data)
}

#[test]
fn check_lists_each_problem_of_a_bad_setup() {
    // As root, no keys, plain HTTP on every interface, a shutdown shorter than a request.
    let dir = tempdir();
    let out = Launch::new(dir.path())
        .without_keys()
        .args([
            "check",
            "--host",
            "0.0.0.0",
            "--shutdown-timeout",
            "5",
            "--request-timeout",
            "30",
            "--database-dsn",
        ])
        .arg(db_path(dir.path()))
        .run();
    assert_problems(
        &out,
        &[
            &["session.hash_key is not configured", "SESSION_HASH_KEY"],
            &["csrf.key is not configured", "CSRF_KEY"],
            &["TLS is off", "0.0.0.0"],
            &["running as root"],
            &["--shutdown-timeout (5s) is shorter than --request-timeout (30s)"],
        ],
    );
    // A binary's user has no copy of the repository: say what to do, not where to read.
    for path in ["deploy/", "docs/", "examples/"] {
        assert!(!out.stdout.contains(path), "check points at {path}:\n{}", out.stdout);
    }
    assert!(!db_path(dir.path()).exists(), "check created the database");

    // As nobody: a database directory it cannot write, manual TLS with missing files.
    let (dir, _) = nobody_dir();
    let readonly = dir.path().join("readonly");
    std::fs::create_dir(&readonly).unwrap();
    let (cert, key) = (dir.path().join("missing-cert.pem"), dir.path().join("missing-key.pem"));
    let out = Launch::new(dir.path())
        .nobody()
        .args(["check", "--tls-mode", "manual", "--tls-cert-file"])
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--database-dsn")
        .arg(readonly.join("app.db"))
        .run();
    assert_problems(
        &out,
        &[
            &["database directory", readonly.to_str().unwrap(), "not writable"],
            &["--tls-cert-file", cert.to_str().unwrap(), "cannot be read"],
            &["--tls-key-file", key.to_str().unwrap(), "cannot be read"],
        ],
    );

    // A certificate that expires in 5 days, everything else fine.
    let (dir, data) = nobody_dir();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(60);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(5);
    let cert = params.self_signed(&key_pair).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key_pair.serialize_pem()).unwrap();
    chmod(&key_file, 0o644);
    let out = Launch::new(dir.path())
        .nobody()
        .args(["check", "--tls-mode", "manual", "--tls-cert-file"])
        .arg(&cert_file)
        .arg("--tls-key-file")
        .arg(&key_file)
        .arg("--database-dsn")
        .arg(data.join("app.db"))
        .run();
    assert_problems(&out, &[&[cert_file.to_str().unwrap(), "expires in 4 days"]]);

    // A PID file whose directory does not exist.
    let dir = tempdir();
    let pid_file = dir.path().join("no-such-dir").join("server.pid");
    let out = Launch::new(dir.path())
        .args(["check", "--pid-file"])
        .arg(&pid_file)
        .arg("--database-dsn")
        .arg(db_path(dir.path()))
        .run();
    assert_ne!(out.code(), Some(0), "check with a PID file in a missing directory: {out:?}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("PID file directory") && said.contains("no-such-dir"), "{out:?}");
    eprintln!("check, PID file in a missing directory (exit {:?}): {}", out.code(), said.trim());
}

#[test]
fn check_gives_the_all_clear_on_a_good_setup() {
    let (dir, data) = nobody_dir();
    let db = data.join("app.db");
    let out = Launch::new(dir.path()).nobody().arg("migrate").arg("--database-dsn").arg(&db).run();
    assert_eq!(out.code(), Some(0), "migrate as nobody: {out:?}");
    let out = Launch::new(dir.path())
        .nobody()
        .args(["check", "--shutdown-timeout", "30", "--request-timeout", "10", "--pid-file"])
        .arg(data.join("server.pid"))
        .arg("--database-dsn")
        .arg(&db)
        .run();
    assert_eq!(problems(&out), Vec::<String>::new(), "{out:?}");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("All clear"), "{out:?}");
    assert_eq!(out.stderr, "", "check on a good setup wrote to stderr");
}
