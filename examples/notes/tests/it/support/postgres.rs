//! The database engine a test runs on: [`Engine`] and [`Database`] (a SQLite file in the
//! test's directory, or a fresh database on the PostgreSQL test cluster, dropped at the
//! end), [`PgCluster`] (a cluster of a test's own, for tests that stop PostgreSQL), and the
//! [`both_engines!`](crate::both_engines) macro that runs one test body on each engine.
//!
//! The shared cluster is the one scripts/test.sh starts (`BURROW_TEST_PG_URL`); without it
//! a PostgreSQL test fails, it is never skipped. SQL is run with `psql`, outside the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::files::db_path;

/// Which engine a test runs the server on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The URL of the shared test cluster; a missing cluster fails the test.
pub fn pg_url() -> String {
    std::env::var("BURROW_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "BURROW_TEST_PG_URL is not set: run scripts/test.sh, which starts a PostgreSQL \
             cluster for the suite, or `scripts/pg-cluster.sh start DIR && source DIR/env` \
             (and export BURROW_TEST_PG_SCRIPT=$PWD/scripts/pg-cluster.sh)"
        )
    })
}

/// Runs `sql` with psql on `url` (`-X -At`, stopping at the first error); its stdout.
/// Panics if psql fails.
pub fn psql(url: &str, sql: &str) -> String {
    try_psql(url, sql).unwrap_or_else(|e| panic!("psql `{sql}`: {e}"))
}

/// [`psql`], its failure returned.
pub fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A database of its own on a cluster, dropped (WITH (FORCE)) when the last holder goes.
pub struct PgDatabase {
    /// What the server gets: `postgres://…/NAME?sslmode=disable`.
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    /// A new empty database on the cluster whose admin URL is `admin`.
    pub fn create_on(admin: &str) -> PgDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("burrow_notes_t_{}_{n}", std::process::id());
        psql(admin, &format!("CREATE DATABASE {name}"));
        let base = admin.split('?').next().unwrap().rsplit_once('/').expect("a database").0;
        PgDatabase { url: format!("{base}/{name}?sslmode=disable"), admin: admin.to_string(), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ =
            try_psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// The database a test's servers use: its `--database-dsn` and, on PostgreSQL, the guard
/// that drops it (shared by every [`Launch`](super::Launch) and
/// [`Server`](super::Server) made with it, so it outlives them).
#[derive(Clone)]
pub struct Database {
    pub engine: Engine,
    pub dsn: String,
    pub(super) pg: Option<Arc<PgDatabase>>,
}

impl Database {
    /// DIR/app.db, or a fresh database on the shared cluster.
    pub fn new(engine: Engine, dir: &Path) -> Database {
        match engine {
            Engine::Sqlite => Database {
                engine,
                dsn: db_path(dir).to_str().expect("utf-8 path").to_string(),
                pg: None,
            },
            Engine::Postgres => Database::on_cluster(&pg_url()),
        }
    }

    /// The SQLite file at `path` (e.g. a second database of the same test).
    pub fn sqlite_file(path: &Path) -> Database {
        let dsn = path.to_str().expect("utf-8 path").to_string();
        Database { engine: Engine::Sqlite, dsn, pg: None }
    }

    /// A fresh database on the cluster whose admin URL is `admin`.
    pub fn on_cluster(admin: &str) -> Database {
        let pg = PgDatabase::create_on(admin);
        Database { engine: Engine::Postgres, dsn: pg.url.clone(), pg: Some(Arc::new(pg)) }
    }

    /// The SQLite file (panics on PostgreSQL).
    pub fn path(&self) -> PathBuf {
        assert_eq!(self.engine, Engine::Sqlite, "no database file on PostgreSQL");
        PathBuf::from(&self.dsn)
    }

    /// Runs `sql` (PostgreSQL only) and returns psql's unaligned, tab-separated output.
    pub fn psql(&self, sql: &str) -> String {
        assert_eq!(self.engine, Engine::Postgres, "psql on a SQLite database");
        psql(&self.dsn, sql)
    }

    /// The SQLite file opened read-only beside a running server (which may hold the write
    /// lock for a moment).
    fn read_only(&self) -> rusqlite::Connection {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = rusqlite::Connection::open_with_flags(self.path(), flags).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        conn
    }

    /// Every note's id and title, read outside the server.
    pub fn notes(&self) -> HashMap<i64, String> {
        match self.engine {
            Engine::Sqlite => {
                let conn = self.read_only();
                let mut stmt = conn.prepare("SELECT id, title FROM notes").unwrap();
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Engine::Postgres => self
                .psql("SELECT id, title FROM notes")
                .lines()
                .map(|l| {
                    let (id, title) = l.split_once('\t').expect("id<TAB>title");
                    (id.parse().expect("note id"), title.to_string())
                })
                .collect(),
        }
    }

    /// Runs a statement outside the server, on either engine.
    pub fn execute(&self, sql: &str) {
        match self.engine {
            Engine::Sqlite => {
                rusqlite::Connection::open(self.path()).unwrap().execute_batch(sql).unwrap();
            }
            Engine::Postgres => {
                self.psql(sql);
            }
        }
    }

    /// The rows of a query, read outside the server: one line per row, columns separated
    /// by tabs (NULL as an empty string), on either engine.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        match self.engine {
            Engine::Sqlite => {
                let conn = self.read_only();
                let mut stmt = conn.prepare(sql).unwrap();
                let columns = stmt.column_count();
                stmt.query_map([], |r| {
                    let cells: Vec<String> = (0..columns)
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Null => String::new(),
                            rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                            rusqlite::types::ValueRef::Real(x) => x.to_string(),
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
                        })
                        .collect();
                    Ok(cells.join("\t"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            Engine::Postgres => self.psql(sql).lines().map(str::to_string).collect(),
        }
    }

    /// How many notes there are, read outside the server.
    pub fn count_notes(&self) -> i64 {
        self.notes().len() as i64
    }

    /// `app/name` of each `_migrations` row, sorted (PostgreSQL only).
    pub fn migration_rows(&self) -> Vec<String> {
        self.psql("SELECT app || '/' || name FROM _migrations ORDER BY 1")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The tables of the public schema, sorted (PostgreSQL only).
    pub fn tables(&self) -> Vec<String> {
        self.psql(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY table_name",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

/// A PostgreSQL cluster of the test's own (`$BURROW_TEST_PG_SCRIPT start DIR`), for tests
/// that stop and start PostgreSQL; stopped and removed when dropped, also on failure.
pub struct PgCluster {
    script: PathBuf,
    pub dir: PathBuf,
    /// Admin URL (`postgres://postgres:postgres@127.0.0.1:PORT/postgres`).
    pub url: String,
    _parent: tempfile::TempDir,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let script = PathBuf::from(std::env::var("BURROW_TEST_PG_SCRIPT").unwrap_or_else(|_| {
            panic!(
                "BURROW_TEST_PG_SCRIPT is not set: run scripts/test.sh, or export \
                 BURROW_TEST_PG_SCRIPT=$PWD/scripts/pg-cluster.sh"
            )
        }));
        let parent = tempfile::tempdir().expect("temporary directory");
        let dir = parent.path().join("pg");
        let mut cluster = PgCluster { script, dir, url: String::new(), _parent: parent };
        cluster.run("start", &[]);
        let env = std::fs::read_to_string(cluster.dir.join("env")).expect("DIR/env");
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix("export BURROW_TEST_PG_URL="))
            .expect("BURROW_TEST_PG_URL in DIR/env")
            .trim_matches(['"', '\''])
            .to_string();
        cluster.url = url;
        cluster
    }

    /// `pg-cluster.sh COMMAND DIR ARGS…`; panics if it fails.
    pub fn run(&self, command: &str, args: &[&str]) {
        let out = Command::new(&self.script)
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg-cluster.sh");
        assert!(
            out.status.success(),
            "pg-cluster.sh {command} failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.dir.exists() {
            let _ = Command::new(&self.script)
                .arg("stop")
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `both_engines!(name, |engine| async move { … })` makes `mod name` with two tokio tests,
/// `sqlite` and `postgres`, each running the body with its [`Engine`];
/// `both_engines!(blocking name, |engine| { … })` does the same with plain `#[test]`s.
#[macro_export]
macro_rules! both_engines {
    (blocking $name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                ($body)($crate::support::Engine::Sqlite);
            }
            #[test]
            fn postgres() {
                ($body)($crate::support::Engine::Postgres);
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::support::Engine::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::support::Engine::Postgres).await;
            }
        }
    };
}
