//! [`Conn`]: the connection a [`Db::read`](super::Db::read) or
//! [`Db::write`](super::Db::write) closure gets, the same API on both engines.

use super::postgres::PgConn;
use super::row::{Columns, Row, RowInner};
use super::{DbError, FromRow, Value};
use crate::live::{Event, Hub};

/// Which database engine a [`Conn`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// `sqlite` or `postgres`: the infix of per-engine migration files
    /// (`0002_search.postgres.up.sql`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// A connection inside [`Db::read`](super::Db::read) or [`Db::write`](super::Db::write).
///
/// SQL is written once with `?` placeholders (or `?1`, `?2`, … to reuse a value); on
/// PostgreSQL they become `$1`, `$2`, … outside string literals, quoted names and comments.
pub struct Conn(pub(super) Inner, AfterCommit, Hub);

/// Work to do once the running write transaction committed (dropped if it rolls back).
#[derive(Default)]
pub(super) struct AfterCommit(
    std::cell::RefCell<Vec<Box<dyn FnOnce() + Send>>>,
    /// Inside `transaction` (PostgreSQL's client does not say).
    std::cell::Cell<bool>,
);

pub(super) enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
}

impl Conn {
    pub(super) fn new(inner: Inner, live: Hub) -> Conn {
        Conn(inner, AfterCommit::default(), live)
    }

    /// A connection to a new in-memory SQLite database, for unit tests.
    #[cfg(test)]
    pub(super) fn in_memory() -> Conn {
        super::configure_sqlite();
        let sqlite = rusqlite::Connection::open_in_memory().expect("an in-memory database");
        Conn::new(Inner::Sqlite(sqlite), Hub::default())
    }

    /// Publishes a live event to the streams of `topic` ([`crate::live`]) once the write
    /// transaction this connection is in commits (never if it rolls back; outside a
    /// transaction, at once): to this process's streams, and on PostgreSQL with a
    /// `NOTIFY` in the same transaction, which the database delivers to every other
    /// server process on it at commit. Fails only on PostgreSQL, for an event too large
    /// for a `NOTIFY` (about 8 KB: publish an id and let clients fetch the rest) or when
    /// the statement fails.
    pub fn publish(&self, topic: &str, event: Event) -> Result<(), DbError> {
        if self.engine() == Engine::Postgres {
            let payload = crate::live::remote_payload(topic, &event).map_err(DbError::Other)?;
            self.execute(crate::live::NOTIFY_SQL, &[crate::live::CHANNEL.into(), payload.into()])?;
        }
        let (live, topic) = (self.2.clone(), topic.to_string());
        self.after_commit(move || {
            live.deliver(&topic, &event);
        });
        Ok(())
    }

    /// Runs `f` once the write transaction this connection is in commits, and never if it
    /// rolls back; outside a write transaction, at once. For side effects that must not
    /// happen for data that was rolled back (e.g. a job enqueued in another database).
    pub fn after_commit(&self, f: impl FnOnce() + Send + 'static) {
        self.1.0.borrow_mut().push(Box::new(f));
        if !self.in_transaction() {
            self.run_after_commit();
        }
    }

    fn run_after_commit(&self) {
        let work = std::mem::take(&mut *self.1.0.borrow_mut());
        for f in work {
            f();
        }
    }

    fn in_transaction(&self) -> bool {
        match &self.0 {
            Inner::Sqlite(c) => !c.is_autocommit(),
            Inner::Postgres(_) => self.1.1.get(),
        }
    }

    /// The engine behind this connection. App code should not need it: write SQL that runs
    /// on both, and put what cannot into per-engine migration files.
    pub fn engine(&self) -> Engine {
        match &self.0 {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs a statement; returns the number of rows changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<usize, DbError> {
        match &self.0 {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))?)
            }
            Inner::Postgres(c) => c.execute(sql, params),
        }
    }

    /// Runs several statements separated by `;` (no parameters).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.0 {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(c) => c.execute_batch(sql),
        }
    }

    /// All rows of a query.
    pub fn query<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<T>, DbError> {
        match &self.0 {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let columns = Columns::of(&stmt);
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                // Room for 16 rows (up to 4 KB) at once: SQLite does not say how many
                // will come, and growing from empty moved a page of 12 rows three times.
                let mut out = Vec::with_capacity((4096 / size_of::<T>().max(1)).min(16));
                while let Some(row) = rows.next()? {
                    out.push(T::from_row(&Row(RowInner::Sqlite(row, Some(&columns))))?);
                }
                Ok(out)
            }
            Inner::Postgres(c) => c
                .query(sql, params)?
                .iter()
                .map(|row| T::from_row(&Row(RowInner::Postgres(row))))
                .collect(),
        }
    }

    /// Hands each row of a query to `f` as the engine produces it, keeping none: for
    /// results too large to hold (an export). An `Err` from `f` stops the query.
    pub fn query_each(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        match &self.0 {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let columns = Columns::of(&stmt);
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                while let Some(row) = rows.next()? {
                    f(&Row(RowInner::Sqlite(row, Some(&columns))))?;
                }
                Ok(())
            }
            Inner::Postgres(c) => c.query_each(sql, params, |row| f(&Row(RowInner::Postgres(row)))),
        }
    }

    /// One page of a query's rows: `sql` (ordered, without `LIMIT`) gets `LIMIT ? OFFSET ?`
    /// from the [`Paginator`](crate::Paginator), one row more than a page to know whether
    /// there is a next one.
    ///
    /// ```ignore
    /// async fn list(State(db): State<Db>, pages: Paginator, render: Render) -> Result<Html> {
    ///     let sql = "SELECT title FROM posts ORDER BY id DESC";
    ///     let page: Page<Post> = db.read(move |c| c.query_page(sql, &[], pages)).await?;
    ///     render.page("posts.html", context! { page })
    /// }
    /// ```
    pub fn query_page<T: FromRow>(
        &self,
        sql: &str,
        params: &[Value],
        pages: crate::Paginator,
    ) -> Result<crate::Page<T>, DbError> {
        let sql = format!("{sql} LIMIT ? OFFSET ?");
        let mut all = params.to_vec();
        all.extend([Value::from(pages.limit()), Value::from(pages.offset())]);
        Ok(pages.page_of(self.query(&sql, &all)?))
    }

    /// The first row of a query, if any.
    pub fn query_opt<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Option<T>, DbError> {
        match &self.0 {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                match rows.next()? {
                    Some(row) => Ok(Some(T::from_row(&Row(RowInner::Sqlite(row, None)))?)),
                    None => Ok(None),
                }
            }
            Inner::Postgres(c) => match c.query(sql, params)?.first() {
                Some(row) => Ok(Some(T::from_row(&Row(RowInner::Postgres(row)))?)),
                None => Ok(None),
            },
        }
    }

    /// The first row of a query; [`DbError::NotFound`] when there is none.
    pub fn query_one<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<T, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NotFound)
    }

    /// The id of the row this connection inserted last (SQLite's rowid, PostgreSQL's
    /// `lastval()`). `INSERT … RETURNING id` says the same in one statement on both.
    pub fn last_insert_id(&self) -> Result<i64, DbError> {
        match &self.0 {
            Inner::Sqlite(c) => Ok(c.last_insert_rowid()),
            Inner::Postgres(_) => self.query_one("SELECT lastval()", &[]),
        }
    }

    /// Runs `f` between `begin` (e.g. `BEGIN IMMEDIATE`) and COMMIT; an `Err` from `f`, or
    /// a COMMIT that fails, rolls back. The one transaction wrapper of both pools and of
    /// migrations.
    pub(super) fn transaction<T>(
        &self,
        begin: &str,
        f: impl FnOnce(&Conn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.control(begin)?;
        // Left by a transaction that panicked half-way: not this one's.
        self.1.0.borrow_mut().clear();
        self.1.1.set(true);
        let result = f(self).and_then(|value| self.control("COMMIT").map(|()| value));
        self.1.1.set(false);
        if result.is_err() {
            let _ = self.control("ROLLBACK");
            self.1.0.borrow_mut().clear();
        } else {
            self.run_after_commit();
        }
        result
    }

    /// Runs a transaction's `BEGIN …`, `COMMIT` or `ROLLBACK`. On SQLite as one cached
    /// statement: `execute_batch` parses its text every time, and a write's BEGIN and
    /// COMMIT parsed were 3,300 instructions, 4% of a small POST (bench/README.md, step 49).
    /// PostgreSQL's `BEGIN_WRITE` is two statements, which its batch sends in one round
    /// trip.
    fn control(&self, sql: &str) -> Result<(), DbError> {
        match &self.0 {
            Inner::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute([]).map(|_| ())?),
            Inner::Postgres(c) => c.execute_batch(sql),
        }
    }

    /// The SQLite connection of a SQLite pool's own work (migrations, checkpoints).
    pub(super) fn sqlite(&self) -> &rusqlite::Connection {
        match &self.0 {
            Inner::Sqlite(c) => c,
            Inner::Postgres(_) => unreachable!("a SQLite pool holds SQLite connections"),
        }
    }
}
