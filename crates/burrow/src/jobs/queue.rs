//! The `_jobs` table: every statement the queue runs, on both engines. Times are Unix
//! milliseconds (`BIGINT`), compared in SQL and computed in Rust, so both engines and
//! every process agree on them.
//!
//! A job's life: `pending` (due at `run_at`) → `running` (claimed by one process, whose
//! lease it renews) → `completed`, or `failed` (waiting for its retry at `run_at`) →
//! `running` … → `dead` once its attempts are used up. A lease that expires (its process
//! died) puts the job back to `pending`, or `dead` if that was its last attempt.

use std::fmt;

use super::NewJob;
use crate::db::{Conn, DbError, Engine, FromRow, Value, params};

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `_jobs`, for listings and detail pages.
#[derive(Clone, Debug, FromRow)]
pub struct JobInfo {
    pub id: i64,
    #[row(rename = "type")]
    pub job_type: String,
    pub queue: String,
    /// JSON.
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub priority: i64,
    /// When it is (or was) due, Unix milliseconds.
    pub run_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, type, queue, payload, status, attempts, max_attempts, priority, run_at, \
     lease_owner, lease_until, last_error, unique_key, created_at, updated_at, finished_at";

/// Jobs per state, and how long the oldest due job has waited.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
    pub dead: i64,
    pub completed: i64,
    /// Seconds the oldest job that is due (pending or failed, `run_at` passed) has waited.
    pub oldest_pending_age_s: f64,
}

/// A job this process claimed.
#[derive(Debug, FromRow)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    #[row(rename = "type")]
    pub(crate) job_type: String,
    pub(crate) payload: String,
    pub(crate) attempts: i64,
    pub(crate) max_attempts: i64,
    pub(crate) priority: i64,
    pub(crate) run_at: i64,
}

pub(crate) fn insert(c: &Conn, job: &NewJob, now: i64) -> Result<Option<i64>, DbError> {
    let sql = "INSERT INTO _jobs (type, queue, payload, status, attempts, max_attempts, priority, \
               run_at, unique_key, created_at, updated_at) \
               VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?5, ?6, ?7, ?8, ?8) \
               ON CONFLICT (unique_key) DO NOTHING RETURNING id";
    c.query_opt::<(i64,)>(
        sql,
        params![
            job.job_type,
            job.queue,
            job.payload.as_str(),
            job.max_attempts,
            job.priority,
            job.run_at.unwrap_or(now),
            job.unique_key.as_deref(),
            now
        ],
    )
    .map(|row| row.map(|(id,)| id))
}

/// What a process may claim: the job types it knows (a process of an older version leaves
/// a newer type alone during a hand-over) and, if set, its queues.
pub(crate) struct Claim<'a> {
    pub(crate) owner: &'a str,
    pub(crate) now: i64,
    pub(crate) lease_ms: i64,
    pub(crate) limit: usize,
    pub(crate) types: &'a [&'static str],
    pub(crate) queues: &'a [String],
}

/// Marks up to `limit` due jobs as running under this process's lease, highest priority
/// first, then oldest. Atomic: a job is claimed by one process only (writes are serialized
/// on both engines; PostgreSQL also skips rows another transaction holds).
pub(crate) fn claim(c: &Conn, claim: &Claim) -> Result<Vec<Claimed>, DbError> {
    if claim.types.is_empty() || claim.limit == 0 {
        return Ok(Vec::new());
    }
    let mut params: Vec<Value> = vec![
        claim.now.into(),
        (claim.now + claim.lease_ms).into(),
        claim.owner.into(),
        claim.limit.into(),
    ];
    let mut list = |values: &mut dyn Iterator<Item = Value>| {
        let mut marks = Vec::new();
        for v in values {
            params.push(v);
            marks.push(format!("?{}", params.len()));
        }
        marks.join(", ")
    };
    let types = list(&mut claim.types.iter().map(|t| Value::from(*t)));
    let queues = if claim.queues.is_empty() {
        String::new()
    } else {
        format!(" AND queue IN ({})", list(&mut claim.queues.iter().map(Value::from)))
    };
    let lock = match c.engine() {
        Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let sql = format!(
        "UPDATE _jobs SET status = 'running', attempts = attempts + 1, locked_at = ?1, \
         lease_until = ?2, lease_owner = ?3, updated_at = ?1 \
         WHERE id IN (SELECT id FROM _jobs WHERE status IN ('pending', 'failed') \
         AND run_at <= ?1 AND type IN ({types}){queues} \
         ORDER BY priority DESC, run_at, id LIMIT ?4{lock}) \
         RETURNING id, type, payload, attempts, max_attempts, priority, run_at"
    );
    let mut claimed: Vec<Claimed> = c.query(&sql, &params)?;
    claimed.sort_by_key(|j| (-j.priority, j.id));
    Ok(claimed)
}

/// When the first job of these types (and queues, if any) is due, Unix ms: a read, so an
/// idle queue costs no write.
pub(crate) fn next_due(
    c: &Conn,
    types: &[String],
    queues: &[String],
) -> Result<Option<i64>, DbError> {
    let mut params: Vec<Value> = Vec::new();
    let mut list = |values: &[String]| {
        let marks: Vec<String> = values
            .iter()
            .map(|v| {
                params.push(v.into());
                format!("?{}", params.len())
            })
            .collect();
        marks.join(", ")
    };
    let types = list(types);
    let queues =
        if queues.is_empty() { String::new() } else { format!(" AND queue IN ({})", list(queues)) };
    // The first row in `run_at` order that matches, not `min(run_at)`: SQLite computes a
    // `min` with a filter the index does not hold by reading every waiting job (1 ms per
    // look at 20,000 jobs). And the index named, or SQLite sorts the rows of the status
    // index instead.
    let index = match c.engine() {
        Engine::Sqlite => " INDEXED BY _jobs_due",
        Engine::Postgres => "",
    };
    let sql = format!(
        "SELECT run_at FROM _jobs{index} WHERE status IN ('pending', 'failed') \
         AND type IN ({types}){queues} ORDER BY run_at LIMIT 1"
    );
    let due: Option<(i64,)> = c.query_opt(&sql, &params)?;
    Ok(due.map(|(at,)| at))
}

/// Waiting jobs (pending or failed) of types not in `known`, counted per type.
pub(crate) fn unknown_types(c: &Conn, known: &[String]) -> Result<Vec<(String, i64)>, DbError> {
    let marks: Vec<String> = (1..=known.len()).map(|i| format!("?{i}")).collect();
    let params: Vec<Value> = known.iter().map(Value::from).collect();
    let not_in = if known.is_empty() {
        String::new()
    } else {
        format!(" AND type NOT IN ({})", marks.join(", "))
    };
    let sql = format!(
        "SELECT type, count(*) FROM _jobs WHERE status IN ('pending', 'failed'){not_in} \
         GROUP BY type ORDER BY type"
    );
    c.query(&sql, &params)
}

/// Extends the lease of every job this process runs.
pub(crate) fn renew(c: &Conn, owner: &str, until: i64) -> Result<usize, DbError> {
    c.execute(
        "UPDATE _jobs SET lease_until = ?1 WHERE status = 'running' AND lease_owner = ?2",
        params![until, owner],
    )
}

/// Records a finished attempt. `false` if the job is no longer this process's (its lease
/// expired and it was handed to another).
pub(crate) fn complete(c: &Conn, id: i64, owner: &str, now: i64) -> Result<bool, DbError> {
    let n = c.execute(
        "UPDATE _jobs SET status = 'completed', lease_owner = NULL, lease_until = NULL, \
         updated_at = ?1, finished_at = ?1 WHERE id = ?2 AND lease_owner = ?3 \
         AND status = 'running'",
        params![now, id, owner],
    )?;
    Ok(n == 1)
}

/// Records a failed attempt: retried at `retry_at`, or `dead` when that is `None`.
pub(crate) fn fail(
    c: &Conn,
    id: i64,
    owner: &str,
    now: i64,
    error: &str,
    retry_at: Option<i64>,
) -> Result<bool, DbError> {
    let n = match retry_at {
        Some(at) => c.execute(
            "UPDATE _jobs SET status = 'failed', run_at = ?1, last_error = ?2, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?3 \
             WHERE id = ?4 AND lease_owner = ?5 AND status = 'running'",
            params![at, error, now, id, owner],
        )?,
        None => c.execute(
            "UPDATE _jobs SET status = 'dead', last_error = ?1, lease_owner = NULL, \
             lease_until = NULL, updated_at = ?2, finished_at = ?2 \
             WHERE id = ?3 AND lease_owner = ?4 AND status = 'running'",
            params![error, now, id, owner],
        )?,
    };
    Ok(n == 1)
}

/// Gives unfinished jobs back to the queue at shutdown, due now; the interrupted attempt
/// does not count.
pub(crate) fn release(c: &Conn, ids: &[i64], owner: &str, now: i64) -> Result<usize, DbError> {
    let mut released = 0;
    for &id in ids {
        released += c.execute(
            "UPDATE _jobs SET status = 'pending', attempts = attempts - 1, run_at = ?1, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?1, \
             last_error = 'released at shutdown before it finished' \
             WHERE id = ?2 AND lease_owner = ?3 AND status = 'running'",
            params![now, id, owner],
        )?;
    }
    Ok(released)
}

/// Jobs whose lease expired (their process stopped without releasing them): back to
/// `pending`, or `dead` if that was their last attempt.
pub(crate) fn reap(c: &Conn, now: i64) -> Result<usize, DbError> {
    let error = "lease expired: the process running it stopped before it finished";
    let dead = c.execute(
        "UPDATE _jobs SET status = 'dead', last_error = ?1, lease_owner = NULL, \
         lease_until = NULL, updated_at = ?2, finished_at = ?2 \
         WHERE status = 'running' AND lease_until < ?2 AND attempts >= max_attempts",
        params![error, now],
    )?;
    let back = c.execute(
        "UPDATE _jobs SET status = 'pending', last_error = ?1, lease_owner = NULL, \
         lease_until = NULL, run_at = ?2, updated_at = ?2 \
         WHERE status = 'running' AND lease_until < ?2",
        params![error, now],
    )?;
    Ok(dead + back)
}

/// Deletes completed jobs finished before `before`.
pub(crate) fn purge(c: &Conn, before: i64) -> Result<usize, DbError> {
    c.execute("DELETE FROM _jobs WHERE status = 'completed' AND finished_at < ?1", params![before])
}

pub(crate) fn stats(c: &Conn, now: i64) -> Result<Stats, DbError> {
    let counts: Vec<(String, i64)> =
        c.query("SELECT status, count(*) FROM _jobs GROUP BY status", params![])?;
    let mut stats = Stats::default();
    for (status, n) in counts {
        match JobStatus::parse(&status) {
            Some(JobStatus::Pending) => stats.pending = n,
            Some(JobStatus::Running) => stats.running = n,
            Some(JobStatus::Completed) => stats.completed = n,
            Some(JobStatus::Failed) => stats.failed = n,
            Some(JobStatus::Dead) => stats.dead = n,
            None => {}
        }
    }
    // As in `next_due`: the first row in index order, not a `min` over every waiting job.
    let index = match c.engine() {
        Engine::Sqlite => " INDEXED BY _jobs_due",
        Engine::Postgres => "",
    };
    let oldest: Option<(i64,)> = c.query_opt(
        &format!(
            "SELECT run_at FROM _jobs{index} WHERE status IN ('pending', 'failed') \
             ORDER BY run_at LIMIT 1"
        ),
        params![],
    )?;
    let waited = oldest.map_or(0, |(at,)| (now - at).max(0));
    stats.oldest_pending_age_s = waited as f64 / 1000.0;
    Ok(stats)
}

/// The newest `limit` jobs, of one state or all.
pub fn list(c: &Conn, status: Option<JobStatus>, limit: usize) -> Result<Vec<JobInfo>, DbError> {
    match status {
        Some(status) => c.query(
            &format!("SELECT {COLUMNS} FROM _jobs WHERE status = ?1 ORDER BY id DESC LIMIT ?2"),
            params![status.as_str(), limit],
        ),
        None => c.query(
            &format!("SELECT {COLUMNS} FROM _jobs ORDER BY id DESC LIMIT ?1"),
            params![limit],
        ),
    }
}

pub fn get(c: &Conn, id: i64) -> Result<Option<JobInfo>, DbError> {
    c.query_opt(&format!("SELECT {COLUMNS} FROM _jobs WHERE id = ?1"), params![id])
}

/// Queues a `dead` or `failed` job again, due now, with its attempts reset. `false` if it
/// is in another state (or does not exist).
pub fn retry(c: &Conn, id: i64, now: i64) -> Result<bool, DbError> {
    let n = c.execute(
        "UPDATE _jobs SET status = 'pending', attempts = 0, run_at = ?1, updated_at = ?1, \
         finished_at = NULL WHERE id = ?2 AND status IN ('dead', 'failed')",
        params![now, id],
    )?;
    Ok(n == 1)
}

/// Stops a job that has not started (`pending` or `failed`): it becomes `dead` with
/// "cancelled" as its error. `false` in any other state.
pub fn cancel(c: &Conn, id: i64, now: i64) -> Result<bool, DbError> {
    let n = c.execute(
        "UPDATE _jobs SET status = 'dead', last_error = 'cancelled', updated_at = ?1, \
         finished_at = ?1 WHERE id = ?2 AND status IN ('pending', 'failed')",
        params![now, id],
    )?;
    Ok(n == 1)
}

/// Deletes a job that is not running. `false` if it runs (or does not exist).
pub fn delete(c: &Conn, id: i64) -> Result<bool, DbError> {
    let n = c.execute("DELETE FROM _jobs WHERE id = ?1 AND status <> 'running'", params![id])?;
    Ok(n == 1)
}
