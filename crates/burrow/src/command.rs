//! CLI subcommands contributed by apps (`server NAME …`), like Django's management commands.
//!
//! A command runs after configuration, database checks and migrations, with the same
//! [`AppContext`] the server has, but without listening.

use std::future::Future;
use std::sync::Arc;

use clap::ArgMatches;

use crate::context::{AppContext, BoxError, BoxFuture};

type Run = dyn Fn(AppContext, ArgMatches) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync;

/// A subcommand: its clap definition and what it runs.
#[derive(Clone)]
pub struct Command {
    pub(crate) cli: clap::Command,
    pub(crate) run: Arc<Run>,
}

impl Command {
    /// `cli` names the subcommand and its arguments; `run` gets the context and the parsed
    /// arguments (both owned, so the async block borrows nothing).
    ///
    /// ```
    /// # use burrow::Command;
    /// let cli = burrow::clap::Command::new("count").about("Print the number of notes");
    /// let count = Command::new(cli, |ctx, _args| async move {
    ///     let sql = "SELECT count(*) FROM notes";
    ///     let (n,): (i64,) = ctx.db.read(move |c| c.query_one(sql, &[])).await?;
    ///     println!("{n}");
    ///     Ok(())
    /// });
    /// ```
    pub fn new<F, Fut>(cli: clap::Command, run: F) -> Command
    where
        F: Fn(AppContext, ArgMatches) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Command { cli, run: Arc::new(move |ctx, args| Box::pin(run(ctx, args))) }
    }

    pub fn name(&self) -> &str {
        self.cli.get_name()
    }
}
