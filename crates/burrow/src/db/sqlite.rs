//! The SQLite backend: one writer connection plus a pool of readers.
//!
//! Writers take an async FIFO lock (tokio's `Mutex` is fair) before moving to a blocking
//! thread, so queued writes wait without occupying threads. Readers are a stack of
//! connections guarded by a semaphore.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, Semaphore};

use super::{Conn, DbError, Dsn, Value};

/// Applied to every connection (SPEC.md).
const PRAGMAS: &str = "
    PRAGMA synchronous = NORMAL;
    PRAGMA foreign_keys = ON;
    PRAGMA busy_timeout = 5000;
    PRAGMA temp_store = MEMORY;
    PRAGMA mmap_size = 134217728;
    PRAGMA journal_size_limit = 27103364;
    PRAGMA cache_size = -8000;
";

pub(super) struct SqlitePool {
    dsn: Dsn,
    /// What every connection opens: the file path, or a shared-cache memory URI.
    target: String,
    /// `None` once closed. The guard travels into the blocking task, so a request that
    /// is cancelled mid-write cannot lose the connection.
    writer: Arc<Mutex<Option<Conn>>>,
    readers: Arc<StdMutex<Vec<Conn>>>,
    reader_slots: Arc<Semaphore>,
    /// The `-wal` file when the server checkpoints it (a file database, not external).
    wal: Option<Arc<Path>>,
    /// Writes since the last idle checkpoint, and when the last one committed.
    activity: Arc<Activity>,
}

/// Who checkpoints the WAL into the database file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoints {
    /// The server: SQLite's automatic PASSIVE checkpoints as commits go, a RESTART when
    /// long readers let the WAL grow past [`WAL_RESTART_BYTES`], and a TRUNCATE once
    /// writes pause, so the -wal file stays bounded and shrinks back to zero when idle.
    Server,
    /// An external tool such as Litestream, which must see every WAL frame: the server
    /// never checkpoints (automatic checkpoints off).
    External,
}

/// Past this size the writer forces a RESTART checkpoint, waiting for readers that pin
/// old WAL frames (busy_timeout) so the WAL can be reused from the start.
pub const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;
/// A TRUNCATE checkpoint runs after writes have paused this long.
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the idle TRUNCATE waits for readers before it gives up until the next tick.
const IDLE_CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// `PRAGMA busy_timeout` of every connection (in [`PRAGMAS`]).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5000);

#[derive(Default)]
pub(super) struct Activity {
    commits: AtomicU64,
    dirty: AtomicBool,
    last_commit: StdMutex<Option<std::time::Instant>>,
}

impl SqlitePool {
    pub(super) fn open(
        dsn: &Dsn,
        readers: usize,
        checkpoints: Checkpoints,
    ) -> Result<SqlitePool, DbError> {
        let target = match dsn {
            Dsn::SqliteFile(path) => {
                check_file(path)?;
                create_private(path)?;
                path.to_string_lossy().into_owned()
            }
            Dsn::SqliteMemory => {
                // Every connection must see the same in-memory database.
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                format!("file:burrow-memory-{}-{n}?mode=memory&cache=shared", std::process::id())
            }
        };
        let writer = connect(&target, dsn)?;
        if checkpoints == Checkpoints::External {
            writer
                .0
                .execute_batch("PRAGMA wal_autocheckpoint = 0;")
                .map_err(|e| DbError::Setup(format!("cannot configure database {dsn}: {e}")))?;
        }
        let wal = match dsn {
            Dsn::SqliteFile(path) if checkpoints == Checkpoints::Server => {
                Some(super::sidecar(path, "-wal").into())
            }
            _ => None,
        };
        Ok(SqlitePool {
            wal,
            activity: Arc::default(),
            dsn: dsn.clone(),
            target,
            writer: Arc::new(Mutex::new(Some(writer))),
            readers: Arc::new(StdMutex::new(Vec::new())),
            reader_slots: Arc::new(Semaphore::new(readers.max(1))),
        })
    }

    pub(super) fn dsn(&self) -> &Dsn {
        &self.dsn
    }

    /// Runs `f` on the writer outside any transaction, before serving (migrations).
    /// Switches the file to WAL afterwards: a failed migration leaves the file byte for
    /// byte as it was, even its journal mode.
    pub(super) fn with_writer_blocking<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let guard = self
            .writer
            .try_lock()
            .map_err(|_| DbError::Setup("the writer connection is busy".into()))?;
        let conn = guard.as_ref().ok_or(DbError::Closed)?;
        let out = f(conn)?;
        if matches!(self.dsn, Dsn::SqliteFile(_)) {
            let mode: String = conn.0.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(DbError::Setup(format!(
                    "{}: cannot switch to WAL mode (got {mode})",
                    self.dsn
                )));
            }
        }
        Ok(out)
    }

    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        let guard = self.writer.clone().lock_owned().await;
        let activity = self.activity.clone();
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || {
            let conn = guard.as_ref().ok_or(DbError::Closed)?;
            let result = transaction(conn, f);
            activity.committed();
            // Every 64 commits, look at the WAL: long readers can keep PASSIVE checkpoints
            // from reusing it; a RESTART waits for them and bounds its size.
            if let Some(wal) = wal
                && activity.commits.load(Ordering::Relaxed).is_multiple_of(64)
                && std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_RESTART_BYTES)
            {
                let _ = conn.0.execute_batch("PRAGMA wal_checkpoint(RESTART);");
            }
            result
        })
        .await
        .map_err(|e| DbError::Other(format!("write task failed: {e}")))?
    }

    /// The idle checkpointer: once writes pause for [`IDLE_AFTER`], a TRUNCATE checkpoint
    /// folds the WAL into the database and empties the -wal file. Runs on its own thread
    /// (it needs no runtime) until the pool is dropped or closed.
    pub(super) fn start_idle_checkpoints(pool: &Arc<SqlitePool>) {
        if pool.wal.is_none() {
            return;
        }
        let weak = Arc::downgrade(pool);
        let _ = std::thread::Builder::new().name("burrow-checkpoint".into()).spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(250));
                let Some(pool) = weak.upgrade() else { return };
                if pool.reader_slots.is_closed() {
                    return;
                }
                if !pool.activity.idle_since(IDLE_AFTER) {
                    continue;
                }
                // Never wait for the writer: a write in progress means not idle.
                if let Ok(guard) = pool.writer.try_lock()
                    && let Some(conn) = guard.as_ref()
                    && truncate_wal(conn)
                {
                    pool.activity.dirty.store(false, Ordering::Relaxed);
                }
            }
        });
    }

    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        let permit =
            self.reader_slots.clone().acquire_owned().await.map_err(|_| DbError::Closed)?;
        let readers = self.readers.clone();
        let target = self.target.clone();
        let dsn = self.dsn.clone();
        // The blocking task returns the connection to the pool itself: a cancelled request
        // must not close a pooled connection.
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().expect("reader pool poisoned").pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&target, &dsn)?,
            };
            let result = f(&conn);
            readers.lock().expect("reader pool poisoned").push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| DbError::Other(format!("read task failed: {e}")))?
    }

    /// The file is still there and accessible, a reader can query, and the writer
    /// connection is present and answers.
    pub(super) async fn check(&self) -> Result<(), DbError> {
        if let Dsn::SqliteFile(path) = &self.dsn {
            let path = path.clone();
            tokio::task::spawn_blocking(move || check_access(&path))
                .await
                .map_err(|e| DbError::Other(e.to_string()))??;
        }
        self.read(|conn| {
            conn.query_one::<(i64,)>("SELECT count(*) FROM sqlite_schema", &[]).map(|_| ())
        })
        .await?;
        let guard = self.writer.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            guard.as_ref().ok_or(DbError::Closed)?.query_one::<(i64,)>("SELECT 1", &[]).map(|_| ())
        })
        .await
        .map_err(|e| DbError::Other(e.to_string()))?
    }

    pub(super) async fn close(&self) {
        self.reader_slots.close();
        let readers = std::mem::take(&mut *self.readers.lock().expect("reader pool poisoned"));
        drop(readers);
        if let Some(writer) = self.writer.lock().await.take() {
            // Lets SQLite refresh its query planner statistics, then closing the last
            // connection checkpoints the WAL into the main file.
            let _ = tokio::task::spawn_blocking(move || {
                let _ = writer.0.execute_batch("PRAGMA optimize;");
                drop(writer);
            })
            .await;
        }
    }
}

/// The idle checkpoint: a TRUNCATE that waits at most [`IDLE_CHECKPOINT_WAIT`] for
/// readers still using the WAL (e.g. `server backup` or `sqlite3 .backup` holding a
/// snapshot) instead of the connection's busy_timeout, since every write waits behind it.
/// True only when it completed (SQLite reports `busy` = 1 in the first column otherwise,
/// without an error): a busy checkpoint is tried again on the next tick, so the -wal file
/// is emptied once the reader is done rather than left full until the next write.
fn truncate_wal(conn: &Conn) -> bool {
    let _ = conn.0.busy_timeout(IDLE_CHECKPOINT_WAIT);
    let done = conn
        .0
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|busy| busy == 0);
    let _ = conn.0.busy_timeout(BUSY_TIMEOUT);
    done
}

impl Activity {
    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        *self.last_commit.lock().expect("activity poisoned") = Some(std::time::Instant::now());
    }

    /// True when there were writes and none for `quiet`.
    fn idle_since(&self, quiet: std::time::Duration) -> bool {
        self.dirty.load(Ordering::Relaxed)
            && self
                .last_commit
                .lock()
                .expect("activity poisoned")
                .is_some_and(|t| t.elapsed() >= quiet)
    }
}

pub(super) fn transaction<T>(
    conn: &Conn,
    f: impl FnOnce(&Conn) -> Result<T, DbError>,
) -> Result<T, DbError> {
    conn.0.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => match conn.0.execute_batch("COMMIT") {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = conn.0.execute_batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = conn.0.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn connect(target: &str, dsn: &Dsn) -> Result<Conn, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(target, flags)
        .map_err(|e| DbError::Setup(format!("cannot open database {dsn}: {e}")))?;
    conn.execute_batch(PRAGMAS)
        .map_err(|e| DbError::Setup(format!("cannot configure database {dsn}: {e}")))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(Conn(conn))
}

/// Checks the database file and its directory before anything is created or written:
/// the directory must exist and be writable (WAL creates `-wal` and `-shm` beside the
/// file), and an existing file must be a readable, writable SQLite database.
fn check_file(path: &Path) -> Result<(), DbError> {
    let dir = crate::files::parent_dir(path);
    let setup = |msg: String| Err(DbError::Setup(msg));
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return setup(format!(
                "database directory {} does not exist (create it, or change --database-dsn)",
                dir.display()
            ));
        }
        Err(e) => return setup(format!("database directory {}: {e}", dir.display())),
        Ok(meta) if !meta.is_dir() => {
            return setup(format!("database directory {} is not a directory", dir.display()));
        }
        Ok(_) => {}
    }
    if !crate::files::dir_writable(dir) {
        return setup(format!(
            "database directory {} is not writable by this user; SQLite needs to create {}-wal and {}-shm beside the database",
            dir.display(),
            path.display(),
            path.display()
        ));
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return setup(format!("database file {}: {e}", path.display())),
        Ok(meta) if meta.is_dir() => {
            return setup(format!("database file {} is a directory", path.display()));
        }
        Ok(meta) if meta.len() == 0 => {}
        Ok(_) => {
            let mut header = [0u8; 16];
            let read = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
            match read {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return setup(format!(
                        "database file {} is not a SQLite database",
                        path.display()
                    ));
                }
                Err(e) => {
                    return setup(format!("database file {} cannot be read: {e}", path.display()));
                }
                Ok(()) if &header != b"SQLite format 3\0" => {
                    return setup(format!(
                        "database file {} is not a SQLite database",
                        path.display()
                    ));
                }
                Ok(()) => {}
            }
        }
    }
    check_access(path)
}

/// Creates a missing database file 0600 (never through a symbolic link) before SQLite opens
/// it: SQLite would create it 0644 (less the umask), readable by every user, and it gives
/// the -wal and -shm files the database file's mode. An existing file keeps its mode.
fn create_private(path: &Path) -> Result<(), DbError> {
    match crate::files::create_new(path, 0o600) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            Err(DbError::Setup(format!("cannot create database file {}: {e}", path.display())))
        }
    }
}

fn check_access(path: &Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use nix::unistd::{AccessFlags, access};
        if let Err(e) = access(path, AccessFlags::R_OK | AccessFlags::W_OK) {
            if e != nix::errno::Errno::ENOENT {
                return Err(DbError::Setup(format!(
                    "database file {} is not readable and writable: {}",
                    path.display(),
                    e.desc()
                )));
            }
            return Err(DbError::Setup(format!("database file {} is missing", path.display())));
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(path) {
            return Err(DbError::Setup(format!(
                "database file {} is not readable and writable: {e}",
                path.display()
            )));
        }
    }
    Ok(())
}

pub(super) fn value_from_ref(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}
