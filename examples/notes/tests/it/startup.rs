//! Start-up errors: one line on stderr starting with `server: error: `, exit code 2, and
//! the database file neither created nor changed.

use std::path::Path;

use crate::support::{Launch, Output, can_drop_privileges, chmod, db_path, files_in, tempdir};

/// What a start-up failure must look like: exit code 2, exactly one line on stderr,
/// starting with `server: error: ` and naming the setting or path, and no database file
/// created. Every deviation is collected, so one run reports all of them.
pub struct Failure<'a> {
    out: &'a Output,
    line: String,
    problems: Vec<String>,
}

impl<'a> Failure<'a> {
    pub fn of(out: &'a Output) -> Failure<'a> {
        let mut problems = Vec::new();
        if out.code() != Some(2) {
            problems.push(format!("exit status {:?}, expected code 2", out.status));
        }
        let lines: Vec<&str> = out.stderr.lines().collect();
        if lines.len() != 1 {
            problems.push(format!("{} lines on stderr, expected exactly one", lines.len()));
        }
        let line = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("server: error: "))
            .copied()
            .unwrap_or("")
            .to_string();
        if line.len() <= "server: error: ".len() {
            problems.push("no non-empty `server: error: ` line".to_string());
        }
        Failure { out, line, problems }
    }

    pub fn mentions(mut self, words: &[&str]) -> Self {
        for word in words {
            if !self.line.contains(word) {
                self.problems.push(format!("the error line does not mention `{word}`"));
            }
        }
        self
    }

    /// Neither stdout nor stderr contains `secret` (e.g. the rejected value of a key).
    pub fn never_shows(mut self, secret: &str) -> Self {
        if self.out.stdout.contains(secret) || self.out.stderr.contains(secret) {
            self.problems.push(format!("the output shows the secret value `{secret}`"));
        }
        self
    }

    /// No `app.db*` file was created in `dir`.
    pub fn no_database(mut self, dir: &Path) -> Self {
        let created: Vec<String> =
            files_in(dir).into_iter().filter(|f| f.starts_with("app.db")).collect();
        if !created.is_empty() {
            self.problems.push(format!("database files were created: {created:?}"));
        }
        self
    }

    pub fn check(self) {
        assert!(
            self.problems.is_empty(),
            "start-up failure not as expected:\n- {}\nstdout:\n{}stderr:\n{}",
            self.problems.join("\n- "),
            self.out.stdout,
            self.out.stderr
        );
    }
}

#[test]
fn bad_flag() {
    let dir = tempdir();
    let out = Launch::serve(dir.path()).args(["--prot", "80"]).run();
    Failure::of(&out).mentions(&["--prot"]).no_database(dir.path()).check();
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
    assert!(
        can_drop_privileges(),
        "this test needs root and setpriv (util-linux) to run the server as nobody"
    );
    let dir = tempdir();
    chmod(dir.path(), 0o755);
    let out = Launch::serve(dir.path()).nobody().run();
    Failure::of(&out)
        .mentions(&["not writable", dir.path().to_str().unwrap()])
        .no_database(dir.path())
        .check();
}

#[test]
fn failing_migration_leaves_the_database_unchanged() {
    let dir = tempdir();
    let db = db_path(dir.path());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch("CREATE TABLE notes(x); INSERT INTO notes VALUES ('precious');")
            .unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    }
    assert_eq!(files_in(dir.path()), ["app.db"], "the WAL was not cleaned up on close");
    let before = std::fs::read(&db).unwrap();

    let out = Launch::serve(dir.path()).run();
    Failure::of(&out).mentions(&["notes/0001_notes.up.sql", "already exists"]).check();

    assert!(std::fs::read(&db).unwrap() == before, "the database file changed");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
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
