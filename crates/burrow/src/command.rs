//! CLI subcommands contributed by apps (`server NAME …`), like Django's management commands.
//!
//! A command runs after configuration, database checks and migrations, with the same
//! [`AppContext`] the server has, but without listening.

use std::sync::Arc;

use clap::ArgMatches;

use crate::app::{AppContext, BoxError, BoxFuture};

type Run = dyn for<'a> Fn(&'a AppContext, &'a ArgMatches) -> BoxFuture<'a, Result<(), BoxError>>
    + Send
    + Sync;

/// A subcommand: its clap definition and what it runs.
#[derive(Clone)]
pub struct Command {
    pub(crate) cli: clap::Command,
    pub(crate) run: Arc<Run>,
}

impl Command {
    /// `cli` names the subcommand and its arguments; `run` gets the parsed arguments.
    ///
    /// ```
    /// # use burrow::Command;
    /// let count = Command::new(clap::Command::new("count").about("Print the number of notes"), |ctx, _args| {
    ///     Box::pin(async move {
    ///         let (n,): (i64,) = ctx.db.read(|c| c.query_one("SELECT count(*) FROM notes", &[])).await?;
    ///         println!("{n}");
    ///         Ok(())
    ///     })
    /// });
    /// ```
    pub fn new<F>(cli: clap::Command, run: F) -> Command
    where
        F: for<'a> Fn(&'a AppContext, &'a ArgMatches) -> BoxFuture<'a, Result<(), BoxError>>
            + Send
            + Sync
            + 'static,
    {
        Command { cli, run: Arc::new(run) }
    }

    pub fn name(&self) -> &str {
        self.cli.get_name()
    }
}
