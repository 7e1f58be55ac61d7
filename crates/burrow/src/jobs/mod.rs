//! Background jobs: typed work that runs after the request that asked for it, in this
//! process or any other sharing the database, and that survives restarts, crashes and
//! reloads.
//!
//! An app declares a job type (a serde payload and an async handler) and registers it in
//! its [`App::jobs`](crate::App::jobs) hook; handlers and commands enqueue with
//! [`Jobs`] (`ctx.jobs`, or the `Jobs` extractor). The `jobs` contrib app
//! ([`contrib::jobs::JobsApp`](crate::contrib::jobs::JobsApp)) owns the `_jobs` table,
//! the workers, the periodic scheduler and the `server jobs …` commands.
//!
//! ```no_run
//! use burrow::jobs::{Job, JobContext, JobOptions, JobRegistry};
//! use burrow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Welcome {
//!     user_id: i64,
//! }
//!
//! impl Job for Welcome {
//!     const TYPE: &'static str = "shop.welcome";
//!
//!     fn options() -> JobOptions {
//!         JobOptions::new().max_attempts(3)
//!     }
//!
//!     async fn run(self, cx: JobContext) -> Result<(), BoxError> {
//!         let id = self.user_id;
//!         cx.app.db.write(move |c| c.execute("UPDATE users SET welcomed = 1 WHERE id = ?", params![id])).await?;
//!         Ok(())
//!     }
//! }
//!
//! struct Shop;
//! impl App for Shop {
//!     fn name(&self) -> &'static str {
//!         "shop"
//!     }
//!     fn dependencies(&self) -> &'static [&'static str] {
//!         &["jobs"]
//!     }
//!     fn jobs(&self, jobs: &mut JobRegistry) {
//!         jobs.register::<Welcome>();
//!     }
//! }
//!
//! // In a handler: the job exists once this returns.
//! async fn signed_up(jobs: burrow::jobs::Jobs) -> Result<&'static str> {
//!     jobs.enqueue(Welcome { user_id: 7 }).await?;
//!     Ok("Welcome!")
//! }
//! ```
//!
//! Delivery is *at least once*: a job whose process is killed (`kill -9`, power loss) while
//! it runs is run again once its lease expires. A handler should therefore be idempotent;
//! [`JobContext::idempotency_key`] is a key stable across the attempts of one job, e.g. for
//! a `UNIQUE` column or a mail's `Message-ID`. A SIGHUP hand-over or a SIGTERM never runs a
//! completed job again and never loses one (docs/guide/jobs.md).

pub use cron::Cron;
pub use queue::{JobInfo, JobStatus, Stats};

pub(crate) mod queue;
pub(crate) mod runner;

mod cron;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{AppContext, BoxError, BoxFuture};
use crate::db::{Conn, Db, DbError};

/// A kind of background work: the payload it carries (serialized as JSON in the queue)
/// and what runs it.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// Its name in the queue: unique across apps (prefix it with the app's name, e.g.
    /// `notes.export`) and stable across versions, since queued jobs outlive a deploy.
    const TYPE: &'static str;

    /// Attempts, backoff, timeout, priority and queue of every job of this type.
    fn options() -> JobOptions {
        JobOptions::new()
    }

    /// Does the work. An `Err` (or a panic, or running past the timeout) fails this
    /// attempt; it is retried with exponential backoff until its attempts run out, then
    /// it is `dead`.
    fn run(self, cx: JobContext) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Called once when the job is `dead` because its last attempt failed (an error, a
    /// panic or its timeout), with that attempt's error: to mark what it worked on as
    /// failed, or tell someone. Not called when the process running the last attempt died
    /// (the job is found dead when its lease expires), nor for a job cancelled by hand.
    fn on_dead(self, cx: JobContext, error: String) -> impl Future<Output = ()> + Send {
        let _ = (cx, error);
        async {}
    }
}

/// Per-type options of a [`Job`].
#[derive(Clone, Debug)]
pub struct JobOptions {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Option<Duration>,
    pub(crate) timeout: Duration,
    pub(crate) priority: i32,
    pub(crate) queue: &'static str,
}

impl Default for JobOptions {
    fn default() -> JobOptions {
        JobOptions::new()
    }
}

impl JobOptions {
    /// 5 attempts, backoff from `--jobs-retry-base-delay`, a 5-minute timeout, priority 0,
    /// queue `default`.
    pub const fn new() -> JobOptions {
        JobOptions {
            max_attempts: 5,
            backoff: None,
            timeout: Duration::from_secs(300),
            priority: 0,
            queue: "default",
        }
    }

    /// Attempts before the job is `dead` (at least 1).
    pub const fn max_attempts(mut self, n: u32) -> JobOptions {
        self.max_attempts = if n == 0 { 1 } else { n };
        self
    }

    /// The pause before the first retry, doubled for each further one (instead of
    /// `--jobs-retry-base-delay`).
    pub const fn backoff(mut self, base: Duration) -> JobOptions {
        self.backoff = Some(base);
        self
    }

    /// How long one attempt may run before it is cancelled and counted as failed.
    pub const fn timeout(mut self, timeout: Duration) -> JobOptions {
        self.timeout = timeout;
        self
    }

    /// Higher runs first among jobs that are due.
    pub const fn priority(mut self, priority: i32) -> JobOptions {
        self.priority = priority;
        self
    }

    /// The queue it waits in (`--jobs-queues` chooses which ones a process works).
    pub const fn queue(mut self, queue: &'static str) -> JobOptions {
        self.queue = queue;
        self
    }
}

type Handler = dyn Fn(&str, JobContext) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync;
type DeadHandler = dyn Fn(&str, JobContext, String) -> BoxFuture<'static, ()> + Send + Sync;

/// A registered job type: its options and its handlers, which decode the payload.
pub(crate) struct JobType {
    pub(crate) options: JobOptions,
    pub(crate) run: Arc<Handler>,
    pub(crate) on_dead: Arc<DeadHandler>,
}

/// When a periodic job is due.
#[derive(Clone, Debug)]
pub(crate) enum Schedule {
    /// Every interval, counted from the Unix epoch, so every process agrees on the slots.
    Every(Duration),
    Cron(Cron),
}

impl Schedule {
    /// The first slot strictly after `now` (Unix milliseconds).
    pub(crate) fn next_after(&self, now: i64) -> Option<i64> {
        match self {
            Schedule::Every(interval) => {
                let step = (interval.as_millis() as i64).max(1000);
                Some((now.div_euclid(step) + 1) * step)
            }
            Schedule::Cron(cron) => cron.next_after(now.div_euclid(1000)).map(|s| s * 1000),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}s", d.as_secs_f64()),
            Schedule::Cron(c) => write!(f, "cron '{c}'"),
        }
    }
}

/// A job enqueued on a schedule, once per slot across every process.
#[derive(Clone, Debug)]
pub(crate) struct Periodic {
    pub(crate) job_type: &'static str,
    pub(crate) payload: String,
    pub(crate) schedule: Schedule,
}

/// The job types and periodic jobs of every app, collected at start-up from
/// [`App::jobs`](crate::App::jobs).
#[derive(Default)]
pub struct JobRegistry {
    pub(crate) types: BTreeMap<&'static str, JobType>,
    pub(crate) periodic: Vec<Periodic>,
    /// Mistakes found while registering, reported at start-up (exit code 2).
    pub(crate) errors: Vec<String>,
}

impl JobRegistry {
    /// Registers job type `J`.
    pub fn register<J: Job>(&mut self) -> &mut JobRegistry {
        if self.types.contains_key(J::TYPE) {
            self.errors.push(format!("job type '{}' is registered twice", J::TYPE));
            return self;
        }
        let run: Arc<Handler> = Arc::new(|payload, cx| {
            let job: Result<J, _> = serde_json::from_str(payload);
            Box::pin(async move {
                let job = job.map_err(|e| format!("payload does not decode: {e}"))?;
                job.run(cx).await
            })
        });
        let on_dead: Arc<DeadHandler> = Arc::new(|payload, cx, error| {
            let job: Result<J, _> = serde_json::from_str(payload);
            Box::pin(async move {
                // A payload that does not decode failed every attempt for that reason.
                if let Ok(job) = job {
                    job.on_dead(cx, error).await;
                }
            })
        });
        self.types.insert(J::TYPE, JobType { options: J::options(), run, on_dead });
        self
    }

    /// Enqueues `job` every `interval` (slots counted from the Unix epoch, e.g. every
    /// hour on the hour), once per slot however many processes run. Registers `J` if it
    /// is not yet.
    pub fn every<J: Job>(&mut self, interval: Duration, job: J) -> &mut JobRegistry {
        if interval < Duration::from_secs(1) {
            self.errors.push(format!("periodic job '{}': interval under 1 s", J::TYPE));
            return self;
        }
        self.periodic_job(Schedule::Every(interval), job)
    }

    /// Enqueues `job` when the five-field cron expression `spec` fires (UTC), once per
    /// firing however many processes run. Registers `J` if it is not yet.
    pub fn cron<J: Job>(&mut self, spec: &str, job: J) -> &mut JobRegistry {
        match Cron::parse(spec) {
            Ok(cron) => self.periodic_job(Schedule::Cron(cron), job),
            Err(e) => {
                self.errors.push(format!("periodic job '{}': {e}", J::TYPE));
                self
            }
        }
    }

    fn periodic_job<J: Job>(&mut self, schedule: Schedule, job: J) -> &mut JobRegistry {
        if !self.types.contains_key(J::TYPE) {
            self.register::<J>();
        }
        match serde_json::to_string(&job) {
            Ok(payload) => self.periodic.push(Periodic { job_type: J::TYPE, payload, schedule }),
            Err(e) => self.errors.push(format!("periodic job '{}': {e}", J::TYPE)),
        }
        self
    }

    /// The registered type names, sorted.
    pub fn type_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.keys().copied()
    }
}

/// Why a job was not enqueued.
#[derive(Debug)]
pub enum JobError {
    /// The `jobs` app is not registered with the server.
    NotInstalled,
    /// No app registered this job type.
    Unregistered(&'static str),
    /// The payload does not serialize to JSON.
    Payload(String),
    Db(DbError),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::NotInstalled => {
                f.write_str("background jobs are off: the server has no `jobs` app")
            }
            JobError::Unregistered(t) => {
                write!(f, "job type '{t}' is not registered (App::jobs → JobRegistry::register)")
            }
            JobError::Payload(e) => write!(f, "job payload does not serialize: {e}"),
            JobError::Db(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JobError {}

/// For enqueuing inside `db.write(|c| …)`, whose closure returns `DbError`.
impl From<JobError> for DbError {
    fn from(e: JobError) -> DbError {
        match e {
            JobError::Db(e) => e,
            other => DbError::Other(other.to_string()),
        }
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> JobError {
        JobError::Db(e)
    }
}

/// The queue: enqueues jobs of registered types. Cheap to clone; `ctx.jobs` in hooks and
/// commands, an extractor in handlers.
#[derive(Clone)]
pub struct Jobs(pub(crate) Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) registry: JobRegistry,
    pub(crate) db: Db,
    /// Wakes this process's workers when a job is enqueued here.
    pub(crate) wake: Notify,
    pub(crate) installed: bool,
    /// The queue is in a database of its own (`--jobs-database`).
    pub(crate) separate: bool,
    /// Jobs of committed transactions still being enqueued in that database, and the
    /// signal that their number went down.
    in_flight: std::sync::atomic::AtomicUsize,
    landed: Notify,
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<_> = self.0.registry.type_names().collect();
        f.debug_struct("Jobs").field("installed", &self.0.installed).field("types", &types).finish()
    }
}

/// A handler argument: the server's queue (`jobs: Jobs`).
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Jobs {
    type Rejection = crate::Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Jobs, Self::Rejection> {
        let jobs = crate::http::Services::of(&parts.extensions).and_then(|s| s.jobs.clone());
        jobs.ok_or_else(|| crate::Error::internal("the job queue is not installed on this router"))
    }
}

impl Jobs {
    pub(crate) fn new(registry: JobRegistry, db: Db, installed: bool, separate: bool) -> Jobs {
        Jobs(Arc::new(Shared {
            registry,
            db,
            wake: Notify::new(),
            installed,
            separate,
            in_flight: Default::default(),
            landed: Notify::new(),
        }))
    }

    /// The database the queue is in.
    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    /// Whether the `jobs` app is installed (enqueuing fails without it).
    pub fn is_installed(&self) -> bool {
        self.0.installed
    }

    /// Whether a job type is registered.
    pub fn is_registered(&self, job_type: &str) -> bool {
        self.0.registry.types.contains_key(job_type)
    }

    /// `job`, checked and serialized, due now with its type's options; adjust it with
    /// [`NewJob`]'s methods, then [`submit`](Jobs::submit) it or [`insert`](Jobs::insert)
    /// it inside a write transaction.
    pub fn job<J: Job>(&self, job: &J) -> Result<NewJob, JobError> {
        if !self.0.installed {
            return Err(JobError::NotInstalled);
        }
        let Some(ty) = self.0.registry.types.get(J::TYPE) else {
            return Err(JobError::Unregistered(J::TYPE));
        };
        let payload = serde_json::to_string(job).map_err(|e| JobError::Payload(e.to_string()))?;
        Ok(NewJob {
            job_type: J::TYPE,
            payload,
            run_at: None,
            priority: ty.options.priority,
            queue: ty.options.queue,
            max_attempts: ty.options.max_attempts,
            unique_key: None,
        })
    }

    /// Enqueues `job`, due now.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<i64, JobError> {
        self.submit_one(self.job(&job)?).await
    }

    /// Enqueues `job`, due after `delay`.
    pub async fn enqueue_in<J: Job>(&self, delay: Duration, job: J) -> Result<i64, JobError> {
        self.submit_one(self.job(&job)?.after(delay)).await
    }

    /// Enqueues `job`, due at `at`.
    pub async fn enqueue_at<J: Job>(&self, at: SystemTime, job: J) -> Result<i64, JobError> {
        self.submit_one(self.job(&job)?.at(at)).await
    }

    /// Enqueues every job of `jobs` in one transaction: all of them or none.
    pub async fn enqueue_batch<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<i64>, JobError> {
        let new: Vec<NewJob> = jobs.into_iter().map(|j| self.job(&j)).collect::<Result<_, _>>()?;
        let ids = self.submit(new).await?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// Enqueues prepared jobs in one transaction. A job with a
    /// [`unique_key`](NewJob::unique_key) that is already queued (in any state) is skipped:
    /// its entry is `None`.
    pub async fn submit(&self, jobs: Vec<NewJob>) -> Result<Vec<Option<i64>>, JobError> {
        if !self.0.installed {
            return Err(JobError::NotInstalled);
        }
        let ids = self
            .0
            .db
            .write(move |c| jobs.iter().map(|job| queue::insert(c, job, now_ms())).collect())
            .await?;
        self.0.wake.notify_one();
        Ok(ids)
    }

    async fn submit_one(&self, job: NewJob) -> Result<i64, JobError> {
        let ids = self.submit(vec![job]).await?;
        Ok(ids.into_iter().flatten().next().unwrap_or_default())
    }

    /// Enqueues `job` inside the caller's write transaction (`db.write(|c| …)`), so the
    /// job exists if and only if the transaction commits. `None` when its unique key is
    /// already queued.
    ///
    /// With the queue in a database of its own (`--jobs-database`), the job is enqueued
    /// once the transaction commits (never if it rolls back), and `None` is returned: a
    /// process that dies in between loses it.
    pub fn insert(&self, conn: &Conn, job: &NewJob) -> Result<Option<i64>, DbError> {
        if self.0.separate {
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|_| DbError::Other("Jobs::insert outside the server's runtime".into()))?;
            let (jobs, job) = (self.clone(), job.clone());
            conn.after_commit(move || {
                jobs.0.in_flight.fetch_add(1, Ordering::SeqCst);
                runtime.spawn(async move {
                    if let Err(e) = jobs.submit(vec![job.clone()]).await {
                        tracing::error!(
                            job_type = job.job_type,
                            "job not queued after commit: {e}"
                        );
                    }
                    jobs.0.in_flight.fetch_sub(1, Ordering::SeqCst);
                    jobs.0.landed.notify_waiters();
                });
            });
            return Ok(None);
        }
        let id = queue::insert(conn, job, now_ms())?;
        // Workers claim with a write, which waits for this transaction: they find the job
        // once it commits, and nothing if it rolls back.
        self.0.wake.notify_one();
        Ok(id)
    }

    /// Waits until the jobs of committed transactions are in the queue's own database
    /// (`--jobs-database`; at once otherwise): before the process exits.
    pub(crate) async fn flush(&self) {
        loop {
            let landed = self.0.landed.notified();
            if self.0.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            landed.await;
        }
    }

    /// Counts per state and the age of the oldest due job.
    pub async fn stats(&self) -> Result<Stats, DbError> {
        self.0.db.read(|c| queue::stats(c, now_ms())).await
    }
}

/// A job ready to enqueue (from [`Jobs::job`]), with its schedule and options adjustable.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub(crate) job_type: &'static str,
    pub(crate) payload: String,
    /// Unix milliseconds; `None` is now.
    pub(crate) run_at: Option<i64>,
    pub(crate) priority: i32,
    pub(crate) queue: &'static str,
    pub(crate) max_attempts: u32,
    pub(crate) unique_key: Option<String>,
}

impl NewJob {
    /// Due at `at`.
    pub fn at(mut self, at: SystemTime) -> NewJob {
        self.run_at = Some(unix_ms(at));
        self
    }

    /// Due after `delay`.
    pub fn after(mut self, delay: Duration) -> NewJob {
        self.run_at = Some(now_ms() + delay.as_millis() as i64);
        self
    }

    /// Runs before due jobs of lower priority.
    pub fn priority(mut self, priority: i32) -> NewJob {
        self.priority = priority;
        self
    }

    /// Enqueued only if no job with this key exists yet (in any state, until completed
    /// jobs are purged): enqueuing the same logical work twice makes one job.
    pub fn unique_key(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }
}

/// What a handler gets: the app context, which attempt this is, and its cancellation.
#[derive(Clone)]
pub struct JobContext {
    /// The database, settings, templates, mailer and queue of the server.
    pub app: AppContext,
    pub(crate) id: i64,
    pub(crate) job_type: &'static str,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    /// When it was due, Unix milliseconds.
    pub(crate) run_at: i64,
    pub(crate) cancel: CancellationToken,
    pub(crate) deadline: Instant,
}

impl JobContext {
    /// The job's id in `_jobs`.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether a failure now makes the job `dead`.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// A key that is the same for every attempt of this job and different for every
    /// other job: to make a side effect happen once (a `UNIQUE` column, a payment
    /// provider's idempotency header, a mail's `Message-ID`).
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.job_type, self.id)
    }

    /// When this attempt was due, as Unix milliseconds: for the first attempt of a periodic
    /// job its slot, for a retry the end of its backoff.
    pub fn scheduled_at(&self) -> i64 {
        self.run_at
    }

    /// When this attempt times out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Resolves when the attempt must stop: its timeout passed, or the process is shutting
    /// down and the shutdown timeout is up (the job goes back to the queue).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether [`cancelled`](JobContext::cancelled) has resolved.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Now, in Unix milliseconds: the queue's clock (the same on both engines).
pub(crate) fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}
