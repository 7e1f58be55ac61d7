//! [`DbError`]: one error type for both engines, so app code matches on the same variants
//! whether SQLite or PostgreSQL reported the problem.

use std::fmt;

/// A database error. `Display` is safe to log (it never contains a password); handlers
/// turn it into a 500, a 404 for [`DbError::NotFound`], or a 503 when the database is busy
/// or unreachable.
#[derive(Debug)]
pub enum DbError {
    /// A start-up problem with the database file, directory or server, naming it.
    Setup(String),
    /// A query expected a row and found none.
    NotFound,
    /// A constraint rejected the write: a duplicate key, a failed CHECK, a missing
    /// referenced row or a NULL in a NOT NULL column.
    Constraint { kind: Constraint, message: String },
    /// The database engine reported an error. `rejected` is set when the statement was
    /// rejected as written (bad SQL, a bad value for its type), as opposed to I/O,
    /// locking or corruption.
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
    /// The database server cannot be reached, or no connection became free in time.
    Unavailable(String),
    /// Application-level error raised inside a transaction closure (rolls back).
    Other(String),
}

/// Which constraint rejected a write ([`DbError::Constraint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// A UNIQUE or PRIMARY KEY constraint: the value exists already.
    Unique,
    /// A CHECK constraint.
    Check,
    /// A FOREIGN KEY constraint: the referenced row is missing, or still referenced.
    ForeignKey,
    /// A NOT NULL constraint.
    NotNull,
}

impl DbError {
    /// True when the statement was rejected as written, which callers may turn into a
    /// message for the user rather than an error page.
    pub fn is_rejected_query(&self) -> bool {
        matches!(self, DbError::Sql { rejected: true, .. })
    }

    /// True for a duplicate key (UNIQUE or PRIMARY KEY), e.g. a username already taken.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Constraint { kind: Constraint::Unique, .. })
    }

    /// True when a CHECK constraint rejected the write.
    pub fn is_check_violation(&self) -> bool {
        matches!(self, DbError::Constraint { kind: Constraint::Check, .. })
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Setup(message) | DbError::Other(message) => f.write_str(message),
            DbError::NotFound => f.write_str("no rows returned"),
            DbError::Constraint { message, .. } | DbError::Sql { message, .. } => {
                f.write_str(message)
            }
            DbError::Decode { column, reason } => write!(f, "column {column}: {reason}"),
            DbError::Migration { file, message } => write!(f, "migration {file} failed: {message}"),
            DbError::Closed => f.write_str("the database is closed"),
            DbError::Interrupted => f.write_str("the statement was interrupted"),
            DbError::Timeout(budget) => write!(
                f,
                "the read ran longer than {} s (--database-read-timeout) and was interrupted",
                budget.as_secs_f64()
            ),
            DbError::Unavailable(message) => write!(f, "the database is unavailable: {message}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NotFound,
            rusqlite::Error::SqliteFailure(code, _)
                if code.code == ErrorCode::OperationInterrupted =>
            {
                DbError::Interrupted
            }
            rusqlite::Error::SqliteFailure(code, ref message) => {
                let message = message.clone().unwrap_or_else(|| code.to_string());
                // Extended result codes of SQLITE_CONSTRAINT (19).
                let kind = match code.extended_code {
                    2067 | 1555 => Some(Constraint::Unique),
                    275 => Some(Constraint::Check),
                    787 => Some(Constraint::ForeignKey),
                    1299 => Some(Constraint::NotNull),
                    _ => None,
                };
                match kind {
                    Some(kind) => DbError::Constraint { kind, message },
                    // SQLITE_ERROR (primary code 1) is "rejected as written".
                    None => DbError::Sql { message, rejected: code.extended_code & 0xff == 1 },
                }
            }
            // A statement that does not compile, with where it failed.
            rusqlite::Error::SqlInputError { error, msg, offset, .. } => DbError::Sql {
                message: format!("{msg} (at offset {offset})"),
                rejected: error.extended_code & 0xff == 1,
            },
            other => DbError::Sql { message: other.to_string(), rejected: false },
        }
    }
}
