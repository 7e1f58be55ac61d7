//! The job queue's promises, proven with real processes and real signals: the jobs-demo
//! example (examples/jobs, built beside `server`) runs `demo.work` jobs that record every
//! start (`demo_starts`) and every finished run (`demo_runs`), so "ran exactly once" is a
//! query made outside the server. Each test runs on SQLite and on PostgreSQL.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::both_engines;
use crate::support::procs::{
    Cleanup, read_pid_file, stop, wait_for_successor, wait_gone, wait_until, with_pid_file,
};
use crate::support::{BIN, Database, Engine, Launch, PATIENCE, raw_get, signal, tempdir};

/// The jobs-demo binary of the same build as `server`.
fn demo_bin() -> PathBuf {
    let bin = Path::new(BIN).with_file_name("jobs-demo");
    assert!(
        bin.exists(),
        "{} not found: build the jobs-demo example with the same profile and target as this \
         test (`cargo build -p jobs-demo`; scripts/test.sh builds every binary)",
        bin.display()
    );
    bin
}

/// Serving jobs-demo on `db`.
fn demo(db: &Database, dir: &Path) -> Launch {
    Launch::serve_on(db, dir).program(&demo_bin())
}

/// `jobs-demo enqueue ARGS` (or another command) on `db`; its stdout.
fn command(db: &Database, dir: &Path, args: &[&str]) -> String {
    let out = Launch::new(dir)
        .program(&demo_bin())
        .args(args)
        .database(db)
        .args(["--log-level", "warn"])
        .run();
    assert_eq!(out.code(), Some(0), "jobs-demo {args:?}: {}{}", out.stdout, out.stderr);
    out.stdout
}

fn enqueue(db: &Database, dir: &Path, args: &[&str]) -> String {
    command(db, dir, &[&["enqueue"], args].concat())
}

/// Jobs per state.
fn statuses(db: &Database) -> HashMap<String, i64> {
    db.rows("SELECT status, count(*) FROM _jobs GROUP BY status")
        .iter()
        .map(|row| {
            let (status, n) = row.split_once('\t').expect("two columns");
            (status.to_string(), n.parse().unwrap())
        })
        .collect()
}

fn count(db: &Database, status: &str) -> i64 {
    statuses(db).get(status).copied().unwrap_or(0)
}

/// Rows per key in `demo_starts` or `demo_runs`, for keys starting with `prefix`.
fn per_key(db: &Database, table: &str, prefix: &str) -> HashMap<String, i64> {
    db.rows(&format!("SELECT key, count(*) FROM {table} WHERE key LIKE '{prefix}-%' GROUP BY key"))
        .iter()
        .map(|row| {
            let (key, n) = row.split_once('\t').expect("two columns");
            (key.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// Waits until `n` jobs are completed; returns how long that took.
fn wait_completed(db: &Database, n: i64) -> Duration {
    let start = Instant::now();
    wait_until(PATIENCE, &format!("{n} jobs are completed"), |state| {
        let now = statuses(db);
        *state = format!("{now:?}");
        (now.get("completed").copied().unwrap_or(0) >= n).then_some(())
    });
    start.elapsed()
}

/// Every job of `prefix` started once and finished once.
fn assert_exactly_once(db: &Database, prefix: &str, n: usize) {
    for table in ["demo_starts", "demo_runs"] {
        let rows = per_key(db, table, prefix);
        assert_eq!(rows.len(), n, "{table}: jobs of '{prefix}' that ran");
        let twice: Vec<_> = rows.iter().filter(|(_, c)| **c != 1).collect();
        assert!(twice.is_empty(), "{table}: jobs of '{prefix}' that ran more than once: {twice:?}");
    }
}

both_engines!(blocking thousand_jobs_complete_exactly_once_with_two_workers, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let queued = enqueue(&db, dir.path(), &["--count", "1000", "--prefix", "noop"]);
    assert!(queued.starts_with("Queued 1000 job(s)"), "{queued}");
    assert_eq!(count(&db, "pending"), 1000);

    let server = demo(&db, dir.path()).args(["--jobs-workers", "2"]).start();
    let took = wait_completed(&db, 1000);
    eprintln!("{engine:?}: 1000 no-op jobs (each writing 2 rows) in {took:?}");
    assert_exactly_once(&db, "noop", 1000);
    assert_eq!(statuses(&db), HashMap::from([("completed".to_string(), 1000)]));

    // The queue's numbers in /healthz/ready, which stays ready.
    let ready = raw_get(server.port, "/healthz/ready").expect("GET /healthz/ready");
    assert_eq!(ready.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    let jobs = &body["apps"]["jobs"];
    assert_eq!(jobs["completed"], 1000, "{body}");
    assert_eq!((jobs["pending"].as_i64(), jobs["dead"].as_i64()), (Some(0), Some(0)), "{body}");
    assert_eq!(jobs["oldest_pending_age_s"], 0.0, "{body}");
});

both_engines!(blocking failed_attempts_back_off_then_the_job_is_dead, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let _server = demo(&db, dir.path()).args(["--jobs-retry-base-delay", "1"]).start();
    // Fails twice, then succeeds on its third and last attempt.
    enqueue(&db, dir.path(), &["--prefix", "flaky", "--fail-times", "2"]);
    // Fails all three of its attempts.
    enqueue(&db, dir.path(), &["--prefix", "doomed", "--fail-times", "9"]);
    wait_until(PATIENCE, "one job completed and one dead", |state| {
        let now = statuses(&db);
        *state = format!("{now:?}");
        (now.get("completed") == Some(&1) && now.get("dead") == Some(&1)).then_some(())
    });

    // The pauses: 1 s, then 2 s, each less up to a fifth of jitter (and a little late at
    // most, since workers sleep until the next job is due).
    let starts: Vec<i64> = db
        .rows("SELECT at_ms FROM demo_starts WHERE key = 'flaky-0' ORDER BY attempt")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 3, "attempts of flaky-0");
    let (first, second) = (starts[1] - starts[0], starts[2] - starts[1]);
    assert!((790..=1500).contains(&first), "first retry after {first} ms (expected 800-1000)");
    assert!((1590..=2500).contains(&second), "second retry after {second} ms (expected 1600-2000)");
    assert_eq!(per_key(&db, "demo_runs", "flaky"), HashMap::from([("flaky-0".into(), 1)]));

    let dead = db.rows("SELECT attempts, last_error, id FROM _jobs WHERE status = 'dead'");
    let fields: Vec<&str> = dead[0].split('\t').collect();
    assert_eq!(fields[0], "3", "attempts of the dead job");
    assert_eq!(fields[1], "failing on purpose (attempt 3)");
    // It never finished; its on_dead hook ran once.
    assert_eq!(per_key(&db, "demo_runs", "doomed"), HashMap::from([("doomed-0-dead".into(), 1)]));

    // An operator queues it again: it runs again (and fails again, as it must).
    let id = fields[2];
    let out = command(&db, dir.path(), &["jobs", "retry", id]);
    assert!(out.contains(&format!("Job {id} queued again.")), "{out}");
    wait_until(PATIENCE, "the retried job starts again", |state| {
        let n = per_key(&db, "demo_starts", "doomed").get("doomed-0").copied().unwrap_or(0);
        *state = format!("{n} starts");
        (n > 3).then_some(())
    });
    let listed = command(&db, dir.path(), &["jobs", "list", "--status", "completed"]);
    assert!(listed.contains("demo.work") && listed.contains("completed"), "{listed}");
});

both_engines!(blocking a_panic_or_a_timeout_fails_the_attempt_not_the_worker, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    enqueue(&db, dir.path(), &["--prefix", "panics", "--fail-times", "9", "--panic"]);
    enqueue(&db, dir.path(), &["--prefix", "stuck", "--stuck"]);
    let _server = demo(&db, dir.path())
        .args(["--jobs-workers", "2", "--jobs-retry-base-delay", "200ms"])
        .start();
    wait_until(PATIENCE, "both jobs are dead", |state| {
        let now = statuses(&db);
        *state = format!("{now:?}");
        (now.get("dead") == Some(&2)).then_some(())
    });
    let dead = db.rows("SELECT type, attempts, last_error FROM _jobs ORDER BY type");
    assert_eq!(
        dead,
        [
            "demo.stuck\t2\ttimed out after 1s",
            "demo.work\t3\tpanicked: panicking on purpose (attempt 3)"
        ]
    );
    // Both workers are still there: jobs queued now run, two at a time.
    enqueue(&db, dir.path(), &["--count", "10", "--ms", "100", "--prefix", "after"]);
    wait_completed(&db, 10);
    assert_exactly_once(&db, "after", 10);
    let starts: Vec<i64> = db
        .rows("SELECT at_ms FROM demo_starts WHERE key LIKE 'after-%' ORDER BY at_ms")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let overlapping = starts.windows(2).filter(|w| w[1] - w[0] < 50).count();
    assert!(overlapping >= 3, "two workers run side by side: starts at {starts:?}");
});

both_engines!(blocking two_servers_share_one_queue, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    enqueue(&db, dir.path(), &["--count", "1000", "--ms", "2", "--prefix", "shared"]);
    let (a, b) = (tempdir(), tempdir());
    let _one = demo(&db, a.path()).args(["--jobs-workers", "2"]).start();
    let _two = demo(&db, b.path()).args(["--jobs-workers", "2"]).start();
    wait_completed(&db, 1000);
    assert_exactly_once(&db, "shared", 1000);
    let per_process = db.rows("SELECT pid, count(*) FROM demo_runs GROUP BY pid");
    assert_eq!(per_process.len(), 2, "both servers worked the queue: {per_process:?}");
});

both_engines!(blocking ten_sighups_while_2000_jobs_run_lose_none_and_repeat_none, |engine: Engine| {
    const JOBS: i64 = 2000;
    const RESTARTS: usize = 10;
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    enqueue(&db, dir.path(), &["--count", "2000", "--ms", "10", "--prefix", "hup"]);
    let pid_file = dir.path().join("server.pid");
    let server = with_pid_file(demo(&db, dir.path()), &pid_file)
        .args(["--jobs-workers", "4"])
        .start();
    let _cleanup = Cleanup::new(dir.path());
    let port = server.port;
    let mut pid = read_pid_file(&pid_file).expect("PID file after ready");
    let mut done_at_restart = Vec::new();
    for _ in 0..RESTARTS {
        let old = pid;
        assert!(signal(old, "HUP"), "kill -HUP {old}");
        pid = wait_for_successor(&pid_file, port, old);
        wait_gone(old);
        done_at_restart.push(count(&db, "completed"));
    }
    wait_completed(&db, JOBS);
    stop(pid);
    eprintln!("{engine:?}: completed jobs after each of {RESTARTS} hand-overs: {done_at_restart:?}");
    assert!(
        done_at_restart[0] < JOBS / 2,
        "the hand-overs happened while the jobs ran: {done_at_restart:?}"
    );
    // Every job started once (none was released and run again) and finished once.
    assert_exactly_once(&db, "hup", JOBS as usize);
    assert_eq!(statuses(&db), HashMap::from([("completed".to_string(), JOBS)]), "none stuck");
    let workers = db.rows("SELECT DISTINCT pid FROM demo_runs").len();
    assert!(workers >= 3, "jobs ran in {workers} processes of the {} started", RESTARTS + 1);
    drop(server);
});

both_engines!(blocking kill_9_mid_job_reruns_it_after_its_lease_and_loses_nothing, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    enqueue(&db, dir.path(), &["--prefix", "slow", "--first-ms", "600000", "--ms", "50"]);
    let mut server = demo(&db, dir.path()).args(["--jobs-lease", "2"]).start();
    wait_until(PATIENCE, "the slow job starts", |_| {
        (!per_key(&db, "demo_starts", "slow").is_empty()).then_some(())
    });
    enqueue(&db, dir.path(), &["--count", "50", "--ms", "20", "--prefix", "quick"]);
    assert!(signal(server.pid(), "KILL"));
    server.wait_exit(PATIENCE).expect("killed");
    // The killed process's claim is still in the table: its lease has to run out.
    let held = db.rows("SELECT payload FROM _jobs WHERE status = 'running'");
    assert!(
        held.iter().any(|p| p.contains("\"slow-0\"")),
        "the slow job is left running under the dead process's lease: {held:?}"
    );

    let _next = demo(&db, dir.path()).args(["--jobs-lease", "2"]).start();
    wait_completed(&db, 51);
    let second_start: i64 = db
        .rows("SELECT at_ms FROM demo_starts WHERE key = 'slow-0' ORDER BY id DESC LIMIT 1")[0]
        .parse()
        .unwrap();
    let first_start: i64 = db
        .rows("SELECT at_ms FROM demo_starts WHERE key = 'slow-0' ORDER BY id LIMIT 1")[0]
        .parse()
        .unwrap();
    assert!(
        second_start - first_start >= 1000,
        "the slow job ran again only after its lease (2 s, renewed every 0.67 s) expired"
    );
    // Delivered at least once: the killed attempt started, the next one finished.
    assert_eq!(per_key(&db, "demo_starts", "slow"), HashMap::from([("slow-0".into(), 2)]));
    assert_eq!(per_key(&db, "demo_runs", "slow"), HashMap::from([("slow-0".into(), 1)]));
    let slow = db.rows("SELECT attempts FROM _jobs WHERE payload LIKE '%\"slow-0\"%'");
    assert_eq!(slow, ["2"], "the lost attempt counts");
    // Nothing else lost: every quick job finished; at most one (running beside the slow
    // one when the process was killed) finished twice.
    let quick = per_key(&db, "demo_runs", "quick");
    assert_eq!(quick.len(), 50, "quick jobs finished");
    let extra: i64 = quick.values().map(|n| n - 1).sum();
    assert!(extra <= 1, "quick jobs run twice: {extra}");
    assert_eq!(statuses(&db), HashMap::from([("completed".to_string(), 51)]));
});

both_engines!(blocking sigterm_lets_a_running_job_finish_or_releases_it, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());

    // A job that needs 1.5 s, within the 10 s shutdown timeout: it finishes, then the
    // process exits.
    enqueue(&db, dir.path(), &["--prefix", "short", "--first-ms", "1500"]);
    let mut server = demo(&db, dir.path()).args(["--shutdown-timeout", "10"]).start();
    wait_until(PATIENCE, "the short job starts", |_| {
        (!per_key(&db, "demo_starts", "short").is_empty()).then_some(())
    });
    let status = server.terminate();
    assert_eq!(status.code(), Some(0));
    assert_eq!(per_key(&db, "demo_runs", "short"), HashMap::from([("short-0".into(), 1)]));
    assert_eq!(count(&db, "completed"), 1);
    assert!(
        server.log().iter().any(|l| l.contains("job workers stopping: finishing running jobs")),
        "{:#?}",
        server.log()
    );

    // A job longer than the 2 s timeout: released to the queue, the interrupted attempt
    // not counted, and the process exits on time.
    enqueue(&db, dir.path(), &["--prefix", "long", "--first-ms", "600000", "--ms", "10"]);
    let mut server = demo(&db, dir.path()).args(["--shutdown-timeout", "2"]).start();
    wait_until(PATIENCE, "the long job starts", |_| {
        (!per_key(&db, "demo_starts", "long").is_empty()).then_some(())
    });
    let asked = Instant::now();
    assert_eq!(server.terminate().code(), Some(0));
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(8), "exit {took:?} after SIGTERM with a 2 s timeout");
    let long = db.rows(
        "SELECT status, attempts, lease_owner IS NULL, last_error FROM _jobs \
         WHERE payload LIKE '%\"long-0\"%'",
    );
    let released = long[0].replace("\tt\t", "\t1\t").replace("\ttrue\t", "\t1\t");
    assert_eq!(released, "pending\t0\t1\treleased at shutdown before it finished");
    assert!(per_key(&db, "demo_runs", "long").is_empty());

    // The next process runs it.
    let _server = demo(&db, dir.path()).start();
    wait_completed(&db, 2);
    assert_eq!(per_key(&db, "demo_runs", "long"), HashMap::from([("long-0".into(), 1)]));
});

both_engines!(blocking periodic_job_runs_once_per_slot_across_hand_overs, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let pid_file = dir.path().join("server.pid");
    let server = with_pid_file(demo(&db, dir.path()), &pid_file).args(["--demo-tick", "1"]).start();
    let _cleanup = Cleanup::new(dir.path());
    let port = server.port;
    let mut pid = server.pid();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(2500));
        let old = pid;
        assert!(signal(old, "HUP"));
        // Both processes are alive (and scheduling) until the old one drained.
        pid = wait_for_successor(&pid_file, port, old);
        wait_gone(old);
    }
    std::thread::sleep(Duration::from_millis(2500));
    stop(pid);
    drop(server);
    let ticks: Vec<(i64, i64)> = db
        .rows("SELECT slot, pid FROM demo_ticks ORDER BY slot")
        .iter()
        .map(|r| {
            let (slot, pid) = r.split_once('\t').unwrap();
            (slot.parse().unwrap(), pid.parse().unwrap())
        })
        .collect();
    let slots: BTreeSet<i64> = ticks.iter().map(|t| t.0).collect();
    assert_eq!(slots.len(), ticks.len(), "a slot ran twice: {ticks:?}");
    assert!(ticks.len() >= 8, "one tick per second for 10 s: {ticks:?}");
    let gaps: Vec<_> = ticks.windows(2).filter(|w| w[1].0 - w[0].0 != 1000).collect();
    assert!(gaps.is_empty(), "slots missed across the hand-overs: {gaps:?}");
    let pids: BTreeSet<i64> = ticks.iter().map(|t| t.1).collect();
    assert!(pids.len() >= 2, "ticks ran in one process only: {ticks:?}");
});

// `--jobs-database`: the queue in a SQLite file of its own (beside a SQLite or a
// PostgreSQL database), jobs enqueued inside a transaction queued once it commits and never
// when it rolls back.
both_engines!(blocking a_queue_in_a_database_of_its_own, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let queue = dir.path().join("queue.db");
    let queue_flag = ["--jobs-database", queue.to_str().unwrap()];
    let queue_db = Database::sqlite_file(&queue);
    let with_queue = |args: &[&str]| command(&db, dir.path(), &[args, &queue_flag[..]].concat());
    let out = with_queue(&["enqueue", "--count", "30", "--prefix", "apart"]);
    assert!(out.starts_with("Queued 30"), "{out}");
    let out = with_queue(&["enqueue", "--count", "5", "--prefix", "tx", "--in-transaction"]);
    assert!(out.contains("Queued 5 job(s) in one transaction."), "{out}");
    let out = with_queue(&["enqueue", "--prefix", "undone", "--in-transaction", "--rollback"]);
    assert!(out.contains("no job queued"), "{out}");
    assert_eq!(count(&queue_db, "pending"), 35, "queued in the queue's file");
    let main_tables = match engine {
        Engine::Sqlite => db.rows("SELECT name FROM sqlite_master WHERE name = '_jobs'"),
        Engine::Postgres => db.rows("SELECT tablename FROM pg_tables WHERE tablename = '_jobs'"),
    };
    assert!(main_tables.is_empty(), "no queue in the server's database: {main_tables:?}");
    let listed = with_queue(&["migrate", "--list"]);
    assert!(listed.contains("--jobs-database") && listed.contains("[x] jobs/0001_jobs"), "{listed}");

    let _server = demo(&db, dir.path()).args(queue_flag).start();
    wait_completed(&queue_db, 35);
    assert_exactly_once(&db, "apart", 30);
    assert_exactly_once(&db, "tx", 5);
    assert!(per_key(&db, "demo_starts", "undone").is_empty());

    // The same file as the server's database is refused, naming the setting.
    if engine == Engine::Sqlite {
        let out = Launch::new(dir.path())
            .program(&demo_bin())
            .args(["jobs", "list"])
            .database(&db)
            .args(["--jobs-database", &db.dsn])
            .run();
        assert_eq!(out.code(), Some(2), "{}", out.stderr);
        assert!(out.stderr.contains("--jobs-database") && out.stderr.contains("server's database"));
    }
});

both_engines!(blocking run_once_works_off_the_queue_without_a_server, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    enqueue(&db, dir.path(), &["--count", "20", "--prefix", "cron"]);
    // A job of a type this binary does not have (removed from the code): left alone, and
    // the operator is told.
    db.execute(
        "INSERT INTO _jobs (type, payload, max_attempts, run_at, created_at, updated_at) \
         VALUES ('gone.job', '{}', 3, 0, 0, 0)",
    );
    let out = Launch::new(dir.path())
        .program(&demo_bin())
        .args(["jobs", "run-once"])
        .database(&db)
        .args(["--log-level", "warn"])
        .run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Ran 20 job attempt(s)"), "{}", out.stdout);
    assert!(
        out.stderr.contains("jobs of types this server does not know") && out.stderr.contains("gone.job (1)"),
        "{}",
        out.stderr
    );
    assert_exactly_once(&db, "cron", 20);
    let listed = command(&db, dir.path(), &["jobs", "list"]);
    assert!(listed.contains("1 pending, 0 running, 0 failed, 0 dead, 20 completed"), "{listed}");
    // Enqueuing one at a time: the latency of `Jobs::enqueue` (one transaction each).
    let out = enqueue(&db, dir.path(), &["--count", "200", "--one-by-one", "--prefix", "one"]);
    eprintln!("{engine:?}: {}", out.trim());
    assert_eq!(count(&db, "pending"), 201);
});
