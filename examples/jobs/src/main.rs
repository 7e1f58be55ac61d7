//! Background jobs, and nothing else: job types that sleep, fail and tick, to try the
//! queue by hand, and for the tests that prove its promises with real processes and
//! signals (examples/notes/tests/it/jobs.rs).
//!
//! ```text
//! cargo run -p jobs-demo -- enqueue --count 100 --ms 50
//! cargo run -p jobs-demo                 # serves, and its workers run the jobs
//! cargo run -p jobs-demo -- jobs list    # the queue
//! ```
//!
//! Each `demo.work` attempt writes a row to `demo_starts` when it starts and to
//! `demo_runs` when its work is done, so "ran exactly once" is a query.

use std::time::{Duration, Instant};

use burrow::clap::{Arg, ArgMatches};
use burrow::config::{Optional, parse_duration};
use burrow::contrib::jobs::JobsApp;
use burrow::jobs::{Job, JobContext, JobOptions, JobRegistry};
use burrow::prelude::*;

static FILES: AppFiles = burrow::app_files!("src");

const TICK: Setting<Duration, Optional> = Setting::with_parser("demo.tick", parse_duration)
    .optional()
    .help("Run the periodic `demo.tick` job at this interval");

/// Sleeps, optionally fails its first attempts, and records what it did.
#[derive(Serialize, Deserialize)]
struct Work {
    key: String,
    /// How long the work takes.
    ms: u64,
    /// How long its first start takes instead (a job that is slow once, even when that
    /// start was interrupted and does not count as an attempt).
    first_ms: Option<u64>,
    /// Attempts that fail on purpose before one succeeds.
    fail_times: u32,
    /// Panics instead of failing (a bug in a handler).
    #[serde(default)]
    panic: bool,
}

impl Job for Work {
    const TYPE: &'static str = "demo.work";

    fn options() -> JobOptions {
        JobOptions::new().max_attempts(3)
    }

    async fn run(self, cx: JobContext) -> Result<(), BoxError> {
        let starts = record(&cx, "demo_starts", &self.key).await?;
        if cx.attempt() <= self.fail_times {
            if self.panic {
                panic!("panicking on purpose (attempt {})", cx.attempt());
            }
            return Err(format!("failing on purpose (attempt {})", cx.attempt()).into());
        }
        let ms = if starts == 1 { self.first_ms.unwrap_or(self.ms) } else { self.ms };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            () = cx.cancelled() => return Err("cancelled".into()),
        }
        record(&cx, "demo_runs", &self.key).await?;
        Ok(())
    }

    /// Its attempts are used up: a run of `KEY-dead` says so.
    async fn on_dead(self, cx: JobContext, _error: String) {
        let key = format!("{}-dead", self.key);
        if let Err(e) = record(&cx, "demo_runs", &key).await {
            burrow::tracing::error!("{key} not recorded: {e}");
        }
    }
}

/// Does nothing: what the queue itself costs per job.
#[derive(Serialize, Deserialize)]
struct Noop;

impl Job for Noop {
    const TYPE: &'static str = "demo.noop";

    async fn run(self, _cx: JobContext) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Never finishes within its 1 s timeout, and ignores its cancellation: the worker must
/// give up on it anyway.
#[derive(Serialize, Deserialize)]
struct Stuck {
    key: String,
}

impl Job for Stuck {
    const TYPE: &'static str = "demo.stuck";

    fn options() -> JobOptions {
        JobOptions::new().max_attempts(2).timeout(Duration::from_secs(1))
    }

    async fn run(self, cx: JobContext) -> Result<(), BoxError> {
        record(&cx, "demo_starts", &self.key).await?;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        record(&cx, "demo_runs", &self.key).await?;
        Ok(())
    }
}

/// The periodic job: one row per slot it was queued for.
#[derive(Serialize, Deserialize)]
struct Tick;

impl Job for Tick {
    const TYPE: &'static str = "demo.tick";

    async fn run(self, cx: JobContext) -> Result<(), BoxError> {
        let (slot, pid, now) = (cx.scheduled_at(), std::process::id(), now_ms());
        let sql = "INSERT INTO demo_ticks (slot, pid, at_ms) VALUES (?, ?, ?)";
        cx.app.db.write(move |c| c.execute(sql, params![slot, pid, now])).await?;
        Ok(())
    }
}

/// Adds a row for this attempt to `table`; returns how many rows the key has there now.
async fn record(cx: &JobContext, table: &'static str, key: &str) -> Result<i64, BoxError> {
    let (key, attempt, pid, now) = (key.to_string(), cx.attempt(), std::process::id(), now_ms());
    let insert = format!("INSERT INTO {table} (key, attempt, pid, at_ms) VALUES (?, ?, ?, ?)");
    let count = format!("SELECT count(*) FROM {table} WHERE key = ?");
    let rows = cx
        .app
        .db
        .write(move |c| {
            c.execute(&insert, params![key.as_str(), attempt, pid, now])?;
            c.query_one::<(i64,)>(&count, params![key])
        })
        .await?;
    Ok(rows.0)
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis() as i64)
}

#[derive(Default)]
struct Demo {
    tick: Option<Duration>,
}

impl App for Demo {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["jobs"]
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&TICK]
    }

    fn configure(&mut self, config: &Config) -> std::result::Result<(), ConfigError> {
        self.tick = config.get(&TICK)?;
        Ok(())
    }

    fn files(&self) -> Option<&'static AppFiles> {
        Some(&FILES)
    }

    fn jobs(&self, jobs: &mut JobRegistry) {
        jobs.register::<Work>().register::<Stuck>().register::<Noop>();
        if let Some(interval) = self.tick {
            jobs.every(interval, Tick);
        }
    }

    fn commands(&self) -> Vec<Command> {
        let number = |name: &'static str, help: &'static str| {
            Arg::new(name).long(name).value_name("N").help(help)
        };
        let cli = burrow::clap::Command::new("enqueue")
            .about("Queue `demo.work` jobs")
            .arg(number("count", "How many").default_value("1"))
            .arg(number("ms", "How long each runs, in milliseconds").default_value("0"))
            .arg(number("first-ms", "How long a first attempt runs instead"))
            .arg(number("fail-times", "Attempts that fail before one succeeds").default_value("0"))
            .arg(Arg::new("prefix").long("prefix").default_value("job").help("Key prefix"))
            .arg(
                Arg::new("panic")
                    .long("panic")
                    .action(burrow::clap::ArgAction::SetTrue)
                    .help("Failing attempts panic instead of returning an error"),
            )
            .arg(
                Arg::new("in-transaction")
                    .long("in-transaction")
                    .action(burrow::clap::ArgAction::SetTrue)
                    .help("Enqueue inside one write transaction (Jobs::insert)"),
            )
            .arg(
                Arg::new("rollback")
                    .long("rollback")
                    .action(burrow::clap::ArgAction::SetTrue)
                    .requires("in-transaction")
                    .help("…and roll that transaction back"),
            )
            .arg(
                Arg::new("noop")
                    .long("noop")
                    .action(burrow::clap::ArgAction::SetTrue)
                    .help("Queue `demo.noop` jobs (they do nothing) instead"),
            )
            .arg(
                Arg::new("stuck")
                    .long("stuck")
                    .action(burrow::clap::ArgAction::SetTrue)
                    .help("Queue `demo.stuck` jobs (they time out) instead"),
            )
            .arg(
                Arg::new("one-by-one")
                    .long("one-by-one")
                    .action(burrow::clap::ArgAction::SetTrue)
                    .help("One transaction per job (to measure enqueue latency)"),
            );
        vec![Command::new(cli, enqueue)]
    }
}

async fn enqueue(ctx: AppContext, args: ArgMatches) -> std::result::Result<(), BoxError> {
    let number = |name: &str| -> std::result::Result<Option<u64>, BoxError> {
        let text = args.get_one::<String>(name);
        Ok(text.map(|t| t.parse()).transpose().map_err(|e| format!("--{name}: {e}"))?)
    };
    let count = number("count")?.unwrap_or(1);
    let prefix = args.get_one::<String>("prefix").expect("has a default");
    let work = |i: u64| -> std::result::Result<Work, BoxError> {
        Ok(Work {
            key: format!("{prefix}-{i}"),
            ms: number("ms")?.unwrap_or(0),
            first_ms: number("first-ms")?,
            fail_times: number("fail-times")?.unwrap_or(0) as u32,
            panic: args.get_flag("panic"),
        })
    };
    let started = Instant::now();
    if args.get_flag("in-transaction") {
        let jobs = ctx.jobs.clone();
        let new: Vec<_> = (0..count)
            .map(|i| Ok(jobs.job(&work(i)?)?))
            .collect::<std::result::Result<_, BoxError>>()?;
        let rollback = args.get_flag("rollback");
        let written = ctx
            .db
            .write(move |c| {
                for job in &new {
                    jobs.insert(c, job)?;
                }
                if rollback {
                    return Err(DbError::Other("rolled back on purpose".into()));
                }
                Ok(())
            })
            .await;
        match written {
            Ok(()) => println!("Queued {count} job(s) in one transaction."),
            Err(e) if rollback => println!("Rolled back ({e}): no job queued."),
            Err(e) => return Err(e.into()),
        }
        return Ok(());
    }
    if args.get_flag("noop") {
        let mut left = count;
        while left > 0 {
            let n = left.min(500);
            ctx.jobs.enqueue_batch((0..n).map(|_| Noop)).await?;
            left -= n;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!("Queued {count} no-op job(s) in {:.1} ms.", elapsed * 1000.0);
        return Ok(());
    }
    if args.get_flag("stuck") {
        let stuck = (0..count).map(|i| Stuck { key: format!("{prefix}-{i}") });
        ctx.jobs.enqueue_batch(stuck).await?;
        println!("Queued {count} stuck job(s).");
        return Ok(());
    }
    if args.get_flag("one-by-one") {
        for i in 0..count {
            ctx.jobs.enqueue(work(i)?).await?;
        }
    } else {
        // Batches of 500: each one transaction, all or nothing.
        let all: Vec<Work> = (0..count).map(work).collect::<std::result::Result<_, _>>()?;
        let mut all = all.into_iter().peekable();
        while all.peek().is_some() {
            ctx.jobs.enqueue_batch(all.by_ref().take(500)).await?;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "Queued {count} job(s) in {:.1} ms ({:.1} µs per job).",
        elapsed.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64() * 1e6 / count.max(1) as f64
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    Server::new("jobs-demo", env!("CARGO_PKG_VERSION"))
        .about("Background jobs, and nothing else")
        .app(JobsApp::new())
        .app(Demo::default())
        .run()
}
