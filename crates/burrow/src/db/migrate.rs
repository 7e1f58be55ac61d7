//! Forward-only migrations: each app embeds `*.up.sql` files, applied in name order.
//!
//! A file runs on both engines unless the app ships per-engine variants of it:
//! `0002_search.sqlite.up.sql` and `0002_search.postgres.up.sql` are one migration,
//! recorded as `0002_search.up.sql` on either engine, so `migrate --list` reads the same.
//! An engine with no file for a migration that the other engine has is a start-up error.
//!
//! All pending migrations of a start-up run in one transaction, each file together with
//! its `_migrations(app, name, applied_at)` row: if any file fails, start-up stops with
//! the file name and the engine's message, and the database is left exactly as it was
//! (PostgreSQL's DDL is transactional too). On PostgreSQL a session-level advisory lock
//! makes processes that start at once migrate one after the other: the later ones find
//! nothing left to do.

use include_dir::Dir;

use super::{Conn, DbError, Engine, utc_now};

/// The migrations of one app.
#[derive(Clone, Debug)]
pub struct Migrations {
    pub app: &'static str,
    files: Vec<File>,
}

/// One file: the name it is recorded under, the engine it is for (`None`: both) and its
/// SQL.
#[derive(Clone, Debug)]
struct File {
    name: String,
    engine: Option<Engine>,
    sql: &'static str,
}

impl File {
    fn new(file_name: &str, sql: &'static str) -> Option<File> {
        let stem = file_name.strip_suffix(".up.sql")?;
        for engine in [Engine::Sqlite, Engine::Postgres] {
            if let Some(base) = stem.strip_suffix(&format!(".{}", engine.name())) {
                return Some(File { name: format!("{base}.up.sql"), engine: Some(engine), sql });
            }
        }
        Some(File { name: file_name.to_string(), engine: None, sql })
    }
}

impl Migrations {
    /// Collects the `*.up.sql` files at the top of `dir`, sorted by name.
    pub fn from_dir(app: &'static str, dir: &'static Dir<'static>) -> Migrations {
        let files = dir.files().filter_map(|f| {
            File::new(f.path().file_name()?.to_str()?, f.contents_utf8().unwrap_or(""))
        });
        Migrations::sorted(app, files.collect())
    }

    /// Migrations given in code: `(file name, sql)` pairs.
    #[cfg(test)]
    pub fn from_static(app: &'static str, files: &[(&'static str, &'static str)]) -> Migrations {
        Migrations::sorted(
            app,
            files.iter().filter_map(|(name, sql)| File::new(name, sql)).collect(),
        )
    }

    fn sorted(app: &'static str, mut files: Vec<File>) -> Migrations {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Migrations { app, files }
    }

    /// The migrations in order, each with the SQL to run on `engine`.
    fn for_engine(&self, engine: Engine) -> Result<Vec<(&str, &'static str)>, DbError> {
        let mut out: Vec<(&str, &'static str)> = Vec::new();
        let mut names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        names.dedup();
        for name in names {
            let of_name = self.files.iter().filter(|f| f.name == name);
            let chosen = of_name
                .clone()
                .find(|f| f.engine == Some(engine))
                .or_else(|| of_name.clone().find(|f| f.engine.is_none()));
            match chosen {
                Some(file) => out.push((name, file.sql)),
                None => {
                    let stem = name.trim_end_matches(".up.sql");
                    return Err(DbError::Migration {
                        file: format!("{}/{name}", self.app),
                        message: format!(
                            "there is no {stem}.{}.up.sql (nor a {name} for every engine)",
                            engine.name()
                        ),
                    });
                }
            }
        }
        Ok(out)
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
    let engine = conn.engine();
    if engine == Engine::Postgres {
        let lock = super::postgres::MIGRATE_LOCK;
        conn.execute_batch(&format!("SELECT pg_advisory_lock({lock})"))?;
        let result = apply_pending(conn, sets);
        let _ = conn.execute_batch(&format!("SELECT pg_advisory_unlock({lock})"));
        return result;
    }
    apply_pending(conn, sets)
}

fn apply_pending(conn: &Conn, sets: &[Migrations]) -> Result<Vec<String>, DbError> {
    let engine = conn.engine();
    let pending: Vec<_> =
        status(conn, sets)?.into_iter().filter(|s| s.applied_at.is_none()).collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let begin = match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN",
    };
    conn.transaction(begin, |conn| {
        conn.execute_batch(CREATE_TABLE)?;
        let mut applied = Vec::new();
        for migration in &pending {
            let set = sets.iter().find(|s| s.app == migration.app).expect("from the sets");
            let sql = set
                .for_engine(engine)?
                .into_iter()
                .find(|(name, _)| *name == migration.name)
                .map(|(_, sql)| sql)
                .expect("pending migration comes from the sets");
            let file = format!("{}/{}", migration.app, migration.name);
            conn.execute_batch(sql)
                .map_err(|e| DbError::Migration { file: file.clone(), message: e.to_string() })?;
            conn.execute(
                "INSERT INTO _migrations (app, name, applied_at) VALUES (?, ?, ?)",
                super::params![migration.app.as_str(), migration.name.as_str(), utc_now()],
            )?;
            applied.push(file);
        }
        Ok(applied)
    })
}

/// Every known migration with its applied time, in the order they run.
pub(crate) fn status(conn: &Conn, sets: &[Migrations]) -> Result<Vec<MigrationStatus>, DbError> {
    let exists = match conn.engine() {
        Engine::Sqlite => {
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_migrations'"
        }
        Engine::Postgres => {
            "SELECT count(*) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = '_migrations'"
        }
    };
    let mut applied = std::collections::HashMap::new();
    if conn.query_one::<i64>(exists, &[])? > 0 {
        let rows: Vec<(String, String, String)> =
            conn.query("SELECT app, name, applied_at FROM _migrations", &[])?;
        for (app, name, at) in rows {
            applied.insert((app, name), at);
        }
    }
    let mut out = Vec::new();
    for set in sets {
        for (name, _) in set.for_engine(conn.engine())? {
            out.push(MigrationStatus {
                app: set.app.to_string(),
                name: name.to_string(),
                applied_at: applied.get(&(set.app.to_string(), name.to_string())).cloned(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_in_order_once_and_records_rows() {
        let c = Conn::in_memory();
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
        let c = Conn::in_memory();
        let sets = [Migrations::from_static(
            "a",
            &[("0001_ok.up.sql", "CREATE TABLE t(x)"), ("0002_bad.up.sql", "CREAT TABLE")],
        )];
        let err = apply(&c, &sets).unwrap_err().to_string();
        assert!(err.contains("a/0002_bad.up.sql") && err.contains("syntax error"), "{err}");
        let tables: i64 = c.query_one("SELECT count(*) FROM sqlite_schema", &[]).unwrap();
        assert_eq!(tables, 0, "nothing of the failed run remains");
    }

    #[test]
    fn per_engine_files_are_one_migration() {
        let c = Conn::in_memory();
        let sets = [Migrations::from_static(
            "a",
            &[
                ("0001_t.up.sql", "CREATE TABLE t(x)"),
                ("0002_s.sqlite.up.sql", "CREATE TABLE s_sqlite(x)"),
                ("0002_s.postgres.up.sql", "CREATE TABLE s_postgres(x)"),
            ],
        )];
        assert_eq!(apply(&c, &sets).unwrap(), ["a/0001_t.up.sql", "a/0002_s.up.sql"]);
        let tables: Vec<String> = c
            .query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name", &[])
            .unwrap();
        assert_eq!(tables, ["_migrations", "s_sqlite", "t"]);

        let only_postgres =
            [Migrations::from_static("a", &[("0003_p.postgres.up.sql", "SELECT 1")])];
        let err = apply(&c, &only_postgres).unwrap_err().to_string();
        assert!(err.contains("a/0003_p.up.sql") && err.contains("0003_p.sqlite.up.sql"), "{err}");
    }
}
