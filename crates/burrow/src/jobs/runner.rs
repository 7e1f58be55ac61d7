//! The workers of one process: claim due jobs under a lease, run them, record how each
//! attempt ended, renew the lease while they run, and at shutdown finish or release them.
//!
//! One task (the loop in [`Runner::run`]) claims and keeps the books; each claimed job
//! runs in a task of its own, which records its own outcome, so a slow job never holds
//! up another. A job's handler runs in a further task, so a panic fails that attempt and
//! nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::queue::{self, Claim, Claimed};
use super::{JobContext, Periodic, Schedule, now_ms};
use crate::context::AppContext;
use crate::db::DbError;
use crate::lifecycle::Lifecycle;

/// How the workers run (the `--jobs-*` settings).
#[derive(Clone, Debug)]
pub(crate) struct RunnerSettings {
    pub(crate) workers: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) retry_base_delay: Duration,
    pub(crate) lease: Duration,
    pub(crate) retention: Duration,
    /// Empty: every queue.
    pub(crate) queues: Vec<String>,
}

/// The longest pause between retries, however many attempts came before.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// How often expired leases are looked for and completed jobs purged, at most: with a
/// short lease, every half lease, so a dead process's jobs wait little past its expiry.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// Time kept back from the shutdown deadline to release unfinished jobs before the
/// database closes.
const RELEASE_MARGIN: Duration = Duration::from_millis(300);

/// The pause before retry number `attempt` (1 after the first failure): `base` doubled per
/// attempt, capped, less up to a fifth at random so retries of many jobs spread out.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let cap = MAX_BACKOFF.max(base);
    let full = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(cap);
    let mut byte = [0u8; 1];
    crate::random::fill(&mut byte);
    full.mul_f64(1.0 - f64::from(byte[0]) / 255.0 * 0.2)
}

/// When the workers stop taking jobs.
pub(crate) enum Until {
    /// When the process starts draining; running jobs get until the shutdown deadline.
    Stopping(Lifecycle),
    /// When nothing is due any more (`server jobs run-once`).
    Empty,
}

pub(crate) struct Runner {
    ctx: AppContext,
    settings: RunnerSettings,
    owner: Arc<str>,
    types: Vec<&'static str>,
    trouble: Trouble,
}

/// How often the workers say that the database fails them, at most: while it is down,
/// every poll would otherwise log a line.
const TROUBLE_EVERY: Duration = Duration::from_secs(60);

/// The last time the workers logged a database error, and how many they kept quiet since.
#[derive(Default)]
struct Trouble(std::sync::Mutex<(Option<Instant>, u64)>);

impl Trouble {
    fn warn(&self, what: &str, error: &DbError) {
        let mut state = self.0.lock().expect("not poisoned");
        let (last, quiet) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < TROUBLE_EVERY) {
            *quiet += 1;
            return;
        }
        tracing::warn!(similar_errors_not_logged = *quiet, "{what}: {error}");
        *last = Some(Instant::now());
        *quiet = 0;
    }
}

/// How one attempt ended.
enum Outcome {
    Done,
    Failed(String),
    /// Interrupted at shutdown: back to the queue, not counted as an attempt.
    Released,
}

impl Runner {
    pub(crate) fn new(ctx: AppContext, settings: RunnerSettings) -> Runner {
        let types: Vec<_> = ctx.jobs.0.registry.type_names().collect();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        let owner = format!(
            "{}:{}:{}",
            if host.is_empty() { "localhost" } else { host },
            std::process::id(),
            crate::random::hex(3)
        );
        Runner { ctx, settings, owner: owner.into(), types, trouble: Trouble::default() }
    }

    /// Works the queue until `until`; returns how many attempts ran.
    pub(crate) async fn run(self, until: Until) -> usize {
        let shared = self.ctx.jobs.0.clone();
        // Each task runs one attempt and ends with the job's id.
        let mut running: JoinSet<i64> = JoinSet::new();
        // Per running job, the cancellation its handler sees.
        let mut tokens: HashMap<i64, CancellationToken> = HashMap::new();
        // Tells every attempt to give up and release its job (the shutdown deadline).
        let abandon = CancellationToken::new();
        let mut stop_deadline: Option<Instant> = None;
        let stopping = async {
            match &until {
                Until::Stopping(lifecycle) => lifecycle.stopping().await,
                Until::Empty => std::future::pending().await,
            }
        };
        tokio::pin!(stopping);
        let far = Duration::from_secs(3600);
        let mut next_housekeeping = Instant::now();
        let mut next_renewal = Instant::now() + self.settings.lease / 3;
        let mut attempts = 0;
        tracing::debug!(workers = self.settings.workers, owner = %self.owner, "job workers started");
        self.warn_of_unknown_types().await;
        loop {
            let now = Instant::now();
            let accepting = stop_deadline.is_none();
            if accepting && now >= next_housekeeping {
                self.housekeeping().await;
                next_housekeeping = now + HOUSEKEEPING.min(self.settings.lease / 2);
            }
            let mut wait_until =
                if accepting { now + self.settings.poll_interval } else { now + far };
            let mut due_now = false;
            if accepting && running.len() < self.settings.workers {
                match self.due().await {
                    Ok(Some(due)) if due <= now_ms() => {
                        due_now = true;
                        let limit = self.settings.workers - running.len();
                        for job in self.claim(limit).await {
                            attempts += 1;
                            let token = CancellationToken::new();
                            tokens.insert(job.id, token.clone());
                            running.spawn(self.attempt(job, token, abandon.clone()));
                        }
                    }
                    Ok(Some(due)) => {
                        let later = Duration::from_millis((due - now_ms()).max(0) as u64);
                        wait_until = wait_until.min(now + later);
                    }
                    Ok(None) => {}
                    Err(e) => self.trouble.warn("job queue not read", &e),
                }
            }
            if running.len() >= self.settings.workers {
                // Nothing can be claimed before a worker is free.
                wait_until = now + far;
            }
            if running.is_empty() && (!accepting || matches!(until, Until::Empty) && !due_now) {
                break;
            }
            if !running.is_empty() {
                if now >= next_renewal {
                    self.renew().await;
                    next_renewal = now + self.settings.lease / 3;
                }
                wait_until = wait_until.min(next_renewal);
            }
            tokio::select! {
                Some(ended) = running.join_next() => {
                    if let Ok(id) = ended {
                        tokens.remove(&id);
                    }
                }
                () = shared.wake.notified(), if accepting => {}
                () = sleep_until(wait_until) => {}
                deadline = &mut stopping, if accepting => {
                    let deadline = deadline.checked_sub(RELEASE_MARGIN).unwrap_or(deadline);
                    stop_deadline = Some(deadline.max(Instant::now()));
                    if !running.is_empty() {
                        tracing::info!(
                            running = running.len(),
                            "job workers stopping: finishing running jobs"
                        );
                    }
                }
                () = sleep_until(stop_deadline.unwrap_or(now)), if !accepting => {
                    if !running.is_empty() {
                        tracing::warn!(
                            running = running.len(),
                            "shutdown timeout: releasing unfinished jobs to the queue"
                        );
                        abandon.cancel();
                        for token in tokens.values() {
                            token.cancel();
                        }
                        // Every attempt records its release and ends.
                        while running.join_next().await.is_some() {}
                    }
                }
            }
        }
        tracing::debug!(attempts, "job workers stopped");
        attempts
    }

    /// Jobs of types no app of this binary registers are never run here: say so once, at
    /// start (a type removed from the code, or a deploy that is not done).
    async fn warn_of_unknown_types(&self) {
        let known: Vec<String> = self.types.iter().map(|t| t.to_string()).collect();
        let waiting = self.ctx.jobs.db().read(move |c| queue::unknown_types(c, &known)).await;
        match waiting {
            Ok(types) if !types.is_empty() => tracing::warn!(
                "jobs of types this server does not know wait in the queue (server jobs list): {}",
                types.iter().map(|(t, n)| format!("{t} ({n})")).collect::<Vec<_>>().join(", ")
            ),
            Ok(_) => {}
            Err(e) => self.trouble.warn("job queue not read", &e),
        }
    }

    async fn renew(&self) {
        let until = now_ms() + self.settings.lease.as_millis() as i64;
        let owner = self.owner.clone();
        if let Err(e) = self.ctx.jobs.db().write(move |c| queue::renew(c, &owner, until)).await {
            self.trouble.warn("job leases not renewed", &e);
        }
    }

    /// When the next job this process may run is due (Unix ms), if any.
    async fn due(&self) -> Result<Option<i64>, DbError> {
        let types: Vec<String> = self.types.iter().map(|t| t.to_string()).collect();
        let queues = self.settings.queues.clone();
        self.ctx.jobs.db().read(move |c| queue::next_due(c, &types, &queues)).await
    }

    async fn claim(&self, limit: usize) -> Vec<Claimed> {
        let owner = self.owner.clone();
        let (types, queues) = (self.types.clone(), self.settings.queues.clone());
        let lease_ms = self.settings.lease.as_millis() as i64;
        let claimed = self
            .ctx
            .jobs
            .db()
            .write(move |c| {
                let claim = Claim {
                    owner: &owner,
                    now: now_ms(),
                    lease_ms,
                    limit,
                    types: &types,
                    queues: &queues,
                };
                queue::claim(c, &claim)
            })
            .await;
        claimed.unwrap_or_else(|e| {
            self.trouble.warn("jobs not claimed", &e);
            Vec::new()
        })
    }

    /// Expired leases back to the queue; completed jobs past the retention purged.
    async fn housekeeping(&self) {
        let retention = self.settings.retention.as_millis() as i64;
        let result = self
            .ctx
            .jobs
            .db()
            .write(move |c| {
                let now = now_ms();
                Ok((queue::reap(c, now)?, queue::purge(c, now - retention)?))
            })
            .await;
        match result {
            Ok((0, _)) => {}
            Ok((reaped, _)) => tracing::warn!(
                jobs = reaped,
                "jobs whose process stopped without finishing them are queued again"
            ),
            Err(e) => self.trouble.warn("job housekeeping", &e),
        }
    }

    /// One attempt of `job`, as a task: runs the handler under its timeout, then records
    /// the outcome (always, even when giving up at shutdown).
    fn attempt(
        &self,
        job: Claimed,
        cancel: CancellationToken,
        abandon: CancellationToken,
    ) -> impl std::future::Future<Output = i64> + Send + 'static {
        let registry = &self.ctx.jobs.0.registry;
        let (job_type, ty) =
            registry.types.get_key_value(job.job_type.as_str()).expect("claims registered types");
        let (job_type, run, on_dead, options) =
            (*job_type, ty.run.clone(), ty.on_dead.clone(), ty.options.clone());
        let deadline = Instant::now() + options.timeout;
        let cx = JobContext {
            app: self.ctx.clone(),
            id: job.id,
            job_type,
            attempt: job.attempts as u32,
            max_attempts: job.max_attempts as u32,
            run_at: job.run_at,
            cancel: cancel.clone(),
            deadline,
        };
        let db = self.ctx.jobs.db().clone();
        let owner = self.owner.clone();
        let base = options.backoff.unwrap_or(self.settings.retry_base_delay);
        async move {
            let started = Instant::now();
            let mut handler = tokio::spawn((run)(&job.payload, cx.clone()));
            let mut outcome = tokio::select! {
                result = &mut handler => match result {
                    Ok(Ok(())) => Outcome::Done,
                    Ok(Err(e)) => Outcome::Failed(error_line(&*e)),
                    Err(e) if e.is_panic() => Outcome::Failed(format!(
                        "panicked: {}",
                        panic_message(e.into_panic())
                    )),
                    Err(e) => Outcome::Failed(e.to_string()),
                },
                () = sleep_until(deadline) => {
                    cancel.cancel();
                    handler.abort();
                    Outcome::Failed(format!("timed out after {:?}", options.timeout))
                }
                () = abandon.cancelled() => {
                    cancel.cancel();
                    handler.abort();
                    Outcome::Released
                }
            };
            if abandon.is_cancelled() && matches!(outcome, Outcome::Failed(_)) {
                // The handler heard the shutdown's cancellation and gave up: the job goes
                // back to the queue, as if it had not stopped by itself.
                outcome = Outcome::Released;
            }
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            let (id, attempt, max) = (job.id, job.attempts as u32, job.max_attempts as u32);
            let recorded = match &outcome {
                Outcome::Done => {
                    tracing::debug!(id, job_type, elapsed_ms, "job completed");
                    db.write(move |c| queue::complete(c, id, &owner, now_ms())).await
                }
                Outcome::Failed(error) => {
                    let retry_at = (attempt < max)
                        .then(|| now_ms() + backoff(base, attempt).as_millis() as i64);
                    match retry_at {
                        Some(_) => tracing::warn!(
                            id, job_type, attempt, max_attempts = max, error = %error,
                            "job failed; it will be retried"
                        ),
                        None => tracing::error!(
                            id, job_type, attempts = attempt, error = %error,
                            "job failed its last attempt and is dead"
                        ),
                    }
                    let message = error.clone();
                    let recorded = db
                        .write(move |c| queue::fail(c, id, &owner, now_ms(), &message, retry_at))
                        .await;
                    if retry_at.is_none() && matches!(recorded, Ok(true)) {
                        // In a task of its own, like the handler: a panic stays there. With a
                        // cancellation of its own: the attempt's may have fired (a timeout).
                        let cx = JobContext {
                            cancel: CancellationToken::new(),
                            deadline: Instant::now() + options.timeout,
                            ..cx
                        };
                        let hook = tokio::spawn((on_dead)(&job.payload, cx, error.clone()));
                        if tokio::time::timeout(options.timeout, hook).await.is_err() {
                            tracing::warn!(id, job_type, "the job's on_dead hook timed out");
                        }
                    }
                    recorded
                }
                Outcome::Released => {
                    db.write(move |c| queue::release(c, &[id], &owner, now_ms()).map(|n| n == 1))
                        .await
                }
            };
            match recorded {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    id,
                    job_type,
                    "job outcome not recorded: its lease had expired and the job was queued again"
                ),
                Err(e) => tracing::error!(id, job_type, "job outcome not recorded: {e}"),
            }
            id
        }
    }
}

/// An error and its causes on one line, for `last_error` and the log.
fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => match panic.downcast::<&'static str>() {
            Ok(s) => s.to_string(),
            Err(_) => "(no message)".into(),
        },
    }
}

/// How many late slots of one periodic job are still queued at once; older ones are
/// skipped (a process suspended for an hour does not queue 3,600 one-second ticks).
const MAX_CATCH_UP: usize = 10;

/// Enqueues each periodic job when its slot comes, until the process stops: once per slot
/// across every process (the slot is the job's unique key, so a slot two processes queue is
/// queued once).
///
/// Slots are counted from `since`, when this process booted, not from when it started
/// serving: in a hand-over the predecessor schedules until this process is ready, which is
/// after `since`, so between them no slot is left out. A slot this process wakes up to late
/// (it was busy) is still queued, up to [`MAX_CATCH_UP`] per job. Slots that came while no
/// process ran are not made up, as with cron.
pub(crate) async fn schedule(ctx: AppContext, periodic: Vec<Periodic>, since: i64) {
    if periodic.is_empty() {
        return;
    }
    let stopping = ctx.lifecycle.stopping();
    tokio::pin!(stopping);
    let mut next: Vec<Option<i64>> =
        periodic.iter().map(|p| p.schedule.next_after(since)).collect();
    loop {
        let Some(soonest) = next.iter().flatten().min().copied() else { return };
        let wait = Duration::from_millis((soonest - now_ms()).max(0) as u64);
        tokio::select! {
            _ = &mut stopping => return,
            () = sleep(wait) => {}
        }
        let now = now_ms();
        for (p, slot) in periodic.iter().zip(next.iter_mut()) {
            let (due, skipped) = due_slots(&p.schedule, slot, now);
            if skipped > 0 {
                tracing::warn!(
                    job_type = p.job_type,
                    skipped,
                    "periodic job: {skipped} slot(s) long past skipped (the process was late)"
                );
            }
            if due.is_empty() {
                continue;
            }
            let options = &ctx.jobs.0.registry.types[p.job_type].options;
            let jobs = due
                .iter()
                .map(|at| super::NewJob {
                    job_type: p.job_type,
                    payload: p.payload.clone(),
                    run_at: Some(*at),
                    priority: options.priority,
                    queue: options.queue,
                    max_attempts: options.max_attempts,
                    unique_key: Some(format!("periodic:{}:{at}", p.job_type)),
                })
                .collect();
            match ctx.jobs.submit(jobs).await {
                Ok(ids) => {
                    let queued = ids.iter().flatten().count();
                    if queued > 0 {
                        tracing::info!(
                            job_type = p.job_type,
                            schedule = %p.schedule,
                            slots = queued,
                            "periodic job queued"
                        )
                    }
                }
                Err(e) => tracing::warn!(job_type = p.job_type, "periodic job not queued: {e}"),
            }
        }
    }
}

/// The slots from `next` up to `now` (the last [`MAX_CATCH_UP`] of them) and how many
/// older ones were skipped; `next` moves on to the first slot after `now`.
fn due_slots(schedule: &Schedule, next: &mut Option<i64>, now: i64) -> (Vec<i64>, usize) {
    let mut due = Vec::new();
    while let Some(at) = next.filter(|at| *at <= now) {
        due.push(at);
        *next = schedule.next_after(at);
    }
    let skipped = due.len().saturating_sub(MAX_CATCH_UP);
    due.drain(..skipped);
    (due, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_slots_are_caught_up_to_a_limit_and_none_is_skipped_between_wake_ups() {
        let every = Schedule::Every(Duration::from_secs(1));
        // Booted at 10.5 s: the first slot is 11 s.
        let mut next = every.next_after(10_500);
        assert_eq!(due_slots(&every, &mut next, 10_900), (vec![], 0));
        // Woken 2.3 s late: 11, 12 and 13 s, none lost.
        assert_eq!(due_slots(&every, &mut next, 13_300), (vec![11_000, 12_000, 13_000], 0));
        assert_eq!(next, Some(14_000));
        // Suspended for a minute: the last ten slots, the 51 before them skipped.
        let (due, skipped) = due_slots(&every, &mut next, 74_000);
        assert_eq!((due.len(), skipped), (10, 51));
        assert_eq!((due[0], due[9]), (65_000, 74_000));
        assert_eq!(next, Some(75_000));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for attempt in 1..=4 {
            let full = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(d <= full && d >= full.mul_f64(0.79), "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 60) <= MAX_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }
}
