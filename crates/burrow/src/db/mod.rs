//! The database: SQLite or PostgreSQL, chosen by the DSN (`--database-dsn`), behind the same
//! API; migrations.
//!
//! Handlers use [`Db::read`] and [`Db::write`] with closures over a [`Conn`]; the closures
//! run on blocking threads, never on the async runtime. Writes run one at a time, each in a
//! transaction: on SQLite inside `BEGIN IMMEDIATE … COMMIT` on the single writer
//! connection, so concurrent writers queue (in arrival order) instead of failing with
//! `SQLITE_BUSY`; on PostgreSQL across every process sharing the database.
//!
//! The app-facing types ([`Conn`], [`Row`], [`Value`], [`FromRow`](trait@FromRow),
//! [`DbError`]) are the same on both engines and expose neither rusqlite nor the PostgreSQL
//! client: SQL is written once, with `?` placeholders. A query returns structs that
//! `#[derive(FromRow)]` (each field read from the column of its name; see
//! [the derive](derive@FromRow) for `rename`, `default`, `flatten` and `skip`), tuples, or
//! single values.
//!
//! ```no_run
//! # async fn demo(db: burrow::Db) -> Result<(), burrow::db::DbError> {
//! use burrow::db::{FromRow, params};
//!
//! #[derive(FromRow)]
//! struct Note {
//!     id: i64,
//!     title: String,
//! }
//!
//! let insert = "INSERT INTO notes (title) VALUES (?) RETURNING id";
//! let id: i64 = db.write(|c| c.query_one(insert, params!["hi"])).await?;
//! let note: Note = db
//!     .read(move |c| c.query_one("SELECT id, title FROM notes WHERE id = ?", params![id]))
//!     .await?;
//! let notes: Vec<Note> = db.read(|c| c.query("SELECT id, title FROM notes", params![])).await?;
//! # let _ = (note.id, note.title, notes);
//! # Ok(()) }
//! ```

pub(crate) mod backup;
mod conn;
mod dsn;
mod error;
pub(crate) mod migrate;
mod postgres;
mod row;
pub mod schema;
pub mod search;
mod sqlite;
mod value;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::params;
pub use conn::{Conn, Engine};
pub use dsn::{Dsn, PgDsn, PgTls};
pub use error::{Constraint, DbError};
pub(crate) use migrate::{MigrationStatus, Migrations};
pub(crate) use sqlite::configure_sqlite;
// The trait and its derive macro, under one name (they live in different namespaces).
pub use burrow_macros::FromRow;
pub use row::{FromRow, Row};
pub use sqlite::{Checkpoints, WAL_RESTART_BYTES};
pub use value::{FromValue, Value, ValueRef, utc_at, utc_now};

use crate::live::Hub;
use postgres::PgPool;
use sqlite::SqlitePool;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// Live events published by this database's connections ([`Conn::publish`]).
    live: Hub,
}

#[derive(Clone)]
enum Pool {
    Sqlite(Arc<SqlitePool>),
    Postgres(Arc<PgPool>),
}

/// A handler argument: the server's database, without router state (`db: Db`).
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Db {
    type Rejection = crate::Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Db, Self::Rejection> {
        let db = crate::http::Services::of(&parts.extensions).map(|s| s.db.clone());
        db.ok_or_else(|| crate::Error::internal("the database is not installed on this router"))
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("dsn", &self.dsn().to_string()).finish()
    }
}

/// Options for opening the database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// SQLite: reader connections at most (the writer is one more).
    pub readers: usize,
    pub checkpoints: Checkpoints,
    /// A read running longer is interrupted and fails with [`DbError::Timeout`]. On
    /// PostgreSQL it is every statement's `statement_timeout`.
    pub read_timeout: Duration,
    /// PostgreSQL: connections at most (`--database-pool-size`).
    pub pool_size: usize,
    /// PostgreSQL: how long a request waits for a free connection before it fails with
    /// [`DbError::Unavailable`] (a 503).
    pub acquire_timeout: Duration,
    /// PostgreSQL: the password when the DSN has none (`--database-password-file`);
    /// `PGPASSWORD` is used when neither has one.
    pub password: Option<String>,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            readers: 4,
            checkpoints: Checkpoints::Server,
            read_timeout: Duration::from_secs(30),
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            password: None,
        }
    }
}

impl Db {
    /// Opens the database. For SQLite, after checking that its file and directory are
    /// usable (nothing is created or written when a check fails); for PostgreSQL, without
    /// connecting yet (the first use connects).
    pub fn open(dsn: &Dsn, readers: usize) -> Result<Db, DbError> {
        Db::open_with(dsn, &DbOptions { readers, ..DbOptions::default() })
    }

    /// Like [`Db::open`], with every option.
    pub fn open_with(dsn: &Dsn, options: &DbOptions) -> Result<Db, DbError> {
        let live = Hub::default();
        let pool = match dsn {
            Dsn::Postgres(pg) => {
                Pool::Postgres(Arc::new(PgPool::open(dsn, pg, options, live.clone())?))
            }
            _ => {
                let pool = Arc::new(SqlitePool::open(dsn, options, live.clone())?);
                SqlitePool::start_idle_checkpoints(&pool);
                Pool::Sqlite(pool)
            }
        };
        Ok(Db { pool, live })
    }

    /// The live-event hub of this database's server ([`crate::live`]): what
    /// [`Conn::publish`] publishes to, and `ctx.live`.
    pub fn live(&self) -> &Hub {
        &self.live
    }

    /// PostgreSQL: `LISTEN`s on `channel` on a connection of its own, on this thread,
    /// handing each notification's payload to `on`, until `stop` is set (looked at every
    /// half second) or the connection fails (an error: the caller connects again);
    /// `listening` is called each time the `LISTEN` is in place.
    /// Nothing on SQLite.
    pub(crate) fn listen_blocking(
        &self,
        channel: &str,
        stop: &std::sync::atomic::AtomicBool,
        listening: &mut dyn FnMut(),
        on: &mut dyn FnMut(&str),
    ) -> Result<(), DbError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(()),
            Pool::Postgres(pool) => pool.listen_blocking(channel, stop, listening, on),
        }
    }

    /// The engine behind this database.
    pub fn engine(&self) -> Engine {
        match &self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    fn dsn(&self) -> &Dsn {
        match &self.pool {
            Pool::Sqlite(pool) => pool.dsn(),
            Pool::Postgres(pool) => pool.dsn(),
        }
    }

    /// Runs `f` on a reader connection. It is interrupted ([`DbError::Timeout`]) when it
    /// runs longer than the read budget (`--database-read-timeout`), and stopped when this
    /// future is dropped (e.g. the request timed out or its client went away).
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        match &self.pool {
            Pool::Sqlite(pool) => pool.read(f).await,
            Pool::Postgres(pool) => pool.read(f).await,
        }
    }

    /// Runs `f` in a write transaction; an `Err` rolls everything back. Writes run one at
    /// a time (on PostgreSQL across every process sharing the database), so a
    /// read-modify-write inside `f` never loses an update.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        match &self.pool {
            Pool::Sqlite(pool) => pool.write(f).await,
            Pool::Postgres(pool) => pool.write(f).await,
        }
    }

    /// Checks that the database is reachable, readable and writable (for `/healthz/ready`).
    pub async fn check(&self) -> Result<(), DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => pool.check().await,
            Pool::Postgres(pool) => pool.check().await,
        }
    }

    /// Closes every connection; later calls fail with [`DbError::Closed`]. Running
    /// statements are interrupted; waits at most `grace` for them and returns how many
    /// closures were still running on blocking threads when it gave up.
    pub async fn close(&self, grace: Duration) -> usize {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close(grace).await,
            Pool::Postgres(pool) => pool.close(grace).await,
        }
    }

    /// Runs `f` on a connection outside any transaction, on this thread (start-up work
    /// such as migrations; never call it from async code).
    pub(crate) fn with_conn_blocking<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => pool.with_writer_blocking(f),
            Pool::Postgres(pool) => pool.with_conn_blocking(f),
        }
    }

    pub(crate) fn migrate_blocking(&self, sets: &[Migrations]) -> Result<Vec<String>, DbError> {
        self.with_conn_blocking(|conn| migrate::apply(conn, sets))
    }

    pub(crate) fn migration_status_blocking(
        &self,
        sets: &[Migrations],
    ) -> Result<Vec<MigrationStatus>, DbError> {
        self.with_conn_blocking(|conn| migrate::status(conn, sets))
    }
}

/// A file SQLite keeps beside the database (`-wal`, `-shm`, `-journal`): the name with
/// `suffix` appended, byte for byte (a lossy `display()` would miss non-UTF-8 paths).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
