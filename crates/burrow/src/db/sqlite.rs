//! The SQLite backend: one writer connection plus a pool of readers.
//!
//! Writers take an async FIFO lock (tokio's `Mutex` is fair) before moving to a blocking
//! thread, so queued writes wait without occupying threads. Readers are a stack of
//! connections guarded by a semaphore, and one more per thread that runs reads inline
//! ([`Kept`]).
//!
//! Work on a blocking thread cannot be cancelled by dropping its future, so every closure
//! runs under a [`Stop`]: SQLite's progress handler asks it every [`PROGRESS_STEPS`]
//! virtual-machine steps whether to go on, and a statement told to stop fails with
//! SQLITE_INTERRUPT. Each connection gets its handler once, when it opens; the handler
//! asks the `Stop` of the closure running on its thread ([`WATCHED`]). A read stops when
//! its caller goes away (request timeout, client gone), when it outlives its budget
//! (`--database-read-timeout`), or when the pool closes; a write only when the pool
//! closes (a write whose request was cancelled still commits, as the client may have been
//! told nothing either way).

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError, RwLock as StdRwLock};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, Notify, Semaphore};

use super::conn::Inner;
use super::{Conn, DbError, DbOptions, Dsn, Value};
use crate::live::Hub;

/// Applied to every connection (docs/sqlite.md).
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
    readers: Arc<Readers>,
    reader_slots: Arc<Semaphore>,
    /// The `-wal` file when the server checkpoints it (a file database, not external).
    wal: Option<Arc<Path>>,
    /// Writes since the last idle checkpoint, and when the last one committed.
    activity: Arc<Activity>,
    /// How long one read may run.
    read_timeout: Duration,
    /// Set by [`SqlitePool::close`]: every running statement stops. Leaked, one flag per
    /// pool for the process's life, so that each closure's [`Stop`] holds a plain reference:
    /// an `Arc` would be counted up and down by every read on both workers, a write to a
    /// cache line the two cores share.
    closing: &'static AtomicBool,
    /// Tells this pool's entries in a thread's [`KNOWN_SPEEDS`] from other pools'.
    id: u64,
    /// Closures running right now, but for inline reads on a [`Kept`] connection (whose
    /// lock says so).
    running: Arc<AtomicUsize>,
    /// Which read closures have been fast enough to run inline.
    speeds: Speeds,
    /// Handed to every connection, for `Conn::publish`.
    live: Hub,
}

/// A read or write closure runs on the async worker thread that awaits it, like a plain
/// function call, once it has shown it is fast: a microsecond query then costs no
/// hand-over to the blocking pool (a thread wake-up and a context switch each way, more
/// than the query itself: issue 13's profile). Closures are told apart by their type,
/// which is one per closure in the source.
///
/// Each closure has a credit ([`Speed`]): a run under [`INLINE_MAX`] earns one (up to
/// [`CREDIT_MAX`]), a longer run costs [`LONG_RUN_COST`], a run of [`SLOW`] or more costs
/// all of it; the closure runs inline while it has at least [`INLINE_AT`]. So a new
/// closure runs inline after four fast runs, and one that was fast and turns slow holds
/// worker threads for at most three runs, of which only the last can take longer than
/// [`SLOW`] (at most the read timeout for a read), then goes back to the blocking pool
/// until it has earned four again. The slack is for a loaded machine: a 10 µs query whose
/// thread is preempted takes a scheduler slice (0.5–8 ms seen under wrk, 40–57 times in
/// 200,000 reads, sometimes on both workers at once), and without it each of those sent
/// the next reads to the pool, which started threads and opened connections for them.
///
/// A new closure's first reads wait for each other ([`Speed::probe`]): 64 requests arriving
/// at once would otherwise start 16 blocking threads and open 16 reader connections to
/// learn what one run shows. Once a run was slow, reads run side by side on the pool again.
/// Waiting for a reader slot or the writer stays async; inline runs are interrupted by the
/// read timeout and by closing like any other; a read that would have to open a
/// connection goes to the pool.
#[derive(Default)]
struct Speeds(StdRwLock<SpeedTable<TypeId>>);

/// Closures' [`Speed`]s by `K`: a closure type, or a pool and a closure type.
type SpeedTable<K> = HashMap<K, Arc<Speed>, BuildHasherDefault<TypeIdHasher>>;

/// A `TypeId` is a hash already: used as it is rather than hashed again with SipHash, on
/// every read and write.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not what `TypeId` writes (one `u64`), but correct for anything.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What one closure's runs have shown (see [`Speeds`]).
#[derive(Default)]
struct Speed {
    /// The credit in the low bits, [`WAS_SLOW`] once a run was not fast.
    state: AtomicU32,
    /// Held by a read of a closure that has neither earned its place inline nor ever been
    /// slow: its reads go to the pool one at a time.
    probe: Mutex<()>,
}

/// The credit a closure needs to run inline: four fast runs.
const INLINE_AT: u32 = 4;
/// The most credit a closure keeps: one slow run does not send it back to the pool.
const CREDIT_MAX: u32 = 2 * INLINE_AT;
/// A run this long is not fast: it costs [`LONG_RUN_COST`].
const INLINE_MAX: Duration = Duration::from_micros(500);
/// What a run of [`INLINE_MAX`] or more costs, up to [`SLOW`]: with full credit, a
/// closure goes back to the pool at the third.
const LONG_RUN_COST: u32 = 2;
/// A run this long costs all of the credit.
const SLOW: Duration = Duration::from_millis(10);
/// Set in [`Speed::state`] once a run was not fast.
const WAS_SLOW: u32 = 1 << 31;

thread_local! {
    /// The entries of [`Speeds`] this thread has looked up, by pool ([`SqlitePool::id`]) and
    /// closure type. A fast read finds its closure's [`Speed`] here and runs while borrowing
    /// it, where reading the pool's table takes its lock and clones and drops the `Arc`:
    /// writes to lines that both workers write on every read. An entry only ever points to
    /// the pool's own `Speed`, so what it says is current; a dropped pool's entries stay
    /// until the thread ends (a pool lives as long as its server).
    static KNOWN_SPEEDS: std::cell::RefCell<SpeedTable<(u64, TypeId)>> =
        const { std::cell::RefCell::new(HashMap::with_hasher(BuildHasherDefault::new())) };
}

impl Speeds {
    /// What closure type `F`'s runs have shown so far.
    fn of<F: 'static>(&self) -> Arc<Speed> {
        if let Some(speed) = self.known::<F>() {
            return speed;
        }
        let id = TypeId::of::<F>();
        self.0.write().unwrap_or_else(|e| e.into_inner()).entry(id).or_default().clone()
    }

    /// What closure type `F`'s runs have shown, once it has run.
    fn known<F: 'static>(&self) -> Option<Arc<Speed>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(&TypeId::of::<F>()).cloned()
    }
}

impl Speed {
    fn is_fast(&self) -> bool {
        self.state.load(Ordering::Relaxed) & !WAS_SLOW >= INLINE_AT
    }

    /// Not inline yet, and never slow: its reads take turns ([`Speed::probe`]).
    fn on_probation(&self) -> bool {
        self.state.load(Ordering::Relaxed) < INLINE_AT
    }

    /// Records one run of `took`. A closure at full credit stays as it is without a write:
    /// both workers read this state on every run, and a write would move its cache line
    /// between them each time.
    fn record(&self, took: Duration) {
        let _ = self.state.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |state| {
            let credit = state & !WAS_SLOW;
            let next = if took < INLINE_MAX {
                (state & WAS_SLOW) | (credit + 1).min(CREDIT_MAX)
            } else if took < SLOW {
                WAS_SLOW | credit.saturating_sub(LONG_RUN_COST)
            } else {
                WAS_SLOW
            };
            (next != state).then_some(next)
        });
    }
}

/// Commits between two looks at the WAL's size.
const WAL_CHECK_EVERY: u64 = 64;

/// How often (in SQLite virtual-machine steps) a running statement asks its [`Stop`]
/// whether to go on: about every 50–100 µs of work, negligible next to the work itself.
const PROGRESS_STEPS: i32 = 1000;

/// Why a statement should stop, checked from SQLite's progress handler on the thread
/// running the statement; set from any thread. Copied into [`WATCHED`] for each closure:
/// an inline closure's copy allocates nothing and changes no reference count.
#[derive(Clone)]
struct Stop {
    /// The caller went away (its future was dropped). Only a closure on the blocking pool
    /// has one: an inline one runs inside its caller's poll, which cannot be dropped
    /// meanwhile, and a write commits even when its caller went away.
    cancelled: Option<Arc<AtomicBool>>,
    /// The pool is closing.
    closing: &'static AtomicBool,
    /// The read budget runs out at this instant.
    deadline: Option<Instant>,
    /// The read budget, for the error message.
    budget: Option<Duration>,
}

impl Stop {
    fn now(&self) -> bool {
        self.cancelled.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
            || self.closing.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

thread_local! {
    /// The [`Stop`] of the closure running on this thread ([`run_under`]), which the
    /// progress handler of every connection asks ([`stop_requested`]). Set per closure
    /// rather than handing each closure's `Stop` to SQLite: setting a handler allocates
    /// its closure and frees the last one, twice per read.
    static WATCHED: std::cell::RefCell<Option<Stop>> = const { std::cell::RefCell::new(None) };
}

/// Watches a closure's statements while it lives; the `Stop` watched before (none, or an
/// outer closure's) again after, even when the closure panics.
struct Watched(Option<Stop>);

impl Watched {
    fn start(stop: &Stop) -> Watched {
        Watched(WATCHED.replace(Some(stop.clone())))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        WATCHED.set(self.0.take());
    }
}

/// Every connection's progress handler: whether the closure running on this thread
/// should stop. Statements outside [`run_under`] (the migrations) run to the end.
fn stop_requested() -> bool {
    WATCHED.with_borrow(|stop| stop.as_ref().is_some_and(|stop| stop.now()))
}

/// Work this long may have used a lot of memory (FTS5 builds large intermediate results,
/// sorts spill into memory): see [`release_freed_memory`].
const LONG_WORK: Duration = Duration::from_millis(100);

/// Hands memory freed after long work back to the operating system. Both allocators keep
/// what a thread freed: glibc in its per-thread arenas, mimalloc (which SQLite allocates
/// through with the `mimalloc` feature) until the thread's next allocation after the purge
/// delay, which an idle pool thread may not make for a long time. A few expensive queries
/// would otherwise leave the process at its highest memory use. Costs about a millisecond,
/// after work that took at least [`LONG_WORK`].
fn release_freed_memory() {
    #[cfg(feature = "mimalloc")]
    crate::allocator::release_freed();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's free lists, under their locks.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Runs `f` on `conn` with `stop` watching its statements (see the module docs), counted
/// in `running` (if given) while it runs; its time goes into the closure's `speed`
/// ([`Speeds`]).
fn run_under<T>(
    conn: &Conn,
    stop: &Stop,
    running: Option<&AtomicUsize>,
    speed: &Speed,
    f: impl FnOnce(&Conn) -> Result<T, DbError>,
) -> Result<T, DbError> {
    struct Running<'a>(&'a AtomicUsize);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _running = running.map(|running| {
        running.fetch_add(1, Ordering::Relaxed);
        Running(running)
    });
    let started = Instant::now();
    let watched = Watched::start(stop);
    let result = f(conn);
    drop(watched);
    let took = started.elapsed();
    speed.record(took);
    if took >= LONG_WORK {
        release_freed_memory();
    }
    match result {
        Err(DbError::Interrupted) if stop.timed_out() => {
            Err(DbError::Timeout(stop.budget.unwrap_or_default()))
        }
        other => other,
    }
}

/// Whether the WAL file has grown past [`WAL_RESTART_BYTES`] (a `stat`: cheap enough
/// to make on the runtime's thread).
fn wal_too_big(wal: &Path) -> bool {
    std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_RESTART_BYTES)
}

/// A RESTART checkpoint: waits for the readers of the WAL, copies it into the database
/// and has the next writer start it over, so it stops growing.
fn restart_wal(conn: &Conn) {
    let _ = conn.sqlite().execute_batch("PRAGMA wal_checkpoint(RESTART);");
}

/// Cancels a read when its future is dropped before the read finished.
struct CancelOnDrop(Option<Arc<AtomicBool>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancelled) = self.0.take() {
            cancelled.store(true, Ordering::Relaxed);
        }
    }
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

/// The reader connections not in use, and who is opening one.
#[derive(Default)]
struct Readers {
    idle: StdMutex<Vec<Conn>>,
    /// Told when a connection goes back while a read waits for one, and when the pool
    /// closes.
    returned: Notify,
    /// Reads in [`Readers::for_inline`]. `put` tells `returned` only when there are any:
    /// `notify_one` writes the `Notify`'s state even when nobody waits, and every inline
    /// read puts its connection back, on both workers.
    waiting: AtomicUsize,
    /// Set while a read of a fast closure opens a connection (see [`Readers::for_inline`]).
    opening: AtomicBool,
    /// The connections that threads keep ([`Kept`]), so that closing the pool closes them.
    kept: StdMutex<Vec<Arc<Kept>>>,
}

/// A reader connection that one thread keeps for its inline reads of one pool, outside the
/// idle list and the reader slots (each thread runs one inline read at a time anyway).
/// Taking a connection and a slot from the pool and giving them back writes the slots'
/// semaphore, the idle list's lock and the running count: lines that both workers write
/// on every read, each write moving the line between the cores (issue 13, bench/README
/// steps 50 and 61). A kept connection's lock is only ever taken by its thread, but when
/// the pool closes or is dropped. bench-bare keeps a connection per thread the same way.
struct Kept {
    pool: u64,
    /// `None` once the pool closed it, or a closure panicked while using it.
    conn: StdMutex<Option<Conn>>,
}

impl Kept {
    fn conn(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A thread's [`Kept`] connections, closed when the thread ends.
struct KeptHere(Vec<Arc<Kept>>);

impl Drop for KeptHere {
    fn drop(&mut self) {
        for kept in &self.0 {
            kept.conn().take();
        }
    }
}

thread_local! {
    /// The reader connection this thread keeps for each pool it reads from inline.
    static KEPT: std::cell::RefCell<KeptHere> =
        const { std::cell::RefCell::new(KeptHere(Vec::new())) };
}

/// What a fast read gets from [`Readers::for_inline`].
enum Idle {
    /// This thread keeps a connection for the pool now ([`SqlitePool::read_kept`]).
    Kept,
    Conn(Conn),
    /// No connection is idle and none is being opened: this read opens one, on the pool;
    /// the next may open one once this one is dropped (after its run).
    Open(Opening),
}

/// Marks a connection being opened, until the read that opens it is [`done`](Opening::done).
struct Opening(Option<Arc<Readers>>);

impl Opening {
    /// Its connection is among the idle ones, and `put` told a waiting read.
    fn done(mut self) {
        if let Some(readers) = self.0.take() {
            readers.opening.store(false, Ordering::Release);
        }
    }
}

impl Drop for Opening {
    /// Without `done` (the connection could not be opened, or the read never ran): a read
    /// waiting for a connection tries again, and opens one itself.
    fn drop(&mut self) {
        if let Some(readers) = self.0.take() {
            readers.opening.store(false, Ordering::Release);
            readers.returned.notify_one();
        }
    }
}

thread_local! {
    /// The reader connection this thread used last (its handle's address; 0 for none).
    static LAST_READER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A reader connection's identity: its SQLite handle, which never moves.
fn reader_id(conn: &Conn) -> usize {
    // SAFETY: only the handle's address is read; nothing is called through it.
    unsafe { conn.sqlite().handle() as usize }
}

impl Readers {
    /// An idle connection: the one this thread used last when it is idle, so that each
    /// thread keeps reading through its own connection while there are enough (inline
    /// reads, through the one their thread keeps: [`Kept`]). A connection's page cache,
    /// statements and pager then stay in one core's cache, as in a server with a
    /// connection per thread; taking whichever went back last moved them between the two
    /// workers on most reads (issue 13: SQLite's own code took 1 µs more per page than the
    /// same instructions in bench-bare).
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("reader pool poisoned");
        let last = LAST_READER.get();
        let at = idle.iter().rposition(|c| reader_id(c) == last).or(idle.len().checked_sub(1))?;
        let conn = idle.swap_remove(at);
        drop(idle);
        LAST_READER.set(reader_id(&conn));
        Some(conn)
    }

    fn put(&self, conn: Conn) {
        self.idle.lock().expect("reader pool poisoned").push(conn);
        // A read counted itself in `waiting` before it last looked at `idle` (under the same
        // lock): either that look found this connection, or this sees the read waiting.
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.returned.notify_one();
        }
    }

    /// A connection for a read that runs inline. When none is idle, one read at a time
    /// opens another (on the pool, with its run); the others wait for a connection to
    /// come back, which an inline run gives back within microseconds. Without the wait,
    /// the first burst of requests after a closure turned fast (64 connections arriving
    /// together) found the pool empty while both workers ran reads, and each opened a
    /// connection of its own on a new blocking thread: 35 threads and connections, which
    /// then stayed.
    async fn for_inline(self: &Arc<Self>, pool: u64, slots: &Semaphore) -> Result<Idle, DbError> {
        /// Counts a read in `waiting` until it got a connection, failed or was dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if slots.is_closed() {
                return Err(DbError::Closed);
            }
            if keeps(pool) {
                return Ok(Idle::Kept);
            }
            if let Some(conn) = self.take() {
                return Ok(Idle::Conn(conn));
            }
            if !self.opening.swap(true, Ordering::AcqRel) {
                return Ok(Idle::Open(Opening(Some(self.clone()))));
            }
            returned.await;
        }
    }

    /// Closes the idle connections and wakes every read waiting for one (to learn that the
    /// pool is closed).
    fn close(&self) {
        drop(std::mem::take(&mut *self.idle.lock().expect("reader pool poisoned")));
        self.returned.notify_waiters();
    }

    /// Has this thread keep `conn` for its inline reads of `pool`, if it keeps none yet;
    /// otherwise gives it back, for the idle list.
    fn keep(&self, pool: u64, conn: Conn, closing: &AtomicBool) -> Option<Conn> {
        let back = KEPT.with(|here| {
            // Borrowed only by a read inside a read's closure: that one gives it back.
            let Ok(mut here) = here.try_borrow_mut() else { return Some(conn) };
            // Closed pools' entries (their list let go of them), and this pool's when a
            // closure panicked on it.
            here.0.retain(|kept| {
                Arc::strong_count(kept) > 1 && (kept.pool != pool || kept.conn().is_some())
            });
            if here.0.iter().any(|kept| kept.pool == pool) {
                return Some(conn);
            }
            let mut all = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            // Set before `close_kept` takes this lock: a connection kept after that would
            // stay open until its thread ends.
            if closing.load(Ordering::Relaxed) {
                return Some(conn);
            }
            // Threads that ended (they closed theirs).
            all.retain(|kept| Arc::strong_count(kept) > 1);
            let kept = Arc::new(Kept { pool, conn: StdMutex::new(Some(conn)) });
            all.push(kept.clone());
            here.0.push(kept);
            None
        });
        // A read waiting for a connection on this thread can use this one now.
        if back.is_none() {
            self.returned.notify_waiters();
        }
        back
    }

    /// Closes the kept connections that are not in use; returns how many are (each is
    /// closed by its thread when its read ends).
    fn close_kept(&self) -> usize {
        let mut all = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|kept| match kept.conn.try_lock() {
            Ok(mut conn) => {
                drop(conn.take());
                false
            }
            Err(std::sync::TryLockError::Poisoned(conn)) => {
                drop(conn.into_inner().take());
                false
            }
            Err(std::sync::TryLockError::WouldBlock) => true,
        });
        all.len()
    }
}

/// Whether this thread keeps a connection for `pool` that is free.
fn keeps(pool: u64) -> bool {
    KEPT.with_borrow(|here| {
        here.0
            .iter()
            .any(|kept| kept.pool == pool && kept.conn.try_lock().is_ok_and(|conn| conn.is_some()))
    })
}

impl SqlitePool {
    pub(super) fn open(dsn: &Dsn, options: &DbOptions, live: Hub) -> Result<SqlitePool, DbError> {
        let DbOptions { readers, checkpoints, read_timeout, .. } = *options;
        static NEXT_POOL: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
        let target = match dsn {
            Dsn::SqliteFile(path) => {
                check_file(path)?;
                create_private(path)?;
                path.to_string_lossy().into_owned()
            }
            Dsn::Postgres(_) => unreachable!("a PostgreSQL DSN opens a PostgreSQL pool"),
            Dsn::SqliteMemory => {
                // Every connection must see the same in-memory database.
                format!("file:burrow-memory-{}-{id}?mode=memory&cache=shared", std::process::id())
            }
        };
        let writer = connect(&target, dsn, &live)?;
        if checkpoints == Checkpoints::External {
            writer
                .sqlite()
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
            readers: Arc::default(),
            reader_slots: Arc::new(Semaphore::new(readers.max(1))),
            read_timeout,
            closing: Box::leak(Box::default()),
            id,
            running: Arc::default(),
            speeds: Speeds::default(),
            live,
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
            let mode: String =
                conn.sqlite().query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
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
        let mut guard = self.writer.clone().lock_owned().await;
        let activity = self.activity.clone();
        let stop = self.stop(None);
        let speed = self.speeds.of::<F>();
        // Every 64 commits, look at the WAL: long readers can keep PASSIVE checkpoints
        // from reusing it; a RESTART waits for them and bounds its size. Writes are one at
        // a time, so the count cannot move under this lock.
        let wal = self.wal.clone().filter(|_| {
            (activity.commits.load(Ordering::Relaxed) + 1).is_multiple_of(WAL_CHECK_EVERY)
        });
        // A fast write runs here, as a fast read does (see `Speeds`); so does the look at
        // the WAL's size, but a RESTART may wait for readers, so it never does.
        if speed.is_fast() {
            let conn = guard.as_mut().ok_or(DbError::Closed)?;
            let result = run_under(conn, &stop, Some(&self.running), &speed, |c| {
                c.transaction("BEGIN IMMEDIATE", f)
            });
            activity.committed();
            if wal.is_some_and(|wal| wal_too_big(&wal)) {
                let restarted = tokio::task::spawn_blocking(move || {
                    if let Some(conn) = guard.as_ref() {
                        restart_wal(conn);
                    }
                });
                // The write is committed either way; a failed RESTART is tried again in 64.
                let _ = restarted.await;
            }
            return result;
        }
        let running = self.running.clone();
        tokio::task::spawn_blocking(move || {
            let conn = guard.as_mut().ok_or(DbError::Closed)?;
            let result = run_under(conn, &stop, Some(&running), &speed, |c| {
                c.transaction("BEGIN IMMEDIATE", f)
            });
            activity.committed();
            if wal.is_some_and(|wal| wal_too_big(&wal)) {
                restart_wal(conn);
            }
            result
        })
        .await
        .map_err(|e| DbError::Other(format!("write task failed: {e}")))?
    }

    /// A [`Stop`] for one closure; reads get a deadline.
    fn stop(&self, budget: Option<Duration>) -> Stop {
        Stop {
            cancelled: None,
            closing: self.closing,
            deadline: budget.map(|b| Instant::now() + b),
            budget,
        }
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
        let mut f = match self.read_now(f) {
            Ok(result) => return result,
            Err(f) => f,
        };
        let speed = self.speeds.of::<F>();
        // Held until this read is done, on the pool or inline (see `Speeds`); let go at
        // once if the run before settled it while this one waited.
        let _probe = match speed.on_probation() {
            true => {
                let probe = speed.probe.lock().await;
                speed.on_probation().then_some(probe)
            }
            false => None,
        };
        let permit =
            self.reader_slots.clone().acquire_owned().await.map_err(|_| DbError::Closed)?;
        let mut opener = None;
        if speed.is_fast() {
            match self.readers.for_inline(self.id, &self.reader_slots).await? {
                // In use only by a read inside a read's closure: this one goes to the pool.
                Idle::Kept => match self.read_kept(&speed, f) {
                    Ok(result) => return result,
                    Err(back) => f = back,
                },
                Idle::Conn(conn) => return self.read_inline(conn, &speed, f),
                Idle::Open(opening) => opener = Some(opening),
            }
        }
        let readers = self.readers.clone();
        let target = self.target.clone();
        let dsn = self.dsn.clone();
        let live = self.live.clone();
        let mut stop = self.stop(Some(self.read_timeout));
        let cancelled = stop.cancelled.insert(Arc::default()).clone();
        let running = self.running.clone();
        let speed = speed.clone();
        // Dropped with this future: a request that timed out or whose client left stops
        // its statement instead of leaving it running on a blocking thread.
        let mut cancel = CancelOnDrop(Some(cancelled));
        // The blocking task returns the connection to the pool itself: a cancelled request
        // must not close a pooled connection.
        let result = tokio::task::spawn_blocking(move || {
            let pooled = readers.take();
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&target, &dsn, &live)?,
            };
            let result = run_under(&conn, &stop, Some(&running), &speed, f);
            readers.put(conn);
            if let Some(opening) = opener {
                opening.done();
            }
            drop(permit);
            result
        })
        .await;
        cancel.0 = None;
        result.map_err(|e| DbError::Other(format!("read task failed: {e}")))?
    }

    /// Runs a read of a closure that has earned its place inline (see [`Speeds`]) here and
    /// now, on the connection this thread keeps ([`Kept`]), or when a reader slot and an
    /// idle connection are free at once: the common case, with no await.
    /// [`read`](Self::read)'s general path polls a future for each of these (the probe, the
    /// slot, the wait for a connection), which costs every read their code even when each
    /// is ready at once. `Err(f)` when one of them is not ready.
    fn read_now<T, F>(&self, f: F) -> Result<Result<T, DbError>, F>
    where
        F: FnOnce(&Conn) -> Result<T, DbError> + 'static,
    {
        let key = (self.id, TypeId::of::<F>());
        let cached = KNOWN_SPEEDS.with_borrow(|known| match known.get(&key) {
            Some(speed) => Ok(self.read_now_as(speed, f)),
            None => Err(f),
        });
        let f = match cached {
            Ok(ran) => return ran,
            Err(f) => f,
        };
        let Some(speed) = self.speeds.known::<F>() else { return Err(f) };
        KNOWN_SPEEDS.with(|known| {
            // Borrowed only if a closure running inline blocked on another read on this
            // thread: then this one is looked up in the pool's table again next time.
            if let Ok(mut known) = known.try_borrow_mut() {
                known.insert(key, speed.clone());
            }
        });
        self.read_now_as(&speed, f)
    }

    /// [`read_now`](Self::read_now) of a closure whose runs have shown `speed`.
    fn read_now_as<T, F>(&self, speed: &Speed, f: F) -> Result<Result<T, DbError>, F>
    where
        F: FnOnce(&Conn) -> Result<T, DbError>,
    {
        if !speed.is_fast() {
            return Err(f);
        }
        let f = match self.read_kept(speed, f) {
            Ok(ran) => return Ok(ran),
            Err(f) => f,
        };
        let Ok(_slot) = self.reader_slots.try_acquire() else { return Err(f) };
        let Some(conn) = self.readers.take() else { return Err(f) };
        Ok(self.read_inline(conn, speed, f))
    }

    /// Runs a read on the connection this thread keeps for this pool ([`Kept`]): no slot,
    /// no lock or count that another thread writes. `Err(f)` when the thread keeps none,
    /// or it is in use (by a read inside a read's closure) or closed.
    fn read_kept<T, F>(&self, speed: &Speed, f: F) -> Result<Result<T, DbError>, F>
    where
        F: FnOnce(&Conn) -> Result<T, DbError>,
    {
        KEPT.with_borrow(|here| {
            let Some(kept) = here.0.iter().find(|kept| kept.pool == self.id) else {
                return Err(f);
            };
            let Ok(mut slot) = kept.conn.try_lock() else { return Err(f) };
            let Some(conn) = slot.take() else { return Err(f) };
            // Out of its slot while it runs: a closure that panics drops it with the stack,
            // as on the pool, since it may be left in the middle of a statement.
            let stop = self.stop(Some(self.read_timeout));
            let result = run_under(&conn, &stop, None, speed, f);
            // Closing takes the kept connections that are not in use, and leaves this one
            // to its thread.
            if !self.closing.load(Ordering::Relaxed) {
                *slot = Some(conn);
            }
            Ok(result)
        })
    }

    /// Runs a read on this thread, on an idle connection that it then keeps ([`Kept`]) or
    /// gives back.
    fn read_inline<T>(
        &self,
        conn: Conn,
        speed: &Speed,
        f: impl FnOnce(&Conn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let stop = self.stop(Some(self.read_timeout));
        let result = run_under(&conn, &stop, Some(&self.running), speed, f);
        if let Some(conn) = self.readers.keep(self.id, conn, self.closing) {
            self.readers.put(conn);
        }
        result
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

    /// Stops every running statement, refuses new work and closes the connections, waiting
    /// at most `grace` for closures still running. Returns how many were still running
    /// when it gave up (they end with the process).
    pub(super) async fn close(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        self.closing.store(true, Ordering::Relaxed);
        self.reader_slots.close();
        self.readers.close();
        // Before the writer: the last connection to close checkpoints the WAL.
        let mut kept_busy = self.readers.close_kept();
        if let Ok(mut guard) = tokio::time::timeout_at(deadline, self.writer.lock()).await
            && let Some(writer) = guard.take()
        {
            // Lets SQLite refresh its query planner statistics, then closing the last
            // connection checkpoints the WAL into the main file.
            let closed = tokio::task::spawn_blocking(move || {
                let _ = writer.sqlite().execute_batch("PRAGMA optimize;");
                drop(writer);
            });
            let _ = tokio::time::timeout_at(deadline, closed).await;
        }
        // Interrupted statements end within a progress step; what is still running now
        // is stuck outside SQLite's virtual machine (e.g. waiting on a file lock).
        while self.running.load(Ordering::Relaxed) + kept_busy > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
            kept_busy = self.readers.close_kept();
        }
        self.running.load(Ordering::Relaxed) + kept_busy
    }
}

impl Drop for SqlitePool {
    /// A dropped pool's connections close although threads keep some ([`Kept`]); none is
    /// in use, as a read borrows the pool.
    fn drop(&mut self) {
        self.readers.close_kept();
    }
}

/// The idle checkpoint: a TRUNCATE that waits at most [`IDLE_CHECKPOINT_WAIT`] for
/// readers still using the WAL (e.g. `server backup` or `sqlite3 .backup` holding a
/// snapshot) instead of the connection's busy_timeout, since every write waits behind it.
/// True only when it completed (SQLite reports `busy` = 1 in the first column otherwise,
/// without an error): a busy checkpoint is tried again on the next tick, so the -wal file
/// is emptied once the reader is done rather than left full until the next write.
fn truncate_wal(conn: &Conn) -> bool {
    let _ = conn.sqlite().busy_timeout(IDLE_CHECKPOINT_WAIT);
    let done = conn
        .sqlite()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|busy| busy == 0);
    let _ = conn.sqlite().busy_timeout(BUSY_TIMEOUT);
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

/// SQLite's process-wide settings, made once before burrow opens its first connection
/// (SQLite takes them only before it initializes; if code outside burrow opened a
/// connection first, SQLite keeps its defaults).
pub(crate) fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` with each option's documented argument; SQLite copies
        // the methods, and refuses (SQLITE_MISUSE) once initialized.
        unsafe {
            // No memory statistics (nothing in burrow reads them): keeping them takes one
            // process-wide mutex on every allocation and free, which the workers' reads
            // would take turns on.
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
            // No page cache allocated ahead: by default each connection takes room for 20
            // pages at once (87 KiB, written through as SQLite links its slots), however
            // few it ever caches; the pages a connection uses are allocated one by one.
            let no_memory: *mut std::ffi::c_void = std::ptr::null_mut();
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_PAGECACHE, no_memory, 0, 0);
            #[cfg(feature = "mimalloc")]
            {
                let methods = crate::allocator::sqlite_methods();
                rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MALLOC, &methods);
            }
        }
    });
}

fn connect(target: &str, dsn: &Dsn, live: &Hub) -> Result<Conn, DbError> {
    configure_sqlite();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(target, flags)
        .map_err(|e| DbError::Setup(format!("cannot open database {dsn}: {e}")))?;
    conn.execute_batch(PRAGMAS)
        .map_err(|e| DbError::Setup(format!("cannot configure database {dsn}: {e}")))?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.progress_handler(PROGRESS_STEPS, Some(stop_requested))
        .map_err(|e| DbError::Setup(format!("cannot configure database {dsn}: {e}")))?;
    Ok(Conn::new(Inner::Sqlite(conn), live.clone()))
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
            "database directory {} is not writable by this user; SQLite needs to create {}-wal \
             and {}-shm beside the database",
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

/// SQLite's borrowed column value converted to `T`: text and bytes copied once, into `T`.
#[inline]
pub(super) fn convert<T: super::FromValue>(value: ValueRef<'_>) -> Result<T, String> {
    T::from_value_ref(match value {
        ValueRef::Null => super::ValueRef::Null,
        ValueRef::Integer(i) => super::ValueRef::Integer(i),
        ValueRef::Real(f) => super::ValueRef::Real(f),
        // SQLite does not check that text is UTF-8; what is not goes to `from_value`
        // with each invalid sequence replaced, as an owned value.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(text) => super::ValueRef::Text(text),
            Err(_) => return T::from_value(lossy(t)),
        },
        ValueRef::Blob(b) => super::ValueRef::Blob(b),
    })
}

/// Text that is not UTF-8 with each invalid sequence replaced: apart, as it is rare, so
/// that [`convert`] stays small enough to be inlined where rows are read.
#[cold]
#[inline(never)]
fn lossy(text: &[u8]) -> Value {
    Value::Text(String::from_utf8_lossy(text).into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    /// Counts forever: a statement that only stops when it is told to.
    const ENDLESS: &str =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

    fn memory_db(readers: usize, read_timeout: Duration) -> Db {
        let options = DbOptions { readers, read_timeout, ..DbOptions::default() };
        Db::open_with(&Dsn::SqliteMemory, &options).unwrap()
    }

    /// Every SQLite connection in this test binary is opened after `configure_sqlite`
    /// (burrow's own and the tests' helpers), so SQLite took the settings.
    #[test]
    fn sqlite_allocates_with_mimalloc_and_keeps_no_memory_statistics() {
        use rusqlite::ffi;
        let _db = memory_db(1, Duration::from_secs(1));
        // SAFETY: a block from sqlite3_malloc, freed with sqlite3_free.
        unsafe {
            let used = ffi::sqlite3_memory_used();
            let block = ffi::sqlite3_malloc(1 << 20);
            assert!(!block.is_null());
            #[cfg(feature = "mimalloc")]
            {
                unsafe extern "C" {
                    fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
                }
                assert!(mi_is_in_heap_region(block), "SQLite's block is not mimalloc's");
            }
            assert_eq!(ffi::sqlite3_memory_used(), used, "SQLite counted the allocation");
            ffi::sqlite3_free(block);
        }
    }

    /// A thread gets back the reader it used last, whatever the order in which the
    /// connections went back to the pool; a thread that used none gets the last one back.
    #[test]
    fn each_thread_reads_again_through_the_connection_it_used_last() {
        let (dsn, live) = (Dsn::SqliteMemory, Hub::default());
        let target = "file:affinity?mode=memory&cache=shared";
        let readers = Readers::default();
        readers.put(connect(target, &dsn, &live).unwrap());
        readers.put(connect(target, &dsn, &live).unwrap());
        let mine = readers.take().unwrap();
        let theirs = std::thread::scope(|s| s.spawn(|| readers.take().unwrap()).join().unwrap());
        let (my_id, their_id) = (reader_id(&mine), reader_id(&theirs));
        assert_ne!(my_id, their_id);
        // Theirs goes back last, on top of mine.
        readers.put(mine);
        readers.put(theirs);
        let again = readers.take().unwrap();
        assert_eq!(reader_id(&again), my_id, "this thread got another thread's reader");
        readers.put(again);
        let fresh =
            std::thread::scope(|s| s.spawn(|| reader_id(&readers.take().unwrap())).join().unwrap());
        assert_eq!(fresh, my_id, "a new thread did not get the reader that went back last");
    }

    #[tokio::test]
    async fn a_read_past_its_budget_is_interrupted() {
        let db = memory_db(1, Duration::from_millis(100));
        let started = Instant::now();
        let err = db.read(|c| c.query_one::<(i64,)>(ENDLESS, &[])).await.unwrap_err();
        assert!(matches!(err, DbError::Timeout(_)), "{err:?}");
        assert!(err.to_string().contains("--database-read-timeout"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        // The reader is back in the pool and usable.
        let (one,): (i64,) = db.read(|c| c.query_one("SELECT 1", &[])).await.unwrap();
        assert_eq!(one, 1);
    }

    #[tokio::test]
    async fn a_read_that_was_fast_runs_inline_until_it_is_slow() {
        let db = memory_db(2, Duration::from_secs(10));
        // One closure type for every call; `slow` makes a run slow.
        let on = |slow: bool| {
            db.read(move |c| {
                if slow {
                    std::thread::sleep(INLINE_MAX * 2);
                }
                c.query_one::<(i64,)>("SELECT 1", &[])?;
                Ok(std::thread::current().id())
            })
        };
        let here = std::thread::current().id();
        for run in 0..INLINE_AT {
            assert_ne!(on(false).await.unwrap(), here, "run {run} goes to the blocking pool");
        }
        assert_eq!(on(false).await.unwrap(), here, "fast enough: inline");
        assert_eq!(on(true).await.unwrap(), here, "still inline: it was fast so far");
        assert_ne!(on(false).await.unwrap(), here, "it was slow: back to the pool");
        // Another closure type has a count of its own.
        let other = db.read(|_| Ok(std::thread::current().id())).await.unwrap();
        assert_ne!(other, here);

        // Writes too, one at a time.
        let write = || {
            db.write(|c| {
                c.execute("CREATE TABLE IF NOT EXISTS t(x)", &[])?;
                c.execute("INSERT INTO t VALUES (1)", &[])?;
                Ok(std::thread::current().id())
            })
        };
        for run in 0..INLINE_AT {
            assert_ne!(write().await.unwrap(), here, "write {run} goes to the blocking pool");
        }
        // A write preempted past `INLINE_MAX` on a busy machine (CI's two cores) costs the
        // credit a fast one earned: a few more fast writes earn it back.
        let mut writes = INLINE_AT;
        while write().await.unwrap() != here {
            writes += 1;
            assert!(writes < 4 * INLINE_AT, "{writes} fast writes and none ran inline");
        }
        let rows = db.read(|c| c.query_one::<(i64,)>("SELECT count(*) FROM t", &[])).await;
        assert_eq!(rows.unwrap().0, i64::from(writes) + 1);
    }

    /// A closure's speed is learnt per pool: one that runs inline on one pool goes to the
    /// blocking pool on a new one, although this thread knows its speed on the first
    /// ([`KNOWN_SPEEDS`]).
    #[tokio::test]
    async fn a_closure_fast_on_one_pool_starts_over_on_another() {
        // One closure type for every call, whichever the pool.
        async fn read(db: &Db) -> std::thread::ThreadId {
            let ran_on = db.read(|c| {
                c.query_one::<(i64,)>("SELECT 1", &[])?;
                Ok(std::thread::current().id())
            });
            ran_on.await.unwrap()
        }
        let (first, second) =
            (memory_db(2, Duration::from_secs(10)), memory_db(2, Duration::from_secs(10)));
        let here = std::thread::current().id();
        // A run preempted past `INLINE_MAX` on a busy machine costs credit: a few more earn it.
        let mut runs = 0;
        while read(&first).await != here {
            runs += 1;
            assert!(runs < 4 * INLINE_AT, "{runs} fast reads and none ran inline");
        }
        // Another closure opens the new pool's reader: one would be idle for an inline run.
        second.read(|c| c.query_one::<(i64,)>("SELECT 2", &[])).await.unwrap();
        assert_ne!(read(&second).await, here, "the new pool ran it inline at once");
    }

    /// Reads arriving together once their closure runs inline, and finding no idle
    /// connection, open one or two more, not one each (on a blocking thread each).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_fast_reads_opens_few_connections() {
        let db = memory_db(32, Duration::from_secs(10));
        let super::super::Pool::Sqlite(pool) = &db.pool else { unreachable!() };
        let read = |db: Db| async move {
            db.read(|c| {
                // A query that takes a while, but well within `INLINE_MAX`.
                std::thread::sleep(Duration::from_micros(50));
                c.query_one::<(i64,)>("SELECT 1", &[])
            })
            .await
        };
        // Full credit: a run preempted on a loaded machine does not send it to the pool.
        for _ in 0..CREDIT_MAX {
            read(db.clone()).await.unwrap();
        }
        // The idle connections there are stay busy (as while both workers run reads); the
        // one this thread keeps is of no use to the workers.
        let busy = std::mem::take(&mut *pool.readers.idle.lock().unwrap());
        let kept_before = pool.readers.kept.lock().unwrap().len();
        let reads: Vec<_> = (0..64).map(|_| tokio::spawn(read(db.clone()))).collect();
        for read in reads {
            // A connection that went back without telling a waiting read leaves it waiting.
            let read = tokio::time::timeout(Duration::from_secs(30), read).await;
            assert_eq!(read.expect("a read waited 30 s for a connection").unwrap().unwrap(), (1,));
        }
        let opened = pool.readers.idle.lock().unwrap().len()
            + pool.readers.kept.lock().unwrap().len()
            - kept_before;
        assert!(opened <= 3, "64 reads opened {opened} connections, on two worker threads");
        pool.readers.idle.lock().unwrap().extend(busy);
    }

    /// Reads one closure type until it runs inline on this thread; `Ok` holds the handle
    /// of the connection it ran on, `panic` makes the closure panic.
    async fn read_inline_here(db: &Db, panic: bool) -> Result<usize, DbError> {
        let here = std::thread::current().id();
        let mut runs = 0;
        loop {
            let (thread, conn) = db
                .read(move |c| {
                    assert!(!panic, "the closure panics");
                    c.query_one::<(i64,)>("SELECT 1", &[])?;
                    Ok((std::thread::current().id(), reader_id(c)))
                })
                .await?;
            if thread == here {
                return Ok(conn);
            }
            // A run preempted past `INLINE_MAX` on a busy machine costs credit: a few more
            // earn it.
            runs += 1;
            assert!(runs < 4 * INLINE_AT, "{runs} fast reads and none ran inline");
        }
    }

    /// Asserts that this thread's inline reads run on the connection it keeps, with no
    /// reader slot or idle connection free, and on the same one each time.
    async fn reads_inline_without_the_pool(db: &Db) {
        let super::super::Pool::Sqlite(pool) = &db.pool else { unreachable!() };
        let _slot = pool.reader_slots.try_acquire().expect("a slot is free");
        assert_eq!(pool.reader_slots.available_permits(), 0, "a pool of one reader");
        let idle = std::mem::take(&mut *pool.readers.idle.lock().unwrap());
        let mut conns = Vec::new();
        for _ in 0..3 {
            let read = tokio::time::timeout(Duration::from_secs(5), read_inline_here(db, false));
            conns.push(read.await.expect("an inline read waited for the pool's slot").unwrap());
        }
        assert!(conns.iter().all(|&conn| conn == conns[0]), "reads ran on two connections");
        pool.readers.idle.lock().unwrap().extend(idle);
    }

    /// What [`Kept`] connections the pool knows of: whether each is open.
    fn kept_open(db: &Db) -> Vec<bool> {
        let super::super::Pool::Sqlite(pool) = &db.pool else { unreachable!() };
        pool.readers.kept.lock().unwrap().iter().map(|kept| kept.conn().is_some()).collect()
    }

    #[tokio::test]
    async fn a_thread_reads_inline_through_the_connection_it_keeps() {
        let db = memory_db(1, Duration::from_secs(10));
        read_inline_here(&db, false).await.unwrap();
        assert_eq!(kept_open(&db), [true], "this thread keeps one");
        reads_inline_without_the_pool(&db).await;
    }

    /// A closure that panics on a kept connection takes it down with it, as on the pool
    /// (it may be in the middle of a statement); the thread then keeps another.
    #[tokio::test]
    async fn a_panic_on_a_kept_connection_closes_it() {
        let db = memory_db(1, Duration::from_secs(10));
        read_inline_here(&db, false).await.unwrap();
        let panicked = tokio::spawn({
            let db = db.clone();
            async move { read_inline_here(&db, true).await }
        });
        assert!(panicked.await.unwrap_err().is_panic());
        assert_eq!(kept_open(&db), [false], "the connection stayed open");
        read_inline_here(&db, false).await.unwrap();
        assert_eq!(kept_open(&db), [true], "the thread keeps none again");
        reads_inline_without_the_pool(&db).await;
    }

    /// Closing the pool closes the connections threads keep, also that of a thread that
    /// stays: the writer then closes last, and SQLite removes the WAL. A thread that ends
    /// closes its own.
    #[tokio::test]
    async fn closing_the_pool_closes_the_connections_threads_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let setup = Connection::open(&path).unwrap();
        setup.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(x);").unwrap();
        drop(setup);
        let options = DbOptions { readers: 4, ..DbOptions::default() };
        let db = Db::open_with(&Dsn::SqliteFile(path.clone()), &options).unwrap();
        let super::super::Pool::Sqlite(pool) = &db.pool else { unreachable!() };
        db.write(|c| c.execute("INSERT INTO t VALUES (1)", &[])).await.unwrap();
        read_inline_here(&db, false).await.unwrap();

        let on_thread = |db: Db, stay: Option<std::sync::mpsc::Receiver<()>>| {
            let (read, reads) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                read.send(runtime.block_on(read_inline_here(&db, false)).unwrap()).unwrap();
                if let Some(stay) = stay {
                    let _ = stay.recv();
                }
            });
            reads.recv().unwrap();
            thread
        };
        on_thread(db.clone(), None).join().unwrap();
        assert_eq!(kept_open(&db), [true, false], "the thread that ended left its connection open");
        let (leave, stay) = std::sync::mpsc::channel();
        let staying = on_thread(db.clone(), Some(stay));
        // The ended thread's entry went when this one's came.
        assert_eq!(kept_open(&db), [true, true]);

        let wal = super::super::sidecar(&path, "-wal");
        assert!(wal.exists());
        assert_eq!(db.close(Duration::from_secs(10)).await, 0);
        assert!(pool.readers.kept.lock().unwrap().is_empty());
        assert!(!wal.exists(), "a connection was still open when the writer closed");
        let read = db.read(|c| c.query_one::<(i64,)>("SELECT 1", &[])).await;
        assert!(matches!(read, Err(DbError::Closed)), "{read:?}");
        leave.send(()).unwrap();
        staying.join().unwrap();
    }

    #[test]
    fn a_fast_closure_keeps_its_place_inline_through_two_slow_runs() {
        let fast = INLINE_MAX / 2;
        let blip = INLINE_MAX * 2;
        let speed = Speed::default();
        for _ in 0..INLINE_AT {
            assert!(!speed.is_fast() && speed.on_probation());
            speed.record(fast);
        }
        assert!(speed.is_fast() && !speed.on_probation(), "four fast runs: inline");
        speed.record(blip);
        assert!(!speed.is_fast(), "no credit to spare yet: back to the pool");
        assert!(!speed.on_probation(), "it was slow once: its reads no longer take turns");

        for _ in 0..2 * CREDIT_MAX {
            speed.record(fast);
        }
        speed.record(blip);
        speed.record(blip);
        assert!(speed.is_fast(), "preempted twice among many fast runs: still inline");
        speed.record(blip);
        assert!(!speed.is_fast(), "three in a row: back to the pool");
        for _ in 0..INLINE_AT {
            speed.record(fast);
        }
        assert!(speed.is_fast(), "four fast runs bring it back");

        for _ in 0..CREDIT_MAX {
            speed.record(fast);
        }
        speed.record(SLOW);
        assert!(!speed.is_fast(), "one run of SLOW costs all of the credit");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_closures_reads_take_turns_until_one_is_slow() {
        let db = memory_db(4, Duration::from_secs(10));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(StdMutex::new(wait));
        let (started, inside) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // One closure type: the first run waits for `release`; the others return whether
        // another of them was running at the same time (each waits up to 5 s for one).
        let read = |first: bool| {
            let (wait, started, inside) = (wait.clone(), started.clone(), inside.clone());
            let db = db.clone();
            tokio::spawn(async move {
                db.read(move |_| {
                    started.fetch_add(1, Ordering::SeqCst);
                    if first {
                        wait.lock().unwrap().recv().unwrap();
                        return Ok(false);
                    }
                    inside.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while inside.load(Ordering::SeqCst) < 2 {
                        if Instant::now() > deadline {
                            return Ok(false);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(true)
                })
                .await
            })
        };
        let first = read(true);
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (second, third) = (read(false), read(false));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1, "the others wait for the first");

        // The first run took 200 ms: slow, so the two waiting run side by side.
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert!(second.await.unwrap().unwrap(), "the second ran beside the third");
        assert!(third.await.unwrap().unwrap(), "the third ran beside the second");
    }

    /// The progress handler stops a closure's statements through the `Stop` it runs
    /// under, and only while it runs: afterwards, and after a panic, statements on the
    /// same thread and connection run to the end again.
    #[test]
    fn a_closures_stop_is_watched_while_it_runs_and_no_longer() {
        let (dsn, live) = (Dsn::SqliteMemory, Hub::default());
        let conn = connect("file:watched?mode=memory&cache=shared", &dsn, &live).unwrap();
        let (running, speed) = (AtomicUsize::new(0), Speed::default());
        static OPEN: AtomicBool = AtomicBool::new(false);
        let stop = Stop {
            cancelled: Some(Arc::new(AtomicBool::new(true))),
            closing: &OPEN,
            deadline: None,
            budget: None,
        };
        // Far more than PROGRESS_STEPS virtual-machine steps: the handler is asked.
        const LONG: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                            WHERE x < 100000) SELECT count(*) FROM c";
        let stopped =
            run_under(&conn, &stop, Some(&running), &speed, |c| c.query_one::<i64>(LONG, &[]));
        assert!(matches!(stopped, Err(DbError::Interrupted)), "{stopped:?}");
        assert_eq!(conn.query_one::<i64>(LONG, &[]).unwrap(), 100_000, "the Stop stayed");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_under(&conn, &stop, Some(&running), &speed, |_| -> Result<(), DbError> {
                panic!("the closure panics")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(conn.query_one::<i64>(LONG, &[]).unwrap(), 100_000, "kept after a panic");
        assert_eq!(running.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn dropping_a_read_stops_its_statement_and_frees_the_reader() {
        // One reader and no useful budget: only the cancellation can free it.
        let db = memory_db(1, Duration::from_secs(3600));
        let endless = db.read(|c| c.query_one::<(i64,)>(ENDLESS, &[]));
        assert!(tokio::time::timeout(Duration::from_millis(100), endless).await.is_err());
        let next = db.read(|c| c.query_one::<(i64,)>("SELECT 2", &[]));
        let (two,) = tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("the reader was freed when the first read was dropped")
            .unwrap();
        assert_eq!(two, 2);
    }

    #[tokio::test]
    async fn closing_interrupts_running_work_and_reports_nothing_abandoned() {
        let db = memory_db(2, Duration::from_secs(3600));
        let reader = tokio::spawn({
            let db = db.clone();
            async move { db.read(|c| c.query_one::<(i64,)>(ENDLESS, &[])).await }
        });
        let writer = tokio::spawn({
            let db = db.clone();
            async move { db.write(|c| c.query_one::<(i64,)>(ENDLESS, &[])).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let abandoned = db.close(Duration::from_secs(10)).await;
        assert_eq!(abandoned, 0);
        assert!(matches!(reader.await.unwrap(), Err(DbError::Interrupted)));
        assert!(matches!(writer.await.unwrap(), Err(DbError::Interrupted)));
        assert!(matches!(
            db.read(|c| c.query_one::<(i64,)>("SELECT 1", &[])).await,
            Err(DbError::Closed)
        ));
    }

    #[tokio::test]
    async fn work_outside_sqlite_is_abandoned_after_the_grace() {
        let db = memory_db(1, Duration::from_secs(3600));
        let stuck = tokio::spawn({
            let db = db.clone();
            // Not in a statement: nothing can interrupt it.
            async move {
                db.read(|_| {
                    std::thread::sleep(Duration::from_secs(2));
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        assert_eq!(db.close(Duration::from_millis(100)).await, 1, "one closure still running");
        assert!(started.elapsed() < Duration::from_secs(1), "close waited {:?}", started.elapsed());
        assert!(stuck.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_write_whose_caller_went_away_still_commits() {
        let db = memory_db(1, Duration::from_secs(3600));
        db.write(|c| c.execute_batch("CREATE TABLE t(x)")).await.unwrap();
        let slow = db.write(|c| {
            std::thread::sleep(Duration::from_millis(200));
            c.execute("INSERT INTO t VALUES (1)", &[])
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), slow).await.is_err());
        // Queued behind the dropped write, so it sees its commit.
        let (n,): (i64,) = db.write(|c| c.query_one("SELECT count(*) FROM t", &[])).await.unwrap();
        assert_eq!(n, 1);
    }
}
