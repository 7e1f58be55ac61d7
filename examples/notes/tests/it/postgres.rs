//! PostgreSQL in production, against the real binary: several `server` processes on one
//! database (notes, forms, CSRF tokens and sessions shared; migrations applied once when they start
//! together), PostgreSQL restarted under load (quick 503s while it is down, then service
//! again without restarting the server), a clear 503 when the pool is exhausted, and the CLI
//! (`backup` points at pg_dump, `check` reports the server and its TLS state).
//!
//! The tests of the other modules written with `both_engines!` run on PostgreSQL too
//! (`…::postgres`); this module holds what only a shared database server raises.
//! Figures are printed (`--nocapture` shows them); durations are asserted only where the
//! contract names them (a 503 well within the request timeout).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::postgres::PgCluster;
use crate::support::{
    Credentials, Database, Engine, Launch, PATIENCE, Server, client, cookie_set_by, create_note,
    encode, get, header, note_ids, tempdir, try_create_note,
};

/// Starts a server off the async runtime.
async fn start(launch: Launch) -> Server {
    tokio::task::spawn_blocking(move || launch.start()).await.expect("start server")
}

/// The server's signed-in cookies and CSRF token, made on a thread that may block.
async fn credentials(server: &Server) -> Credentials {
    tokio::task::block_in_place(|| server.credentials())
}

// ---------------------------------------------------------------------------------------
// Several instances

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_notes_and_accept_each_others_forms() {
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let db = Database::new(Engine::Postgres, dir_a.path());
    let a = start(Launch::serve_on(&db, dir_a.path())).await;
    let b = start(Launch::serve_on(&db, dir_b.path())).await;
    assert_ne!(a.port, b.port);
    let http = client();

    // A note created through A is listed, shown and found by B.
    let id = create_note(&http, &a, "Written on A", "the saffron harbor").await;
    let (status, list) = get(&http, &b, "/notes").await;
    assert_eq!(status, 200);
    assert_eq!(note_ids(&list), [id], "B's list after a create on A:\n{list}");
    let (status, body) = get(&http, &b, &format!("/notes/{id}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("Written on A"), "B's detail page:\n{body}");
    let (_, found) = get(&http, &b, &format!("/notes?q={}", encode("saffron"))).await;
    assert_eq!(note_ids(&found), [id], "B's search for a word of A's note");

    // The form (cookies and CSRF token) loaded from A posts to B: same keys.
    let from_a = credentials(&a).await;
    assert!(!from_a.token.is_empty() && !from_a.cookie.is_empty(), "{from_a:?}");
    let res = from_a
        .attach(http.post(b.url("/notes")))
        .form(&[("title", "Posted to B"), ("content", "with A's form")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "POST to B with A's cookies and token");
    let location = header(&res, "location").expect("Location");
    let id2: i64 = location.strip_prefix("/notes/").and_then(|i| i.parse().ok()).expect("id");
    // The session B set (its flash message) is read by A.
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| cookie_set_by(v.to_str().ok()?))
        .find(|(name, _)| *name == "_session")
        .map(|(name, value)| format!("{name}={value}"))
        .expect("B sets a _session cookie (the flash message) after a create");
    let page = http
        .get(a.url(&location))
        .header("Cookie", from_a.cookie_with(&session))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Created “Posted to B”."),
        "A does not show the flash message of B's session:\n{page}"
    );
    // A forged token is refused by B: the check really ran.
    let forged = Credentials { token: from_a.token.chars().rev().collect(), ..from_a.clone() };
    let refused = try_create_note(&http, b.port, &forged, "forged", "").await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("403")), "forged token: {refused:?}");

    // …and the other way round: B's form, an update and a delete through A.
    let from_b = credentials(&b).await;
    let res = from_b
        .attach(http.post(a.url(&format!("/notes/{id2}"))))
        .form(&[("title", "Renamed on A"), ("content", "with B's form")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "update on A with B's form");
    let (_, body) = get(&http, &b, &format!("/notes/{id2}")).await;
    assert!(body.contains("Renamed on A"), "B does not see A's update:\n{body}");
    let res = from_b.attach(http.post(a.url(&format!("/notes/{id}/delete")))).send().await.unwrap();
    assert_eq!(res.status(), 303, "delete on A with B's form");
    assert_eq!(get(&http, &b, &format!("/notes/{id}")).await.0, 404, "deleted on A, on B");
    let (_, list) = get(&http, &a, "/notes").await;
    assert_eq!(note_ids(&list), [id2], "A's list");
    assert_eq!(db.count_notes(), 1);
}

#[test]
fn two_instances_starting_at_once_migrate_once() {
    const ROUNDS: usize = 3;
    for round in 1..=ROUNDS {
        let (dir_a, dir_b) = (tempdir(), tempdir());
        let db = Database::new(Engine::Postgres, dir_a.path());
        // Both processes are started before either is waited for (B first every other
        // round).
        let (launch_a, launch_b) =
            (Launch::serve_on(&db, dir_a.path()), Launch::serve_on(&db, dir_b.path()));
        let (mut a, mut b) = if round % 2 == 0 {
            let b = launch_b.spawn();
            (launch_a.spawn(), b)
        } else {
            let a = launch_a.spawn();
            (a, launch_b.spawn())
        };
        a.wait_listening();
        b.wait_listening();

        let rows = db.migration_rows();
        let mut unique = rows.clone();
        unique.dedup();
        assert_eq!(rows, unique, "round {round}: a migration recorded twice: {rows:?}");
        assert_eq!(
            rows,
            [
                "admin/0001_admin_log.up.sql",
                "auth/0001_auth.up.sql",
                "auth/0002_passkeys.up.sql",
                "auth/0003_recovery_codes.up.sql",
                "auth/0004_invites.up.sql",
                "auth/0005_email_verification.up.sql",
                "auth/0006_user_language.up.sql",
                "jobs/0001_jobs.up.sql",
                "notes/0001_notes.up.sql",
                "notes/0002_notes_search.up.sql",
                "notes/0003_notes_plain_text.up.sql",
                "notes/0004_notes_authors.up.sql",
                "notes/0005_note_exports.up.sql",
                "notes/0006_note_attachments.up.sql"
            ],
            "round {round}: rows of _migrations (admin 0001, auth 0001-0006, jobs 0001, notes 0001-0006): {rows:?}"
        );
        let applied =
            |s: &Server| s.log().iter().filter(|l| l.contains("applied migration")).count();
        let (by_a, by_b) = (applied(&a), applied(&b));
        println!(
            "round {round}: `applied migration` lines: A {by_a}, B {by_b}; _migrations {rows:?}"
        );
        assert!(
            (by_a, by_b) == (rows.len(), 0) || (by_a, by_b) == (0, rows.len()),
            "round {round}: migrations applied by A {by_a} times, by B {by_b} times\n\
             A:\n{}\nB:\n{}",
            a.log().join("\n"),
            b.log().join("\n")
        );
        for s in [&a, &b] {
            let res = crate::support::RawRequest::get(s.port, "/notes")
                .headers(s.credentials().headers())
                .send()
                .expect("GET /notes");
            assert_eq!(res.status, 200);
        }
        drop((a, b));
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL restarted under load

/// One request of [`Recorder`]: when it started, how long it took, what came back.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    took: Duration,
    what: &'static str,
    /// The status, or the error.
    outcome: Result<u16, String>,
}

/// Client tasks that send GET /notes (and a POST /notes every fourth request) without
/// pause, and record every answer.
struct Recorder {
    stop: Arc<std::sync::atomic::AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    first_503: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start(port: u16, tasks: usize, credentials: Credentials) -> Recorder {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let first_503 = Arc::new(Mutex::new(None));
        let (stop2, samples2, first2) = (stop.clone(), samples.clone(), first_503.clone());
        let credentials = Arc::new(credentials);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let handles: Vec<_> = (0..tasks)
                    .map(|task| {
                        let (stop, samples, first, http, credentials) = (
                            stop2.clone(),
                            samples2.clone(),
                            first2.clone(),
                            http.clone(),
                            credentials.clone(),
                        );
                        tokio::spawn(async move {
                            let mut n = 0usize;
                            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                                n += 1;
                                let url = format!("http://127.0.0.1:{port}/notes");
                                let (what, request) = if (task + n).is_multiple_of(4) {
                                    let title = format!("restart {task}-{n}");
                                    let post = http
                                        .post(&url)
                                        .form(&[("title", title.as_str()), ("content", "x")]);
                                    ("POST /notes", credentials.attach(post))
                                } else {
                                    ("GET /notes", credentials.attach(http.get(&url)))
                                };
                                let at = Instant::now();
                                let outcome = match request.send().await {
                                    Ok(res) => {
                                        let status = res.status().as_u16();
                                        match res.text().await {
                                            Ok(body) => {
                                                if status == 503 {
                                                    first.lock().unwrap().get_or_insert(body);
                                                }
                                                Ok(status)
                                            }
                                            Err(e) => Err(format!("{status}, body: {e}")),
                                        }
                                    }
                                    Err(e) => Err(format!("{e:?}")),
                                };
                                let took = at.elapsed();
                                samples.lock().unwrap().push(Sample { at, took, what, outcome });
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.expect("load task panicked");
                }
            });
        });
        Recorder { stop, samples, first_503, thread: Some(thread) }
    }

    fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("load thread panicked");
        }
        self.snapshot()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The heading and first paragraph of an error page, as text.
fn error_text(html: &str) -> String {
    let Some(at) = html.find("<h1>") else { return html.chars().take(200).collect() };
    let rest = &html[at..];
    let end = rest.find("</p>").map_or(rest.len(), |e| e + 4);
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ok(sample: &Sample) -> bool {
    matches!(sample.outcome, Ok(200 | 303))
}

/// A cluster of its own (restarting the shared one would break the tests running beside
/// this one); `--database-acquire-timeout 1`.
#[test]
fn postgres_restart_under_load_gives_quick_503s_and_recovers() {
    const TASKS: usize = 8;
    const DOWN: Duration = Duration::from_secs(2);
    let cluster = PgCluster::start();
    let dir = tempdir();
    let db = Database::on_cluster(&cluster.url);
    let mut server =
        Launch::serve_on(&db, dir.path()).args(["--database-acquire-timeout", "1"]).start();
    let pid = server.pid();
    let load = Recorder::start(server.port, TASKS, server.credentials());
    let t0 = Instant::now();
    let deadline = t0 + PATIENCE;
    while load.snapshot().iter().filter(|s| ok(s)).count() < 50 {
        assert!(Instant::now() < deadline, "no load progress: {:?}", load.snapshot().last());
        std::thread::sleep(Duration::from_millis(20));
    }

    let stopping = Instant::now();
    cluster.run("stop-only", &["fast"]);
    let down = Instant::now();
    std::thread::sleep(DOWN);
    let starting = Instant::now();
    cluster.run("start-only", &[]);
    let up = Instant::now();
    // Service comes back without a server restart.
    let recovered = loop {
        let samples = load.snapshot();
        if let Some(s) = samples.iter().filter(|s| s.at >= up && ok(s)).map(|s| s.at).min() {
            break s;
        }
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no successful request within 30 s of PostgreSQL being back; last: {:?}",
            samples.last()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Then a steady stretch after recovery.
    std::thread::sleep(Duration::from_secs(3));
    let body_503 = load.first_503.lock().unwrap().clone().unwrap_or_default();
    let samples = load.finish();
    let end = Instant::now();

    assert_eq!(server.wait_exit(Duration::ZERO), None, "the server exited");
    assert_eq!(server.pid(), pid);
    let statuses = |from: Instant, to: Instant| {
        let (mut n, mut s200, mut s303, mut s503, mut other) = (0, 0, 0, 0, Vec::new());
        for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
            n += 1;
            match &s.outcome {
                Ok(200) => s200 += 1,
                Ok(303) => s303 += 1,
                Ok(503) => s503 += 1,
                _ => other.push(s.clone()),
            }
        }
        (n, s200, s303, s503, other)
    };
    let max_took = |from: Instant, to: Instant| {
        samples.iter().filter(|s| s.at >= from && s.at < to).map(|s| s.took).max()
    };
    let (n, s200, s303, s503, other) = statuses(t0, end);
    let (dn, _, _, d503, _) = statuses(down, starting);
    let (an, a200, a303, a503, after_other) = statuses(recovered + Duration::from_secs(1), end);
    let posts = samples.iter().filter(|s| s.what == "POST /notes").count();
    let slowest = max_took(t0, end).unwrap_or_default();
    let slowest_down = max_took(stopping, up).unwrap_or_default();
    println!(
        "PostgreSQL restart under load: {n} requests ({posts} POSTs; {s200} × 200, {s303} × 303, {s503} × 503, \
         {} failures); while down ({:.1} s): {dn} requests, {d503} × 503, slowest {:.3} s \
         (stop took {:.2} s, start {:.2} s); first success {:.2} s after PostgreSQL was back; \
         from 1 s after that: {an} requests, {a200} × 200, {a303} × 303, {a503} × 503; \
         slowest request overall {:.3} s; server PID {pid} throughout",
        other.len(),
        (starting - down).as_secs_f64(),
        slowest_down.as_secs_f64(),
        (down - stopping).as_secs_f64(),
        (up - starting).as_secs_f64(),
        (recovered - up).as_secs_f64(),
        slowest.as_secs_f64(),
    );
    println!("the 503 says: {}", error_text(&body_503));
    assert!(body_503.contains("too busy"), "a 503 without its message:\n{body_503}");
    assert!(
        other.is_empty(),
        "answers other than 200, 303, 503: {:#?}",
        &other[..other.len().min(20)]
    );
    assert!(dn > 0 && d503 == dn, "requests while PostgreSQL was down: {dn}, of which 503: {d503}");
    assert!(
        slowest < Duration::from_secs(6),
        "a request took {slowest:?} (must stay well under the 30 s request timeout)"
    );
    assert!(recovered - up < Duration::from_secs(10), "recovery took {:?}", recovered - up);
    assert!(
        a503 == 0 && after_other.is_empty() && a200 > 0 && a303 > 0,
        "after recovery: {an} requests, {a200} × 200, {a303} × 303, {a503} × 503, {after_other:?}"
    );
    drop(server);
    drop(cluster);
}

// ---------------------------------------------------------------------------------------
// Pool exhaustion

/// `--database-pool-size 1 --database-acquire-timeout 1`: while the only connection waits
/// on a lock taken outside the server, the other requests get a 503 after about a second,
/// never a 500, and the server serves again once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_gives_a_503_not_a_500() {
    const HOLD: u64 = 4;
    let dir = tempdir();
    let db = Database::new(Engine::Postgres, dir.path());
    let server = start(Launch::serve_on(&db, dir.path()).args([
        "--database-pool-size",
        "1",
        "--database-acquire-timeout",
        "1",
    ]))
    .await;
    let http = client();
    let id = create_note(&http, &server, "Before the lock", "").await;

    // Another session holds an exclusive lock on `notes` for HOLD seconds.
    let mut locker = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &db.dsn, "-c"])
        .arg(format!(
            "BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({HOLD}); COMMIT;"
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let deadline = Instant::now() + PATIENCE;
    while db
        .psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'notes' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        )
        .trim()
        != "1"
    {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let locked = Instant::now();

    // The first request takes the only connection and waits on the lock; the next ones
    // wait for a connection.
    let credentials = server.credentials();
    let timed = |path: String| {
        let request = credentials.attach(http.get(server.url(&path)));
        tokio::spawn(async move {
            let at = Instant::now();
            let res = request.send().await.expect("GET");
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            (status, at.elapsed(), body)
        })
    };
    let first = timed("/notes".to_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let others: Vec<_> = (0..4)
        .map(|i| timed(if i % 2 == 0 { "/notes".into() } else { format!("/notes/{id}") }))
        .collect();
    let mut results = Vec::new();
    for other in others {
        results.push(other.await.unwrap());
    }
    let (first_status, first_took, _) = first.await.unwrap();
    let _ = locker.wait();
    let after = get(&http, &server, "/notes").await;

    println!(
        "pool exhaustion: first request {first_status} after {:.2} s (lock held {HOLD} s, \
         from {:.2} s before it); others: {:?}",
        first_took.as_secs_f64(),
        locked.elapsed().as_secs_f64() - first_took.as_secs_f64(),
        results
            .iter()
            .map(|(s, t, _)| (*s, format!("{:.2} s", t.as_secs_f64())))
            .collect::<Vec<_>>()
    );
    if let Some((_, _, body)) = results.iter().find(|(s, _, _)| *s == 503) {
        println!("the 503 says: {}", error_text(body));
        assert!(body.contains("too busy"), "a 503 without its message:\n{body}");
    }
    assert_eq!(first_status, 200, "the request holding the connection");
    for (status, took, body) in &results {
        assert_eq!(*status, 503, "a request waiting for the only connection:\n{body}");
        assert!(
            *took >= Duration::from_millis(900) && *took < Duration::from_secs(HOLD),
            "a 503 after {took:?} (acquire timeout 1 s, lock held {HOLD} s)"
        );
    }
    assert_eq!(after.0, 200, "after the lock was released");
    assert_eq!(note_ids(&after.1), [id]);
    server.wait_for_log("naming the exhausted pool", |l| {
        l.contains("no database connection became free")
    });
}

// ---------------------------------------------------------------------------------------
// The CLI on PostgreSQL

#[test]
fn backup_points_at_pg_dump_and_check_reports_the_server() {
    let dir = tempdir();
    let db = Database::new(Engine::Postgres, dir.path());
    let dest = dir.path().join("copy.db");
    let out = Launch::new(dir.path())
        .args(["backup", dest.to_str().unwrap(), "--database-dsn", &db.dsn])
        .run();
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("pg_dump"), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "one line:\n{}", out.stderr);
    assert!(!dest.exists(), "nothing written");

    // Over verified TLS, by name, as the docs recommend.
    let ca = std::env::var("BURROW_TEST_PG_CA").expect("BURROW_TEST_PG_CA (scripts/test.sh)");
    let verified = db
        .dsn
        .replace("127.0.0.1", "localhost")
        .replace("sslmode=disable", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let out = Launch::new(dir.path()).args(["check", "--database-dsn", &verified]).run();
    let report = out.stdout.lines().find(|l| l.starts_with("PostgreSQL ")).unwrap_or_default();
    for part in ["TLS on (TLSv1.3)", "certificate verified", "the pool can connect"] {
        assert!(report.contains(part), "{part} in: {}", out.stdout);
    }
    assert!(!out.stdout.contains("cannot use PostgreSQL"), "{}", out.stdout);

    // Without TLS to a server that is not local, or with no server at all: a problem.
    let port = db.dsn.split("127.0.0.1:").nth(1).and_then(|r| r.split('/').next()).expect("port");
    let down = db.dsn.replace(&format!(":{port}/"), ":1/");
    let out = Launch::new(dir.path()).args(["check", "--database-dsn", &down]).run();
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stdout.contains("✗ cannot use PostgreSQL"), "{}", out.stdout);
    assert!(!out.stdout.contains(":postgres@"), "password shown: {}", out.stdout);
}
