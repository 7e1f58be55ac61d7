//! The `jobs` app: the durable queue of [`burrow::jobs`](crate::jobs), run by workers
//! inside the server process on the server's database.
//!
//! It owns the `_jobs` table (its migrations), the `--jobs-*` settings, the workers and
//! the periodic scheduler (started once the process serves, stopped when it drains), the
//! `server jobs list|retry|run-once` commands and the queue's numbers in
//! `/healthz/ready`. Apps declare job types in [`App::jobs`](crate::App::jobs) and
//! enqueue with [`Jobs`](crate::jobs::Jobs); docs/guide/jobs.md is the guide.
//!
//! ```no_run
//! use burrow::contrib::jobs::JobsApp;
//!
//! burrow::Server::new("server", "1.0").defaults("My site").app(JobsApp::new()).run();
//! ```
//!
//! On SIGTERM the workers stop claiming, let running jobs finish until the shutdown
//! timeout, then release the rest to the queue. On SIGHUP the new process claims as soon
//! as it is ready while the old one finishes what it runs. A process killed outright
//! leaves its jobs to be run again when their lease expires (`--jobs-lease`).

mod commands;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use include_dir::Dir;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::command::Command;
use crate::config::{AnySetting, Config, ConfigError, Optional, Setting, parse_duration};
use crate::context::AppContext;
use crate::db::Dsn;
use crate::jobs::runner::{self, Runner, RunnerSettings, Until};

/// The app's name, its key in `_migrations` and what other apps depend on.
pub const NAME: &str = "jobs";

static MIGRATIONS: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/jobs/migrations");
pub(crate) static TRANSLATIONS: Dir<'static> =
    crate::embed_dir!("$CARGO_MANIFEST_DIR/src/contrib/jobs/translations");

const WORKERS: Setting<usize> = Setting::new("jobs.workers")
    .default("2")
    .help("Jobs this process runs at the same time (0: enqueue only, run none)");
const POLL_INTERVAL: Setting<Duration> = Setting::with_parser("jobs.poll_interval", parse_duration)
    .default("1")
    .help("Seconds between looks for due jobs enqueued by other processes");
const RETRY_BASE_DELAY: Setting<Duration> =
    Setting::with_parser("jobs.retry_base_delay", parse_duration)
        .default("30")
        .help("Pause before a failed job's first retry, doubled for each further one (jittered)");
const LEASE: Setting<Duration> = Setting::with_parser("jobs.lease", parse_duration)
    .default("30")
    .help("How long a running job stays claimed without renewal; a job whose process died runs again after it");
const RETENTION: Setting<Duration> = Setting::with_parser("jobs.retention", parse_duration)
    .default("7d")
    .help("How long completed jobs are kept before they are deleted");
const DATABASE: Setting<PathBuf, Optional> = Setting::new("jobs.database")
    .optional()
    .default_note("the server's database")
    .help("A SQLite file of its own for the queue (jobs enqueued in a transaction are then queued once it commits)");
const QUEUES: Setting<String, Optional> = Setting::new("jobs.queues")
    .optional()
    .default_note("every queue")
    .help("Queues this process works, comma-separated");

/// `/admin/jobs/`: the queue by status, type and date; a job's page shows its payload
/// (indented) and last error; retry, cancel and delete, one job or in bulk. Jobs are made
/// by apps, not here.
fn admin() -> crate::admin::ModelAdmin {
    use crate::admin::{Access, Action, ActionMessage, Filter, ModelAdmin, Permissions, Shown};
    use crate::jobs::{now_ms, queue};
    const STATUSES: &[(&str, &str)] = &[
        ("pending", "Pending"),
        ("running", "Running"),
        ("completed", "Completed"),
        ("failed", "Failed (will retry)"),
        ("dead", "Dead"),
    ];
    /// Runs `f` on each job; says how many it applied to (`done`: a catalog key with
    /// plurals, and `done-some` when some jobs were in another state).
    fn each(
        c: &crate::db::Conn,
        ids: &[i64],
        done: &str,
        f: fn(&crate::db::Conn, i64, i64) -> Result<bool, crate::db::DbError>,
    ) -> Result<ActionMessage, crate::db::DbError> {
        let mut n = 0;
        for id in ids {
            n += usize::from(f(c, *id, now_ms())?);
        }
        Ok(match n == ids.len() {
            true => ActionMessage::key(done),
            false => ActionMessage::key(format!("{done}-some")).arg("done", n),
        })
    }
    ModelAdmin::new("jobs")
        .table("_jobs")
        .names("job", "jobs")
        .list(&["id", "type", "queue", "status", "attempts", "run_at", "last_error"])
        .label_column("type")
        .ordering("-id")
        .sortable(&["id", "type", "status", "run_at", "attempts"])
        .search(&["type", "last_error", "payload"])
        .choices("status", STATUSES)
        .filter(Filter::choices("status", "Status", STATUSES))
        .filter(Filter::date_range_millis("created_at", "Created"))
        .show(&["payload"], Shown::Json)
        .show(
            &["run_at", "locked_at", "lease_until", "created_at", "updated_at", "finished_at"],
            Shown::UnixMillis,
        )
        .database(|ctx| ctx.jobs.db().clone())
        .permissions(Permissions {
            create: Access::Nobody,
            edit: Access::Nobody,
            ..Permissions::default()
        })
        .before_change(|c, change| {
            // A running job belongs to its worker: it finishes or its lease runs out first.
            if let crate::admin::Change::Delete(ids) = change {
                for id in ids {
                    if let Some(job) = queue::get(c, *id)?
                        && job.status == "running"
                    {
                        return Ok(Err("jobs-running-not-deleted".into()));
                    }
                }
            }
            Ok(Ok(()))
        })
        .action(
            Action::new("retry", "Retry now", |c, ids| {
                each(c, ids, "jobs-queued-again", queue::retry)
            })
            .on_rows(),
        )
        .action(
            Action::new("cancel", "Cancel", |c, ids| each(c, ids, "jobs-cancelled", queue::cancel))
                .on_rows()
                .confirm(),
        )
}

/// The queue's own SQLite file (`--jobs-database`), if it has one; checked like
/// `--database-dsn`'s file when the server opens it.
pub(crate) fn separate_database(config: &Config) -> Result<Option<Dsn>, ConfigError> {
    let Some(path) = config.get(&DATABASE)? else { return Ok(None) };
    let same = match config.get(&crate::settings::DATABASE_DSN)? {
        Dsn::SqliteFile(main) => {
            main == path || main.canonicalize().is_ok_and(|m| path.canonicalize().ok() == Some(m))
        }
        _ => false,
    };
    if same {
        return Err(config.error(&DATABASE, "is the server's database: leave it unset instead"));
    }
    if path.as_os_str().is_empty() || path.to_str().is_some_and(|p| p.contains("://")) {
        return Err(config.error(&DATABASE, "expected the path of a SQLite file"));
    }
    Ok(Some(Dsn::SqliteFile(path)))
}

/// Runs every job that is due, in this process, until none is (as `server jobs run-once`,
/// with this app's default settings); returns how many attempts ran. For tests that
/// build the server in-process, where no workers run.
pub async fn run_due(ctx: &AppContext) -> usize {
    let settings = RunnerSettings {
        workers: 2,
        poll_interval: Duration::from_secs(1),
        retry_base_delay: Duration::from_secs(30),
        lease: Duration::from_secs(30),
        retention: Duration::from_secs(7 * 86400),
        queues: Vec::new(),
    };
    Runner::new(ctx.clone(), settings).run(Until::Empty).await
}

/// Registers the job queue and its workers (see the [module](self)).
#[derive(Default)]
pub struct JobsApp {
    /// Set by `configure`; shared with the commands, which are declared before it runs.
    settings: Arc<Mutex<Option<RunnerSettings>>>,
    /// When this process booted (Unix milliseconds, set by `configure`): periodic slots
    /// are counted from here, before the process says it is ready (see `runner::schedule`).
    booted_ms: Mutex<i64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl JobsApp {
    pub fn new() -> JobsApp {
        JobsApp::default()
    }

    fn runner_settings(&self) -> RunnerSettings {
        self.settings.lock().expect("not poisoned").clone().expect("configured before use")
    }
}

impl App for JobsApp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn admin(&self, site: &mut crate::admin::AdminSite) {
        site.register(admin());
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&WORKERS, &POLL_INTERVAL, &RETRY_BASE_DELAY, &LEASE, &RETENTION, &DATABASE, &QUEUES]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        let poll_interval = config.get(&POLL_INTERVAL)?;
        if poll_interval < Duration::from_millis(10) {
            return Err(config.error(&POLL_INTERVAL, "expected at least 10ms"));
        }
        let lease = config.get(&LEASE)?;
        if lease < Duration::from_secs(1) {
            return Err(config.error(&LEASE, "expected at least 1s"));
        }
        separate_database(config)?;
        let queues = config.get(&QUEUES)?.unwrap_or_default();
        let queues: Vec<String> =
            queues.split(',').map(str::trim).filter(|q| !q.is_empty()).map(String::from).collect();
        let settings = RunnerSettings {
            workers: config.get(&WORKERS)?,
            poll_interval,
            retry_base_delay: config.get(&RETRY_BASE_DELAY)?,
            lease,
            retention: config.get(&RETENTION)?,
            queues,
        };
        *self.settings.lock().expect("not poisoned") = Some(settings);
        *self.booted_ms.lock().expect("not poisoned") = crate::jobs::now_ms();
        Ok(())
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS)
    }

    fn translations(&self) -> Option<&'static Dir<'static>> {
        Some(&TRANSLATIONS)
    }

    fn commands(&self) -> Vec<Command> {
        commands::all(self.settings.clone())
    }

    fn start(&self, ctx: &AppContext) {
        let settings = self.runner_settings();
        let mut tasks = self.tasks.lock().expect("not poisoned");
        if settings.workers > 0 {
            let runner = Runner::new(ctx.clone(), settings);
            let until = Until::Stopping(ctx.lifecycle.clone());
            tasks.push(tokio::spawn(async move {
                runner.run(until).await;
            }));
        }
        let periodic = ctx.jobs.0.registry.periodic.clone();
        let since = *self.booted_ms.lock().expect("not poisoned");
        tasks.push(tokio::spawn(runner::schedule(ctx.clone(), periodic, since)));
    }

    async fn health(&self, ctx: &AppContext) -> Option<serde_json::Value> {
        match ctx.jobs.stats().await {
            Ok(stats) => serde_json::to_value(stats).ok(),
            Err(e) => Some(serde_json::json!({ "error": e.to_string() })),
        }
    }

    async fn shutdown(&self, ctx: &AppContext) {
        ctx.jobs.flush().await;
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("not poisoned"));
        for task in tasks {
            // The workers end by the shutdown deadline on their own (`Lifecycle`).
            let _ = task.await;
        }
    }
}
