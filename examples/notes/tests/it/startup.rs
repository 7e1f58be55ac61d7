//! Start-up errors: one line on stderr starting with `server: error: `, exit code 2, and
//! the database file neither created nor changed.

use crate::both_engines;
use crate::support::failure::Failure;
use crate::support::{Database, Engine, Launch, chmod, db_path, files_in, require_nobody, tempdir};

#[test]
fn bad_flag() {
    let dir = tempdir();
    let out = Launch::serve(dir.path()).args(["--prot", "80"]).run();
    // clap's tip survives the one-line format.
    Failure::of(&out)
        .mentions(&["--prot", "a similar argument exists: '--port'", "--help"])
        .no_database(dir.path())
        .check();
}

#[test]
fn misspelt_command() {
    let dir = tempdir();
    let out = Launch::new(dir.path()).arg("migrat").run();
    Failure::of(&out)
        .mentions(&["'migrat'", "a similar subcommand exists: 'migrate'", "--help"])
        .no_database(dir.path())
        .check();
}

#[test]
fn bad_port_flag() {
    let dir = tempdir();
    let out = Launch::new(dir.path())
        .args(["--port", "abc", "--database-dsn"])
        .arg(db_path(dir.path()))
        .run();
    Failure::of(&out).mentions(&["--port", "abc"]).no_database(dir.path()).check();
}

#[test]
fn bad_port_from_environment() {
    let dir = tempdir();
    let out = Launch::new(dir.path())
        .args(["--database-dsn"])
        .arg(db_path(dir.path()))
        .env("PORT", "abc")
        .run();
    Failure::of(&out).mentions(&["PORT", "environment"]).no_database(dir.path()).check();
}

#[test]
fn bad_value_in_config_file() {
    let dir = tempdir();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[server]\nport = \"x\"\n").unwrap();
    let out = Launch::new(dir.path())
        .args(["--database-dsn"])
        .arg(db_path(dir.path()))
        .arg("--config")
        .arg(&config)
        .run();
    Failure::of(&out)
        .mentions(&[config.to_str().unwrap(), "--port"])
        .no_database(dir.path())
        .check();
}

#[test]
fn unknown_key_in_config_file() {
    let dir = tempdir();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[server]\nprot = 8080\n").unwrap();
    let out = Launch::serve(dir.path()).arg("--config").arg(&config).run();
    Failure::of(&out).mentions(&[config.to_str().unwrap(), "prot"]).no_database(dir.path()).check();
}

#[test]
fn unsupported_database_dsn() {
    let dir = tempdir();
    let out = Launch::new(dir.path()).args(["--port", "0", "--database-dsn", "mysql://x"]).run();
    Failure::of(&out).mentions(&["--database-dsn"]).check();
    assert!(files_in(dir.path()).is_empty(), "files created: {:?}", files_in(dir.path()));
}

#[test]
fn missing_database_directory() {
    let dir = tempdir();
    let missing = dir.path().join("xyz-nonexistent");
    let out = Launch::new(dir.path())
        .args(["--port", "0", "--database-dsn"])
        .arg(missing.join("app.db"))
        .run();
    Failure::of(&out).mentions(&[missing.to_str().unwrap()]).check();
    assert!(!missing.exists(), "the directory was created");
    assert!(files_in(dir.path()).is_empty(), "files created: {:?}", files_in(dir.path()));
}

#[test]
fn file_that_is_not_a_database() {
    let dir = tempdir();
    let db = db_path(dir.path());
    std::fs::write(&db, "hello").unwrap();
    let out = Launch::serve(dir.path()).run();
    Failure::of(&out).mentions(&[db.to_str().unwrap(), "not a SQLite database"]).check();
    assert_eq!(std::fs::read(&db).unwrap(), b"hello", "the file was changed");
    assert_eq!(files_in(dir.path()), ["app.db"], "other files were created");
}

/// Root may write anywhere, so the server runs as `nobody` in a root-owned 0755 directory.
#[test]
fn unwritable_database_directory() {
    require_nobody();
    let dir = tempdir();
    chmod(dir.path(), 0o755);
    let out = Launch::serve(dir.path()).nobody().run();
    Failure::of(&out)
        .mentions(&["not writable", dir.path().to_str().unwrap()])
        .no_database(dir.path())
        .check();
}

// A table `notes` made outside the server: migration 0001 (CREATE TABLE notes) fails, and
// nothing of the pending migrations stays (they run in one transaction on both engines).
both_engines!(blocking failing_migration_leaves_the_database_unchanged, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let before = match engine {
        Engine::Sqlite => {
            let conn = rusqlite::Connection::open(db.path()).unwrap();
            let mode: String =
                conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal");
            conn.execute_batch("CREATE TABLE notes(x); INSERT INTO notes VALUES ('precious');")
                .unwrap();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
            drop(conn);
            assert_eq!(files_in(dir.path()), ["app.db"], "the WAL was not cleaned up on close");
            std::fs::read(db.path()).unwrap()
        }
        Engine::Postgres => {
            db.psql("CREATE TABLE notes(x text); INSERT INTO notes VALUES ('precious');");
            Vec::new()
        }
    };

    let out = Launch::serve_on(&db, dir.path()).run();
    Failure::of(&out).mentions(&["notes/0001_notes.up.sql", "already exists"]).check();

    match engine {
        Engine::Sqlite => {
            assert!(std::fs::read(db.path()).unwrap() == before, "the database file changed");
            let conn = rusqlite::Connection::open_with_flags(
                db.path(),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_schema ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(tables, ["notes"], "tables after the failed migration");
            let kept: String = conn.query_row("SELECT x FROM notes", [], |r| r.get(0)).unwrap();
            assert_eq!(kept, "precious");
        }
        Engine::Postgres => {
            // Neither `_migrations` nor anything else was left behind.
            assert_eq!(db.tables(), ["notes"], "tables after the failed migration");
            let columns = db.psql(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_name = 'notes' ORDER BY ordinal_position",
            );
            assert_eq!(columns.trim(), "x", "columns of notes after the failed migration");
            assert_eq!(db.psql("SELECT x FROM notes").trim(), "precious");
            let indexes = db.psql("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'");
            assert_eq!(indexes.trim(), "0", "indexes after the failed migration");
        }
    }
});

#[test]
fn port_in_use() {
    let dir = tempdir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Launch::new(dir.path())
        .args(["--port", &port, "--database-dsn"])
        .arg(db_path(dir.path()))
        .run();
    Failure::of(&out).mentions(&[&port, "--port"]).no_database(dir.path()).check();
    drop(taken);
}
