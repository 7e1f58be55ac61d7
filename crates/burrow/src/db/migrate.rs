//! Forward-only migrations: each app embeds `*.up.sql` files, applied in name order.
//!
//! All pending migrations of a start-up run in one transaction, each file together with
//! its `_migrations(app, name, applied_at)` row: if any file fails, start-up stops with
//! the file name and SQLite's message, and the database is left exactly as it was.

use include_dir::Dir;

use super::{Conn, DbError};

/// The migrations of one app.
#[derive(Clone, Debug)]
pub struct Migrations {
    pub app: &'static str,
    files: Vec<(&'static str, &'static str)>,
}

impl Migrations {
    /// Collects the `*.up.sql` files at the top of `dir`, sorted by name.
    pub fn from_dir(app: &'static str, dir: &'static Dir<'static>) -> Migrations {
        let mut files: Vec<_> = dir
            .files()
            .filter_map(|f| {
                let name = f.path().file_name()?.to_str()?;
                name.ends_with(".up.sql").then(|| (name, f.contents_utf8().unwrap_or("")))
            })
            .collect();
        files.sort_by_key(|(name, _)| *name);
        Migrations { app, files }
    }

    /// Migrations given in code: `(name, sql)` pairs.
    #[cfg(test)]
    pub fn from_static(app: &'static str, files: &[(&'static str, &'static str)]) -> Migrations {
        let mut files = files.to_vec();
        files.sort_by_key(|(name, _)| *name);
        Migrations { app, files }
    }
}

/// One migration and whether it has been applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    pub app: String,
    pub name: String,
    /// When it was applied (UTC), or `None` if pending.
    pub applied_at: Option<String>,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _migrations (
    app TEXT NOT NULL,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (app, name)
)";

/// Applies every pending migration; returns `app/name` of each one applied.
pub(crate) fn apply(conn: &Conn, sets: &[Migrations]) -> Result<Vec<String>, DbError> {
    let pending: Vec<_> =
        status(conn, sets)?.into_iter().filter(|s| s.applied_at.is_none()).collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    super::sqlite::transaction(conn, |conn| {
        conn.0.execute_batch(CREATE_TABLE)?;
        let mut applied = Vec::new();
        for migration in &pending {
            let sql = sets
                .iter()
                .find(|s| s.app == migration.app)
                .and_then(|s| s.files.iter().find(|(name, _)| *name == migration.name))
                .map(|(_, sql)| *sql)
                .expect("pending migration comes from the sets");
            let file = format!("{}/{}", migration.app, migration.name);
            conn.0.execute_batch(sql).map_err(|e| DbError::Migration {
                file: file.clone(),
                message: sqlite_message(e),
            })?;
            conn.0.execute(
                "INSERT INTO _migrations (app, name, applied_at) \
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                (&migration.app, &migration.name),
            )?;
            applied.push(file);
        }
        Ok(applied)
    })
}

/// Every known migration with its applied time, in the order they run.
pub(crate) fn status(conn: &Conn, sets: &[Migrations]) -> Result<Vec<MigrationStatus>, DbError> {
    let table_exists: bool = conn.0.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_migrations'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    let mut applied = std::collections::HashMap::new();
    if table_exists {
        let mut stmt = conn.0.prepare("SELECT app, name, applied_at FROM _migrations")?;
        let rows = stmt.query_map([], |r| {
            Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, String>(2)?))
        })?;
        for row in rows {
            let (key, at) = row?;
            applied.insert(key, at);
        }
    }
    Ok(sets
        .iter()
        .flat_map(|set| {
            set.files.iter().map(|(name, _)| MigrationStatus {
                app: set.app.to_string(),
                name: name.to_string(),
                applied_at: applied.get(&(set.app.to_string(), name.to_string())).cloned(),
            })
        })
        .collect())
}

fn sqlite_message(e: rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, Some(message)) => {
            format!("{message} ({:?})", code.code)
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn applies_in_order_once_and_records_rows() {
        let c = conn();
        let sets = [
            Migrations::from_static(
                "a",
                &[
                    ("0002_b.up.sql", "ALTER TABLE t ADD COLUMN y"),
                    ("0001_a.up.sql", "CREATE TABLE t(x)"),
                ],
            ),
            Migrations::from_static(
                "b",
                &[("0001_u.up.sql", "CREATE TABLE u(t_x REFERENCES t(x))")],
            ),
        ];
        assert_eq!(
            apply(&c, &sets).unwrap(),
            ["a/0001_a.up.sql", "a/0002_b.up.sql", "b/0001_u.up.sql"]
        );
        assert!(apply(&c, &sets).unwrap().is_empty());
        assert!(status(&c, &sets).unwrap().iter().all(|s| s.applied_at.is_some()));
    }

    #[test]
    fn a_failing_file_rolls_back_the_whole_run() {
        let c = conn();
        let sets = [Migrations::from_static(
            "a",
            &[("0001_ok.up.sql", "CREATE TABLE t(x)"), ("0002_bad.up.sql", "CREAT TABLE")],
        )];
        let err = apply(&c, &sets).unwrap_err().to_string();
        assert!(err.contains("a/0002_bad.up.sql") && err.contains("syntax error"), "{err}");
        let tables: i64 =
            c.0.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0, "nothing of the failed run remains");
    }
}
