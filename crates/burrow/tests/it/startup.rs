//! Start-up: app registry errors, the configuration cascade, migrations.

use burrow::Server;
use burrow::db::Dsn;

use crate::Site;
use crate::apps::{A, B, B_READY, BadTemplate, Broken, Named};

fn error(site: &Site, server: Server, extra: &[&str]) -> String {
    match site.build(server, extra) {
        Ok(_) => panic!("start-up should have failed"),
        Err(e) => {
            assert_eq!(e.code, 2, "{e}");
            assert!(!e.message.contains('\n'), "one line: {e}");
            e.message
        }
    }
}

#[test]
fn missing_dependency_cycle_and_duplicate_name_are_start_up_errors() {
    let site = Site::new();
    let msg = error(&site, Server::new("s", "1").app(B::new()), &[]);
    assert!(msg.contains("'b'") && msg.contains("'a'"), "{msg}");
    let msg = error(
        &site,
        Server::new("s", "1").app(Named::new("x", &["y"])).app(Named::new("y", &["x"])),
        &[],
    );
    assert!(msg.contains("x -> y -> x"), "{msg}");
    let msg = error(&site, Server::new("s", "1").app(A).app(A), &[]);
    assert!(msg.contains("'a' is registered twice"), "{msg}");
    assert!(!site.db().exists(), "nothing written");
}

#[test]
fn flag_beats_toml_beats_default_for_core_and_app_settings() {
    let site = Site::new();
    let toml = site.dir.path().join("app.toml");
    std::fs::write(
        &toml,
        "[server]\nmax_body_size = \"64KB\"\nshutdown_timeout = \"3s\"\n[b]\nready = false\n",
    )
    .unwrap();
    let toml = toml.display().to_string();
    let booted = site
        .build(
            Server::new("s", "1").app(A).app(B::new()),
            &["--config", &toml, "--shutdown-timeout", "7"],
        )
        .unwrap();
    assert_eq!(booted.ctx.settings.max_body_size, 64 * 1024, "from the file");
    assert_eq!(booted.ctx.settings.shutdown_timeout.as_secs(), 7, "the flag wins over the file");
    assert_eq!(booted.ctx.config.get(&B_READY), Ok(false), "app settings come from the file too");
    assert_eq!(booted.ctx.settings.port, 8080, "default");
}

#[test]
fn bad_toml_values_and_unknown_keys_name_the_file() {
    let site = Site::new();
    let toml = site.dir.path().join("bad.toml");
    std::fs::write(&toml, "[server]\nport = \"eighty\"\n").unwrap();
    let path = toml.display().to_string();
    let msg = error(&site, Server::new("s", "1").app(A), &["--config", &path]);
    assert!(
        msg.contains("--port") && msg.contains("config file") && msg.contains("bad.toml"),
        "{msg}"
    );
    std::fs::write(&toml, "[server]\nprot = 80\n").unwrap();
    let msg = error(&site, Server::new("s", "1").app(A), &["--config", &path]);
    assert!(msg.contains("server.prot"), "{msg}");
    std::fs::write(&toml, "[server\nport = 80\n").unwrap();
    let msg = error(&site, Server::new("s", "1").app(A), &["--config", &path]);
    assert!(msg.contains("bad.toml") && msg.contains("line 1"), "{msg}");
    let msg = error(&site, Server::new("s", "1").app(A).app(B::new()), &["--b-ready", "maybe"]);
    assert!(msg.contains("--b-ready") && msg.contains("maybe"), "{msg}");
    assert!(!site.db().exists(), "nothing written");
}

#[test]
fn a_failing_migration_stops_start_up_and_leaves_no_trace() {
    let site = Site::new();
    let msg = error(&site, Server::new("s", "1").app(Broken), &[]);
    assert!(msg.contains("broken/0002_broken.up.sql") && msg.contains("syntax error"), "{msg}");
    assert!(!site.db().exists(), "the database file this start created is removed again");

    // An existing database keeps its bytes: the first migration of the failed run is rolled
    // back too.
    drop(site.build(Server::new("s", "1").app(A), &[]).unwrap());
    let before = std::fs::read(site.db()).unwrap();
    let msg = error(&site, Server::new("s", "1").app(A).app(Broken), &[]);
    assert!(msg.contains("broken/0002_broken.up.sql"), "{msg}");
    assert_eq!(std::fs::read(site.db()).unwrap(), before);
}

#[test]
fn a_template_error_stops_start_up_before_the_database_is_created() {
    let site = Site::new();
    let msg = error(&site, Server::new("s", "1").app(BadTemplate), &[]);
    assert!(msg.contains("broken.html"), "{msg}");
    assert!(!site.db().exists(), "the database was created before the templates were checked");
}

#[test]
fn database_problems_are_named_before_anything_is_written() {
    let site = Site::new();
    let missing = site.dir.path().join("nope/app.db").display().to_string();
    let msg = error(&site, Server::new("s", "1").app(A), &["--database-dsn", &missing]);
    assert!(msg.contains("does not exist") && msg.contains("nope"), "{msg}");
    let msg = error(&site, Server::new("s", "1").app(A), &["--database-dsn", "redis://x"]);
    assert!(msg.contains("--database-dsn"), "{msg}");
    std::fs::write(site.db(), "not a database, just text").unwrap();
    let msg = error(&site, Server::new("s", "1").app(A), &[]);
    assert!(msg.contains("not a SQLite database") && msg.contains("app.db"), "{msg}");
    assert_eq!(std::fs::read_to_string(site.db()).unwrap(), "not a database, just text");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_memory_database_is_shared_by_writer_and_readers() {
    let site = Site::new();
    let booted =
        site.build(Server::new("s", "1").app(A), &["--database-dsn", "sqlite://:memory:"]).unwrap();
    assert_eq!(booted.ctx.settings.database, Dsn::SqliteMemory);
    booted
        .ctx
        .db
        .write(|c| c.execute("INSERT INTO items (name) VALUES ('second')", &[]))
        .await
        .unwrap();
    let names: Vec<(String,)> =
        booted.ctx.db.read(|c| c.query("SELECT name FROM items ORDER BY id", &[])).await.unwrap();
    assert_eq!(names.len(), 2);
    assert!(!site.db().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_queue_instead_of_failing() {
    let site = Site::new();
    let booted = site.build(Server::new("s", "1").app(A), &[]).unwrap();
    let db = booted.ctx.db.clone();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |c| {
                    // Read-modify-write: lost updates would show if transactions overlapped.
                    let (n,): (i64,) = c.query_one("SELECT count(*) FROM items", &[])?;
                    c.execute(
                        "INSERT INTO items (name) VALUES (?)",
                        burrow::db::params![format!("w{i}-{n}")],
                    )?;
                    Ok(())
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("no SQLITE_BUSY");
    }
    let names: Vec<(String,)> = db.read(|c| c.query("SELECT name FROM items", &[])).await.unwrap();
    assert_eq!(names.len(), 65);
    let mut counts: Vec<i64> =
        names.iter().skip(1).map(|(n,)| n.rsplit('-').next().unwrap().parse().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, (1..=64).collect::<Vec<_>>(), "each write saw every earlier one");
    // The file is in WAL mode, with the PRAGMAs of the spec on every connection.
    let (mode, sync, fk): (String, i64, i64) = db
        .read(|c| {
            let (m,): (String,) = c.query_one("PRAGMA journal_mode", &[])?;
            let (s,): (i64,) = c.query_one("PRAGMA synchronous", &[])?;
            let (f,): (i64,) = c.query_one("PRAGMA foreign_keys", &[])?;
            Ok((m, s, f))
        })
        .await
        .unwrap();
    assert_eq!((mode.as_str(), sync, fk), ("wal", 1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_request_does_not_lose_a_connection() {
    // A client that disconnects mid-request drops the handler's future while its query
    // still runs on a blocking thread; the connection must come back to the pool.
    let site = Site::new();
    let booted = site.build(Server::new("s", "1").app(A), &[]).unwrap();
    let db = booted.ctx.db.clone();
    let slow_write = db.write(|c| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        c.execute("INSERT INTO items (name) VALUES ('slow')", &[])
    });
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), slow_write).await.is_err(),
        "cancelled"
    );
    let slow_read = db.read(|c| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        c.query::<(String,)>("SELECT name FROM items", &[])
    });
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), slow_read).await.is_err(),
        "cancelled"
    );
    db.write(|c| c.execute("INSERT INTO items (name) VALUES ('after')", &[]))
        .await
        .expect("the writer is still there");
    let (n,): (i64,) = db.read(|c| c.query_one("SELECT count(*) FROM items", &[])).await.unwrap();
    assert_eq!(n, 3, "first, the cancelled-but-committed slow insert, after");
    db.check().await.expect("ready");
}
