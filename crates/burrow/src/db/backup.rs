//! Online backups: a consistent copy of a live database, safe while the server writes.
//!
//! SQLite's online backup API copies pages from a read snapshot: the source connection
//! holds one read transaction for the whole copy, so in WAL mode writers keep going and
//! the copy is exactly the database as of the moment the backup began. The copy is
//! written to a [`TempFile`] (random name, 0600), switched out of WAL mode (one
//! self-contained file), checked with `PRAGMA integrity_check`, synced, and only then
//! renamed into place — a crash or an error never leaves a half-written file under the
//! final name.
//!
//! The destination is checked first ([`plan`]), before anything is written: never the
//! database or one of its -wal, -shm, -journal files (by path, and by device and inode for
//! an existing file, so a hard link is caught too), never through a symbolic link, and an
//! existing file only with `--force`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::DbError;
use crate::files::{TempFile, dir_writable, parent_dir};

/// The files SQLite keeps beside a database.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// What a finished backup reports.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl BackupReport {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A backup whose destination passed [`plan`]'s checks.
#[derive(Debug)]
pub struct Plan {
    source: PathBuf,
    target: PathBuf,
    /// `--force`: an existing file at `target` is replaced.
    replace: bool,
}

/// Checks a backup of the database at `source` to `dest` before anything is written, and
/// returns the file it will create: `dest` itself, or a timestamped file inside it when
/// `dest` is a directory (`app-YYYYMMDD-HHMMSS.db` for `app.db`; a symbolic link to a
/// directory is a directory). An error is one line naming the problem: a missing database
/// or destination directory; a destination that is the database or one of its sidecar
/// files; a symbolic link (even with `force`); something other than a regular file; an
/// existing file without `force`; a stale `-wal` beside the destination (SQLite would apply
/// it to the copy); a directory this user cannot write.
pub fn plan(source: &Path, dest: &Path, force: bool) -> Result<Plan, DbError> {
    fn refuse<T>(message: String) -> Result<T, DbError> {
        Err(DbError::Setup(message))
    }
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return refuse(format!("database {} is not a file", source.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return refuse(format!("database file {} does not exist", source.display()));
        }
        Err(e) => return refuse(format!("database file {}: {e}", source.display())),
    }
    let target = if dest.is_dir() {
        dated_name(source, dest)
    } else if dest.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return refuse(format!("backup directory {} does not exist", dest.display()));
    } else {
        dest.to_path_buf()
    };
    let dir = parent_dir(&target);
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return refuse(format!("backup directory {} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return refuse(format!("backup directory {} does not exist", dir.display()));
        }
        Err(e) => return refuse(format!("backup directory {}: {e}", dir.display())),
    }
    let name = target.file_name().expect("a file name: checked above");
    let canonical = std::fs::canonicalize(dir)
        .map_err(|e| DbError::Setup(format!("backup directory {}: {e}", dir.display())))?
        .join(name);
    let live = live_files(source);
    if let Some((_, suffix)) = live.iter().find(|(path, _)| *path == canonical) {
        return refuse(format!(
            "backup destination {} is {}: a backup must go to another file",
            target.display(),
            describe(source, suffix)
        ));
    }
    match std::fs::symlink_metadata(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return refuse(format!("backup destination {}: {e}", target.display())),
        Ok(meta) if meta.file_type().is_symlink() => {
            return refuse(format!(
                "backup destination {} is a symbolic link, which a backup never follows or \
                 replaces (not even with --force): give the path of the file itself",
                target.display()
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return refuse(format!(
                "backup destination {} is not a regular file",
                target.display()
            ));
        }
        Ok(meta) => {
            if let Some(suffix) = same_file(&meta, &live) {
                return refuse(format!(
                    "backup destination {} is {} under another name (a hard link): a backup must \
                     go to another file",
                    target.display(),
                    describe(source, suffix)
                ));
            }
            if !force {
                return refuse(format!(
                    "backup destination {} already exists: use --force to replace it",
                    target.display()
                ));
            }
        }
    }
    let wal = super::sidecar(&target, "-wal");
    if std::fs::symlink_metadata(&wal).is_ok() {
        return refuse(format!(
            "backup destination {} has a {} beside it, which SQLite would apply to the backup: \
             remove it or choose another name",
            target.display(),
            wal.display()
        ));
    }
    if !dir_writable(dir) {
        return refuse(format!("backup directory {} is not writable by this user", dir.display()));
    }
    Ok(Plan { source: source.to_path_buf(), target, replace: force })
}

/// The database's own files, each with its suffix (`""` for the database file), under the
/// paths SQLite may use for them: beside the path as given and beside the file it resolves
/// to, both with symbolic links and `..` resolved.
fn live_files(source: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut bases = Vec::new();
    if let Ok(real) = std::fs::canonicalize(source) {
        bases.push(real);
    }
    if let (Ok(dir), Some(name)) = (std::fs::canonicalize(parent_dir(source)), source.file_name()) {
        bases.push(dir.join(name));
    }
    bases
        .iter()
        .flat_map(|base| {
            std::iter::once("").chain(SIDECARS).map(|suffix| (super::sidecar(base, suffix), suffix))
        })
        .collect()
}

/// The suffix of the live file that `meta` is (same device and inode), if any.
fn same_file(meta: &std::fs::Metadata, live: &[(PathBuf, &'static str)]) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        live.iter().find_map(|(path, suffix)| {
            std::fs::metadata(path)
                .ok()
                .filter(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
                .map(|_| *suffix)
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (meta, live);
        None
    }
}

fn describe(source: &Path, suffix: &str) -> String {
    if suffix.is_empty() {
        format!("the database {} itself", source.display())
    } else {
        format!("the database's {suffix} file ({}{suffix})", source.display())
    }
}

/// `STEM-YYYYMMDD-HHMMSS.db` in `dir`, with `-2`, `-3`… when backups within one second
/// would share a name (anything at a name, even a dangling symbolic link, takes it).
fn dated_name(source: &Path, dir: &Path) -> PathBuf {
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("backup");
    let stamp = utc_stamp();
    (1..)
        .map(|n| {
            if n == 1 {
                dir.join(format!("{stem}-{stamp}.db"))
            } else {
                dir.join(format!("{stem}-{stamp}-{n}.db"))
            }
        })
        .find(|path| std::fs::symlink_metadata(path).is_err())
        .expect("an unused name")
}

impl Plan {
    /// Copies the database. `progress` is called with (pages copied, pages total) as the
    /// copy advances. Without `force`, a file that appeared at the destination meanwhile is
    /// left alone and the backup fails.
    pub fn run(&self, mut progress: impl FnMut(u64, u64)) -> Result<BackupReport, DbError> {
        let started = Instant::now();
        let target = &self.target;
        // 0600 whatever the database's mode: a backup holds everything in the database and
        // often lands in a shared directory; whoever restores it sets the mode then.
        let partial = TempFile::new(target, 0o600).map_err(|e| {
            DbError::Setup(format!(
                "cannot create the backup in {}: {e}",
                parent_dir(target).display()
            ))
        })?;
        let partial_path = partial.path().to_path_buf();
        let result = copy(&self.source, &partial_path, &mut progress).and_then(|()| {
            let placed = if self.replace { partial.persist() } else { partial.persist_new() };
            placed.map_err(|e| {
                DbError::Setup(if e.kind() == std::io::ErrorKind::AlreadyExists {
                    format!(
                        "{} appeared while the backup ran and was left alone: use --force to \
                         replace it",
                        target.display()
                    )
                } else {
                    format!("cannot move the backup into place at {}: {e}", target.display())
                })
            })?;
            let bytes = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
            Ok(BackupReport { path: target.clone(), bytes, elapsed: started.elapsed() })
        });
        if result.is_err() {
            for suffix in SIDECARS {
                let _ = std::fs::remove_file(super::sidecar(&partial_path, suffix));
            }
        }
        result
    }
}

fn copy(source: &Path, partial: &Path, progress: &mut impl FnMut(u64, u64)) -> Result<(), DbError> {
    fn sql(what: &str) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
        move |e| DbError::Setup(format!("backup: {what}: {e}"))
    }
    super::configure_sqlite();
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
        .map_err(|e| DbError::Setup(format!("backup: cannot open {}: {e}", partial.display())))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(sql("cannot start"))?;
        loop {
            let step = backup.step(1024).map_err(sql("copying pages"))?;
            let p = backup.progress();
            let total = p.pagecount.max(0) as u64;
            progress(total - p.remaining.max(0) as u64, total);
            match step {
                StepResult::Done => break,
                StepResult::More => {}
                // Locks held by a checkpoint; the busy handler already waited, so pause and retry.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
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
    Ok(())
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

    fn database(path: &Path) {
        super::super::configure_sqlite();
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
    }

    #[test]
    fn backs_up_a_database_into_a_directory_with_a_dated_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app.db");
        database(&src);
        let out = dir.path().join("backups");
        std::fs::create_dir(&out).unwrap();
        let mut calls = 0;
        let report = plan(&src, &out, false).unwrap().run(|_, _| calls += 1).unwrap();
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&report.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = plan(&dir.path().join("missing.db"), dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("missing.db"), "{err}");
    }

    #[test]
    fn refuses_the_database_its_sidecars_and_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app.db");
        database(&src);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let refused = |dest: &Path, force: bool, says: &str| {
            let err = plan(&src, dest, force).unwrap_err().to_string();
            assert!(err.contains(says), "{}: {err}", dest.display());
        };
        for force in [false, true] {
            refused(&src, force, "is the database");
            refused(&dir.path().join("sub/../app.db"), force, "is the database");
            refused(&dir.path().join("app.db-wal"), force, "-wal file");
            refused(&dir.path().join("app.db-journal"), force, "-journal file");
        }
        #[cfg(unix)]
        {
            let link = dir.path().join("link.db");
            std::os::unix::fs::symlink(&src, &link).unwrap();
            refused(&link, true, "symbolic link");
            let hard = dir.path().join("hard.db");
            std::fs::hard_link(&src, &hard).unwrap();
            refused(&hard, true, "under another name");
        }
        let other = dir.path().join("other.db");
        std::fs::write(&other, "old").unwrap();
        refused(&other, false, "--force");
        assert_eq!(plan(&src, &other, true).unwrap().target, other);
        std::fs::write(dir.path().join("other.db-wal"), "stale").unwrap();
        refused(&other, true, "other.db-wal");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "old");
    }
}
