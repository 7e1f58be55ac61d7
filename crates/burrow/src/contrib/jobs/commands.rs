//! `server jobs list|show|retry|cancel|delete|run-once`: the queue from the shell.

use std::sync::{Arc, Mutex};

use clap::{Arg, ArgMatches};

use crate::command::Command;
use crate::context::{AppContext, BoxError};
use crate::jobs::runner::{Runner, RunnerSettings, Until};
use crate::jobs::{JobStatus, now_ms, queue};

pub(super) fn all(settings: Arc<Mutex<Option<RunnerSettings>>>) -> Vec<Command> {
    let id =
        || Arg::new("id").value_name("ID").required(true).value_parser(clap::value_parser!(i64));
    let statuses: Vec<&'static str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    let cli = clap::Command::new("jobs")
        .about("List, retry and run background jobs")
        .subcommand_required(true)
        .subcommand(
            clap::Command::new("list")
                .about("List the newest jobs, with their state and last error")
                .arg(
                    Arg::new("status")
                        .long("status")
                        .value_name("STATUS")
                        .value_parser(statuses)
                        .help("Only jobs in this state"),
                )
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .value_name("N")
                        .default_value("50")
                        .value_parser(clap::value_parser!(usize)),
                ),
        )
        .subcommand(clap::Command::new("show").about("Print one job with its payload").arg(id()))
        .subcommand(
            clap::Command::new("retry")
                .about("Queue a dead or failed job again, due now, with its attempts reset")
                .arg(id()),
        )
        .subcommand(
            clap::Command::new("cancel")
                .about("Stop a job that has not run yet (it becomes dead)")
                .arg(id()),
        )
        .subcommand(
            clap::Command::new("delete").about("Delete a job that is not running").arg(id()),
        )
        .subcommand(
            clap::Command::new("run-once").about(
                "Run every due job, then exit (for cron-style deployments without a server)",
            ),
        );
    vec![Command::new(cli, move |ctx, args| run(ctx, args, settings.clone()))]
}

async fn run(
    ctx: AppContext,
    args: ArgMatches,
    settings: Arc<Mutex<Option<RunnerSettings>>>,
) -> Result<(), BoxError> {
    match args.subcommand() {
        Some(("list", args)) => {
            let status = args.get_one::<String>("status").and_then(|s| JobStatus::parse(s));
            let limit = *args.get_one::<usize>("limit").expect("has a default");
            let jobs = ctx.db.read(move |c| queue::list(c, status, limit)).await?;
            println!(
                "{:>8}  {:<24} {:<9} {:>8}  {:<20} error",
                "id", "type", "status", "attempts", "run at (UTC)"
            );
            for j in &jobs {
                println!(
                    "{:>8}  {:<24} {:<9} {:>8}  {:<20} {}",
                    j.id,
                    j.job_type,
                    j.status,
                    format!("{}/{}", j.attempts, j.max_attempts),
                    utc(j.run_at),
                    j.last_error.as_deref().unwrap_or("")
                );
            }
            let stats = ctx.jobs.stats().await?;
            println!(
                "{} pending, {} running, {} failed, {} dead, {} completed",
                stats.pending, stats.running, stats.failed, stats.dead, stats.completed
            );
            Ok(())
        }
        Some(("show", args)) => {
            let id = *args.get_one::<i64>("id").expect("required");
            let job = ctx.db.read(move |c| queue::get(c, id)).await?;
            let Some(j) = job else { return Err(format!("no job {id}").into()) };
            let payload: serde_json::Value =
                serde_json::from_str(&j.payload).unwrap_or(serde_json::Value::String(j.payload));
            println!("id:        {}", j.id);
            println!("type:      {} (queue {}, priority {})", j.job_type, j.queue, j.priority);
            println!("status:    {}", j.status);
            println!("attempts:  {}/{}", j.attempts, j.max_attempts);
            println!("run at:    {}", utc(j.run_at));
            println!("created:   {}", utc(j.created_at));
            if let Some(owner) = &j.lease_owner {
                println!("leased by: {owner}");
            }
            if let Some(error) = &j.last_error {
                println!("error:     {error}");
            }
            println!("payload:\n{}", serde_json::to_string_pretty(&payload)?);
            Ok(())
        }
        Some(("retry", args)) => {
            let id = *args.get_one::<i64>("id").expect("required");
            if ctx.db.write(move |c| queue::retry(c, id, now_ms())).await? {
                println!("Job {id} queued again.");
                Ok(())
            } else {
                Err(format!("job {id} is not dead or failed (or does not exist)").into())
            }
        }
        Some(("cancel", args)) => {
            let id = *args.get_one::<i64>("id").expect("required");
            if ctx.db.write(move |c| queue::cancel(c, id, now_ms())).await? {
                println!("Job {id} cancelled.");
                Ok(())
            } else {
                Err(format!("job {id} is not pending or failed (or does not exist)").into())
            }
        }
        Some(("delete", args)) => {
            let id = *args.get_one::<i64>("id").expect("required");
            if ctx.db.write(move |c| queue::delete(c, id)).await? {
                println!("Job {id} deleted.");
                Ok(())
            } else {
                Err(format!("job {id} is running (or does not exist)").into())
            }
        }
        Some(("run-once", _)) => {
            let settings = settings.lock().expect("not poisoned").clone();
            let mut settings = settings.expect("configured before commands run");
            settings.workers = settings.workers.max(1);
            let ran = Runner::new(ctx, settings).run(Until::Empty).await;
            println!("Ran {ran} job attempt(s); nothing else is due.");
            Ok(())
        }
        _ => unreachable!("clap requires a known subcommand"),
    }
}

/// Unix milliseconds as `2026-12-03 08:15:02`.
fn utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| crate::db::utc_at(t).replace('T', " ").trim_end_matches('Z').to_string())
        .unwrap_or_else(|_| ms.to_string())
}
