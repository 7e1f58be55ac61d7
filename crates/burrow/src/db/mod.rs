//! The database: one writer connection, a pool of readers, migrations.
//!
//! Handlers use [`Db::read`] and [`Db::write`] with closures over a [`Conn`]; the closures
//! run on blocking threads, never on the async runtime. Writes run one at a time inside
//! `BEGIN IMMEDIATE … COMMIT` on the single writer connection, so concurrent writers
//! queue (in arrival order) instead of failing with `SQLITE_BUSY`.
//!
//! The app-facing types ([`Conn`], [`Row`], [`Value`], [`FromRow`], [`DbError`]) do not
//! expose rusqlite, so another backend can be put behind them later. SQL uses `?`
//! placeholders.
//!
//! ```no_run
//! # async fn demo(db: burrow::Db) -> Result<(), burrow::db::DbError> {
//! use burrow::db::{params, FromRow, Row, DbError};
//! struct Note { id: i64, title: String }
//! impl FromRow for Note {
//!     fn from_row(row: &Row) -> Result<Self, DbError> {
//!         Ok(Note { id: row.get("id")?, title: row.get("title")? })
//!     }
//! }
//! let id = db
//!     .write(|c| {
//!         c.execute("INSERT INTO notes(title) VALUES (?)", params!["hi"])?;
//!         Ok(c.last_insert_id())
//!     })
//!     .await?;
//! let notes: Vec<Note> = db.read(|c| c.query("SELECT id, title FROM notes", params![])).await?;
//! # Ok(()) }
//! ```

pub(crate) mod backup;
mod dsn;
pub(crate) mod migrate;
mod sqlite;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use dsn::Dsn;
pub(crate) use migrate::{MigrationStatus, Migrations};
pub use sqlite::{Checkpoints, DbOptions, WAL_RESTART_BYTES};

use sqlite::SqlitePool;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Arc<SqlitePool>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("dsn", &self.pool.dsn().to_string()).finish()
    }
}

impl Db {
    /// Opens the database after checking that its file and directory are usable.
    /// Nothing is created or written when a check fails.
    pub fn open(dsn: &Dsn, readers: usize) -> Result<Db, DbError> {
        Db::open_with(dsn, &DbOptions { readers, ..DbOptions::default() })
    }

    /// Like [`Db::open`], with every option (readers, checkpoints, read budget).
    pub fn open_with(dsn: &Dsn, options: &DbOptions) -> Result<Db, DbError> {
        let pool = Arc::new(SqlitePool::open(dsn, options)?);
        SqlitePool::start_idle_checkpoints(&pool);
        Ok(Db { pool })
    }

    /// Runs `f` on a reader connection. It is interrupted ([`DbError::Timeout`]) when it
    /// runs longer than the read budget (`--database-read-timeout`), and stopped when this
    /// future is dropped (e.g. the request timed out or its client went away).
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        self.pool.read(f).await
    }

    /// Runs `f` in a write transaction; an `Err` rolls everything back.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        self.pool.write(f).await
    }

    /// Checks that the database is reachable, readable and writable (for `/healthz/ready`).
    pub async fn check(&self) -> Result<(), DbError> {
        self.pool.check().await
    }

    /// Closes every connection; later calls fail with [`DbError::Closed`]. Running
    /// statements are interrupted; waits at most `grace` for them and returns how many
    /// closures were still running on blocking threads when it gave up.
    pub async fn close(&self, grace: std::time::Duration) -> usize {
        self.pool.close(grace).await
    }

    pub(crate) fn migrate_blocking(&self, sets: &[Migrations]) -> Result<Vec<String>, DbError> {
        self.pool.with_writer_blocking(|conn| migrate::apply(conn, sets))
    }

    pub(crate) fn migration_status_blocking(
        &self,
        sets: &[Migrations],
    ) -> Result<Vec<MigrationStatus>, DbError> {
        self.pool.with_writer_blocking(|conn| migrate::status(conn, sets))
    }
}

/// A file SQLite keeps beside the database (`-wal`, `-shm`, `-journal`): the name with
/// `suffix` appended, byte for byte (a lossy `display()` would miss non-UTF-8 paths).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// A value bound to a `?` placeholder or read from a column.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::$variant(v $(as $cast)?) }
        }
    )*};
}
value_from!(
    i64 => Integer, i32 => Integer as i64, u32 => Integer as i64,
    f64 => Real, String => Text, Vec<u8> => Blob,
);

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Integer(v as i64)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Integer(v as i64)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds the parameter list for a query: `params![title, 20, None::<i64>]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*] as &[$crate::db::Value]
    };
}
pub use crate::params;

/// Converts a column value into a Rust type.
pub trait FromValue: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}
impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl FromValue for i32 {
    fn from_value(value: Value) -> Result<Self, String> {
        i32::try_from(i64::from_value(value)?).map_err(|e| e.to_string())
    }
}
impl FromValue for u32 {
    fn from_value(value: Value) -> Result<Self, String> {
        u32::try_from(i64::from_value(value)?).map_err(|e| e.to_string())
    }
}
impl FromValue for usize {
    fn from_value(value: Value) -> Result<Self, String> {
        usize::try_from(i64::from_value(value)?).map_err(|e| e.to_string())
    }
}
impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(i64::from_value(value)? != 0)
    }
}
impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Real(f) => Ok(f),
            Value::Integer(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}
impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(format!("expected a blob, found {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row; read columns by name.
pub struct Row<'a>(pub(crate) &'a rusqlite::Row<'a>);

impl Row<'_> {
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, DbError> {
        let value = self.0.get_ref(column).map_err(DbError::from)?;
        T::from_value(sqlite::value_from_ref(value))
            .map_err(|reason| DbError::Decode { column: column.to_string(), reason })
    }
}

/// Builds a value from a row.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, DbError>;
}

impl<T: FromValue> FromRow for (T,) {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        let value = row.0.get_ref(0).map_err(DbError::from)?;
        T::from_value(sqlite::value_from_ref(value))
            .map(|v| (v,))
            .map_err(|reason| DbError::Decode { column: "0".into(), reason })
    }
}

/// A connection inside [`Db::read`] or [`Db::write`].
pub struct Conn(pub(crate) rusqlite::Connection);

impl Conn {
    /// Runs a statement; returns the number of rows changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<usize, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))?)
    }

    /// Runs several statements separated by `;` (no parameters).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.execute_batch(sql)?)
    }

    /// All rows of a query.
    pub fn query<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<T>, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(T::from_row(&Row(row))?);
        }
        Ok(out)
    }

    /// The first row of a query, if any.
    pub fn query_opt<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Option<T>, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        match rows.next()? {
            Some(row) => Ok(Some(T::from_row(&Row(row))?)),
            None => Ok(None),
        }
    }

    /// The first row of a query; [`DbError::NotFound`] when there is none.
    pub fn query_one<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<T, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NotFound)
    }

    /// The rowid of the last inserted row on this connection.
    pub fn last_insert_id(&self) -> i64 {
        self.0.last_insert_rowid()
    }
}

/// A database error. `Display` is safe to log; handlers turn it into a 500 (or 404 for
/// [`DbError::NotFound`]).
#[derive(Debug)]
pub enum DbError {
    /// A start-up problem with the database file or directory, naming the path.
    Setup(String),
    /// A query expected a row and found none.
    NotFound,
    /// The database engine reported an error. `rejected` is set when the statement was
    /// rejected as written (SQLITE_ERROR: bad SQL, or a bad FTS5 query string), as opposed
    /// to I/O, locking, corruption or constraint failures.
    Sql { message: String, rejected: bool },
    /// A column could not be converted.
    Decode { column: String, reason: String },
    /// A migration failed; the database was left as it was.
    Migration { file: String, message: String },
    /// The database was closed during shutdown.
    Closed,
    /// A statement was interrupted: its caller went away, or the database is closing.
    Interrupted,
    /// A read ran longer than its budget (`--database-read-timeout`) and was interrupted.
    Timeout(std::time::Duration),
    /// Application-level error raised inside a transaction closure (rolls back).
    Other(String),
}

impl DbError {
    /// True when the statement was rejected as written, e.g. a user's FTS5 `MATCH` query
    /// with bad syntax, which callers may turn into an empty result rather than an error.
    pub fn is_rejected_query(&self) -> bool {
        matches!(self, DbError::Sql { rejected: true, .. })
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Setup(message) => f.write_str(message),
            DbError::NotFound => f.write_str("no rows returned"),
            DbError::Sql { message, .. } => f.write_str(message),
            DbError::Decode { column, reason } => write!(f, "column {column}: {reason}"),
            DbError::Migration { file, message } => write!(f, "migration {file} failed: {message}"),
            DbError::Closed => f.write_str("the database is closed"),
            DbError::Interrupted => f.write_str("the statement was interrupted"),
            DbError::Timeout(budget) => write!(
                f,
                "the read ran longer than {} s (--database-read-timeout) and was interrupted",
                budget.as_secs_f64()
            ),
            DbError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NotFound,
            rusqlite::Error::SqliteFailure(code, _)
                if code.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                DbError::Interrupted
            }
            rusqlite::Error::SqliteFailure(code, ref message) => {
                let message = message.clone().unwrap_or_else(|| code.to_string());
                // SQLITE_ERROR (primary code 1) is "rejected as written".
                DbError::Sql { message, rejected: code.extended_code & 0xff == 1 }
            }
            other => DbError::Sql { message: other.to_string(), rejected: false },
        }
    }
}
