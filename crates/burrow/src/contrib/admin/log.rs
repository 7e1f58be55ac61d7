//! The admin log (`_admin_log`): one row per change made through the admin, written in the
//! change's own transaction, so there is no change without its entry and no entry
//! without its change.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::contrib::auth::User;
use crate::db::{Conn, Db, DbError, FromRow, Row, params};

/// An entry as the pages show it.
#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    pub(crate) at: String,
    pub(crate) username: String,
    pub(crate) model: String,
    pub(crate) object_id: Option<i64>,
    pub(crate) object_label: String,
    pub(crate) action: String,
    pub(crate) detail: String,
}

impl FromRow for Entry {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Entry {
            at: row.get("at")?,
            username: row.get("username")?,
            model: row.get("model")?,
            object_id: row.get("object_id")?,
            object_label: row.get("object_label")?,
            action: row.get("action")?,
            detail: row.get("detail")?,
        })
    }
}

/// What happened to an object: `created`, `changed`, `deleted` or an action's name.
pub(crate) struct Record<'a> {
    pub(crate) model: &'a str,
    pub(crate) object_id: Option<i64>,
    pub(crate) object_label: &'a str,
    pub(crate) action: &'a str,
    pub(crate) detail: &'a str,
}

/// Where a change's entries go: into its own transaction when the model's table is in the
/// server's database; else (the jobs table with `--jobs-database`) into the server's
/// database once the change committed.
#[derive(Clone)]
pub(crate) struct Sink {
    user: Arc<User>,
    deferred: Option<(Db, Arc<Mutex<Vec<Owned>>>)>,
}

/// An entry kept for later.
struct Owned {
    model: String,
    object_id: Option<i64>,
    object_label: String,
    action: String,
    detail: String,
}

impl Sink {
    pub(crate) fn new(user: Arc<User>, separate: Option<Db>) -> Sink {
        Sink { user, deferred: separate.map(|main| (main, Arc::default())) }
    }

    pub(crate) fn write(&self, c: &Conn, record: Record<'_>) -> Result<(), DbError> {
        match &self.deferred {
            None => write(c, &self.user, record),
            Some(_) => {
                self.keep(record);
                Ok(())
            }
        }
    }

    /// Keeps an entry for [`flush`](Sink::flush) (a sink for another database than the
    /// server's; a no-op otherwise).
    pub(crate) fn keep(&self, record: Record<'_>) {
        let Some((_, kept)) = &self.deferred else { return };
        let owned = Owned {
            model: record.model.into(),
            object_id: record.object_id,
            object_label: record.object_label.into(),
            action: record.action.into(),
            detail: record.detail.into(),
        };
        kept.lock().unwrap_or_else(|e| e.into_inner()).push(owned);
    }

    /// Writes the kept entries, once their change committed.
    pub(crate) async fn flush(&self) -> Result<(), DbError> {
        let Some((main, kept)) = &self.deferred else { return Ok(()) };
        let entries = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
        if entries.is_empty() {
            return Ok(());
        }
        let user = self.user.clone();
        main.write(move |c| {
            for e in &entries {
                let record = Record {
                    model: &e.model,
                    object_id: e.object_id,
                    object_label: &e.object_label,
                    action: &e.action,
                    detail: &e.detail,
                };
                write(c, &user, record)?;
            }
            Ok(())
        })
        .await
    }
}

impl<'a> Record<'a> {
    /// What happened (`created`, `deleted`, an action's name) to `model`'s row `id`.
    pub(crate) fn new(model: &'a str, id: i64, label: &'a str, action: &'a str) -> Record<'a> {
        Record { model, object_id: Some(id), object_label: label, action, detail: "" }
    }

    pub(crate) fn detail(mut self, detail: &'a str) -> Record<'a> {
        self.detail = detail;
        self
    }
}

fn write(conn: &Conn, user: &User, record: Record<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO _admin_log (user_id, username, model, object_id, object_label, action, \
         detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            user.id,
            user.username.as_str(),
            record.model,
            record.object_id,
            record.object_label,
            record.action,
            record.detail
        ],
    )?;
    Ok(())
}

const COLUMNS: &str = "at, username, model, object_id, object_label, action, detail";

/// The latest entries of the whole site (the dashboard).
pub(crate) fn recent(conn: &Conn, limit: usize) -> Result<Vec<Entry>, DbError> {
    conn.query(
        &format!("SELECT {COLUMNS} FROM _admin_log ORDER BY id DESC LIMIT ?"),
        params![limit],
    )
}

/// An object's history, latest first.
pub(crate) fn of_object(conn: &Conn, model: &str, id: i64) -> Result<Vec<Entry>, DbError> {
    conn.query(
        &format!(
            "SELECT {COLUMNS} FROM _admin_log WHERE model = ? AND object_id = ? \
             ORDER BY id DESC LIMIT 50"
        ),
        params![model, id],
    )
}
