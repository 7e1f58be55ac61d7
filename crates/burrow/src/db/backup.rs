//! Online backups: a consistent copy of a live database, safe while the server writes.
//!
//! SQLite's online backup API copies pages from a read snapshot: the source connection
//! holds one read transaction for the whole copy, so in WAL mode writers keep going and
//! the copy is exactly the database as of the moment the backup began. The copy is
//! written under a temporary name, switched out of WAL mode (one self-contained file),
//! checked with `PRAGMA integrity_check`, synced, and only then renamed into place — a
//! crash or an error never leaves a half-written file under the final name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::DbError;

/// What a finished backup reports.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub pages: u64,
    pub elapsed: Duration,
}

impl BackupReport {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Where the backup goes: `dest` itself, or a timestamped file inside it when `dest` is a
/// directory (`app-YYYYMMDD-HHMMSS.db` for `app.db`).
pub fn destination(source: &Path, dest: &Path) -> PathBuf {
    if dest.is_dir() {
        let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("backup");
        let stamp = utc_stamp();
        // Two backups within one second must not replace each other.
        (1..)
            .map(|n| {
                if n == 1 {
                    dest.join(format!("{stem}-{stamp}.db"))
                } else {
                    dest.join(format!("{stem}-{stamp}-{n}.db"))
                }
            })
            .find(|path| !path.exists())
            .expect("an unused name")
    } else {
        dest.to_path_buf()
    }
}

/// Copies the database at `source` to `dest` (see [`destination`]). `progress` is called
/// with (pages copied, pages total) as the copy advances.
pub fn backup(
    source: &Path,
    dest: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<BackupReport, DbError> {
    let started = Instant::now();
    if !source.exists() {
        return Err(DbError::Setup(format!("database file {} does not exist", source.display())));
    }
    let target = destination(source, dest);
    let dir = crate::paths::parent_dir(&target).to_path_buf();
    if !dir.is_dir() {
        return Err(DbError::Setup(format!("backup directory {} does not exist", dir.display())));
    }
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("backup.db");
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = copy(source, &partial, &mut progress).and_then(|pages| {
        std::fs::rename(&partial, &target).map_err(|e| {
            DbError::Setup(format!(
                "cannot move the backup into place at {}: {e}",
                target.display()
            ))
        })?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        let bytes = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport { path: target.clone(), bytes, pages, elapsed: started.elapsed() })
    });
    if result.is_err() {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(super::sidecar(&partial, suffix));
        }
    }
    result
}

fn copy(
    source: &Path,
    partial: &Path,
    progress: &mut impl FnMut(u64, u64),
) -> Result<u64, DbError> {
    fn sql(what: &str) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
        move |e| DbError::Setup(format!("backup: {what}: {e}"))
    }
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DbError::Setup(format!("backup: cannot open {}: {e}", source.display())))?;
    // Wait for a writer's lock instead of failing, as the server does.
    src.busy_timeout(Duration::from_secs(5)).map_err(sql("busy_timeout"))?;
    // One read transaction for the whole copy: a fixed snapshot, so concurrent writes
    // neither restart the backup nor appear half in it.
    src.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
        .map_err(sql("cannot start a read transaction"))?;
    let mut dst = Connection::open(partial)
        .map_err(|e| DbError::Setup(format!("backup: cannot create {}: {e}", partial.display())))?;
    let pages = {
        let backup = Backup::new(&src, &mut dst).map_err(sql("cannot start"))?;
        loop {
            let step = backup.step(1024).map_err(sql("copying pages"))?;
            let p = backup.progress();
            let total = p.pagecount.max(0) as u64;
            progress(total - p.remaining.max(0) as u64, total);
            match step {
                StepResult::Done => break total,
                StepResult::More => {}
                // Locks held by a checkpoint; the busy handler already waited, so pause and retry.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    };
    drop(src);
    // A backup is one self-contained file: no -wal beside it.
    dst.execute_batch("PRAGMA journal_mode = DELETE;").map_err(sql("journal mode"))?;
    let check: String = dst
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql("integrity_check"))?;
    if check != "ok" {
        return Err(DbError::Setup(format!("backup failed its integrity check: {check}")));
    }
    drop(dst);
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| DbError::Setup(format!("cannot sync the backup: {e}")))?;
    Ok(pages)
}

/// UTC time as YYYYMMDD-HHMMSS, without a date crate.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_up_a_database_into_a_directory_with_a_dated_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app.db");
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        let out = dir.path().join("backups");
        std::fs::create_dir(&out).unwrap();
        let mut calls = 0;
        let report = backup(&src, &out, |_, _| calls += 1).unwrap();
        assert!(calls > 0);
        let name = report.path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("app-20")
                && name.ends_with(".db")
                && name.len() == "app-YYYYMMDD-HHMMSS.db".len(),
            "{name}"
        );
        let copy = Connection::open(&report.path).unwrap();
        let n: i64 = copy.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 3);
        let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "no partial file left");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            backup(&dir.path().join("missing.db"), dir.path(), |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("missing.db"), "{err}");
    }
}
