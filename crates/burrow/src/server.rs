//! The server builder and its start-up sequence.
//!
//! parse config → validate (core, then each app) → templates → open DB → migrations
//! (dependency order) → router (core middleware, app middleware, app routes) → listen →
//! ready. Every failure before serving is one line on stderr and exit code 2, and
//! nothing has been written: a database file created by this start is removed again.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use clap::{Arg, ArgAction, ArgMatches};

use crate::app::{self, App, DynApp};
use crate::command::Command;
use crate::config::{AnySetting, Config, ConfigError};
use crate::context::AppContext;
use crate::db::{Db, DbError, DbOptions, Dsn, Migrations};
use crate::http::staticfiles::{StaticDir, StaticFiles};
use crate::http::{self, Draining, health};
use crate::i18n::{self, I18n};
use crate::jobs::{JobRegistry, Jobs};
use crate::lifecycle::Lifecycle;
use crate::mail::Mailer;
use crate::serve::pidfile::PidFile;
use crate::serve::restart::{self, Inherited, Mode};
use crate::serve::run::{self, RunError};
use crate::serve::{self, Signals};
use crate::settings::{self, CORE_SETTINGS, Detach, DevSettings, Settings};
use crate::template::{self, TemplateDir, Templates};

/// A Burrow server: a name, a version and the apps it is made of.
///
/// ```no_run
/// # struct Notes;
/// # impl burrow::App for Notes { fn name(&self) -> &'static str { "notes" } }
/// fn main() -> std::process::ExitCode {
///     burrow::Server::new("server", env!("CARGO_PKG_VERSION")).app(Notes).run()
/// }
/// ```
pub struct Server {
    name: &'static str,
    version: &'static str,
    about: &'static str,
    apps: Vec<Box<dyn DynApp>>,
}

/// A start-up failure: one line for the operator and the exit code.
#[derive(Debug)]
pub struct StartError {
    pub code: u8,
    pub message: String,
}

impl StartError {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> StartError {
        StartError { code, message: message.into() }
    }

    /// A configuration or environment problem (exit code 2), as one line.
    pub(crate) fn config(message: impl Into<String>) -> StartError {
        let message: String = message.into();
        StartError { code: 2, message: message.split_whitespace().collect::<Vec<_>>().join(" ") }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::config(e.0)
    }
}

impl From<RunError> for StartError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::PidFile { .. } => StartError::config(e.to_string()),
            RunError::DetachedExited { code } => StartError::new(code, ""),
            RunError::Listeners(_) | RunError::Detach(_) => StartError::new(1, e.to_string()),
        }
    }
}

/// A server whose database is migrated and whose HTTP stack is built, but which is not
/// listening: what `serve` runs, and what tests and benchmarks drive in-process.
pub struct Booted {
    /// What the server answers requests with (see [`Stack`](crate::Stack)).
    pub stack: crate::Stack,
    pub ctx: AppContext,
    apps: Arc<Vec<Box<dyn DynApp>>>,
    pub(crate) draining: Draining,
}

/// Parsed and validated: what every subcommand starts from.
struct Prepared {
    version: &'static str,
    matches: ArgMatches,
    config: Arc<Config>,
    settings: Arc<Settings>,
    apps: Vec<Box<dyn DynApp>>,
    commands: Vec<Command>,
}

impl Server {
    pub fn new(name: &'static str, version: &'static str) -> Server {
        Server { name, version, about: "A Burrow server", apps: Vec::new() }
    }

    /// The description `--help` shows.
    pub fn about(mut self, about: &'static str) -> Server {
        self.about = about;
        self
    }

    /// Registers an app. Order matters only among apps without dependencies between them.
    pub fn app(mut self, app: impl App) -> Server {
        self.apps.push(Box::new(app));
        self
    }

    /// Registers the apps a server-rendered site starts with, as Django's default
    /// `INSTALLED_APPS` do: the theme (layout, error pages, stylesheet; `site_name` in its
    /// header), sessions, CSRF protection and flash messages. To replace one (a theme of
    /// your own, say), register them one by one instead.
    pub fn defaults(self, site_name: &'static str) -> Server {
        use crate::contrib::{csrf::Csrf, messages::FlashMessages, session::Sessions};
        self.app(crate::contrib::theme::Theme::new(site_name))
            .app(Sessions::new())
            .app(Csrf::new())
            .app(FlashMessages)
    }

    /// Runs with the process arguments; returns the exit code.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Runs with the given arguments (the first is the program name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let name = self.name;
        #[cfg(feature = "mimalloc")]
        crate::allocator::configure();
        restart::remember_executable();
        // Before configuration: secrets handed over by a previous process must be in place
        // when apps read their settings.
        let inherited = Inherited::from_env();
        let result = match self.prepare(args, true) {
            Ok(Some(prepared)) => prepared.run(inherited),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        // Log lines still in the batch go out before the process's last words.
        crate::logging::flush();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // An empty message: the failing process already said why.
                if !e.message.is_empty() {
                    eprintln!("{name}: error: {}", e.message.replace('\n', " "));
                }
                ExitCode::from(e.code)
            }
        }
    }

    /// Validates config, opens and migrates the database and builds the router, without
    /// listening or logging. For tests and benchmarks.
    pub fn build<I, T>(self, args: I) -> Result<Booted, StartError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let prepared = self
            .prepare(args, false)?
            .ok_or_else(|| StartError::config("--help or --version given"))?;
        prepared.boot()
    }

    /// Parses flags, env and TOML, orders apps and lets each validate its settings.
    /// `Ok(None)` when `--help` or `--version` was printed.
    /// With `log`, logging starts as soon as its settings are known, so apps' warnings
    /// while they configure (e.g. a generated key) are seen.
    fn prepare<I, T>(mut self, args: I, log: bool) -> Result<Option<Prepared>, StartError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut apps = app::order(std::mem::take(&mut self.apps))?;
        let mut declared: Vec<&'static dyn AnySetting> = CORE_SETTINGS.to_vec();
        for app in &apps {
            for &setting in app.settings() {
                let new = setting.info();
                if let Some(existing) = declared.iter().map(|s| s.info()).find(|s| {
                    s.key() == new.key() || s.flag() == new.flag() || s.env() == new.env()
                }) {
                    return Err(StartError::config(format!(
                        "app '{}' declares setting '{}', which clashes with '{}'",
                        app.name(),
                        new.key(),
                        existing.key()
                    )));
                }
                declared.push(setting);
            }
        }
        let commands: Vec<Command> = apps.iter().flat_map(|a| a.commands()).collect();
        for (i, c) in commands.iter().enumerate() {
            if ["serve", "migrate", "seed", "backup", "check", "help"].contains(&c.name())
                || commands[..i].iter().any(|o| o.name() == c.name())
            {
                return Err(StartError::config(format!(
                    "CLI command '{}' is defined twice",
                    c.name()
                )));
            }
        }
        let matches = match self.cli(&declared, &commands).try_get_matches_from(args) {
            Ok(m) => m,
            Err(e) => {
                use clap::error::ErrorKind;
                match e.kind() {
                    ErrorKind::DisplayHelp => {
                        print!("{}", self.help(e.render().to_string(), &commands));
                        return Ok(None);
                    }
                    ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        let _ = e.print();
                        return Ok(None);
                    }
                    _ => return Err(StartError::config(clap_one_line(&e.render().to_string()))),
                }
            }
        };
        // `check` reports what is wrong with the configuration among its findings, as a
        // problem like any other, instead of stopping at the first one.
        let checking = matches.subcommand_name() == Some("check");
        let (config, core) = match Self::configure(&declared, &matches, &mut apps, log) {
            Ok(resolved) => resolved,
            Err(e) if checking => {
                println!("✗ {}", e.message);
                println!("1 problem(s) found (a configuration error stops the other checks).");
                return Err(StartError::new(1, ""));
            }
            Err(e) => return Err(e),
        };
        Ok(Some(Prepared {
            version: self.version,
            matches,
            config: Arc::new(config),
            settings: Arc::new(core),
            apps,
            commands,
        }))
    }

    /// Resolves the configuration, starts logging (with `log`), and lets each app read its
    /// settings.
    fn configure(
        declared: &[&'static dyn AnySetting],
        matches: &ArgMatches,
        apps: &mut [Box<dyn DynApp>],
        log: bool,
    ) -> Result<(Config, Settings), StartError> {
        let config = Config::resolve(declared, matches)?;
        let core = Settings::from_config(&config)?;
        if log {
            crate::logging::init(&core);
        }
        // Before the apps configure: they ask for generated keys, which --dev keeps. Not
        // for a server built in-process (tests, benchmarks: `log` is off), which would
        // write the file into whatever directory the test runs in.
        if core.dev.is_some() && log {
            crate::secrets::use_dev_file(std::path::Path::new(crate::secrets::DEV_KEYS_FILE))
                .map_err(StartError::config)?;
        }
        // `check` reports a bad PID file path among its findings instead of stopping.
        if let Some(pid_file) = &core.pid_file
            && matches.subcommand_name() != Some("check")
        {
            PidFile::check(pid_file)
                .map_err(|reason| config.error(&settings::PID_FILE, &reason))?;
        }
        for app in apps.iter_mut() {
            app.configure(&config)?;
        }
        // Also the settings nothing read: a bad value is an error now, not when first used.
        config.check_all()?;
        Ok((config, core))
    }

    /// The text for `--help`. A subcommand's help (clap's usage line names it: `Usage:
    /// server backup …`) lists its own arguments without the global settings, which every
    /// subcommand accepts but which would bury them; `server --help` lists those.
    fn help(&self, rendered: String, commands: &[Command]) -> String {
        let path = usage_path(&rendered);
        let [_, name] = path.as_slice() else {
            return rendered;
        };
        let mut cli = self.cli(&[], commands).bin_name(self.name);
        cli.build();
        let Some(sub) = cli.find_subcommand_mut(name) else {
            return rendered;
        };
        let globals = format!(
            "Global settings (--port, --database-dsn, --log-level, …) go before or after the \
             command: see {} --help.",
            self.name
        );
        // The one global option clap lists here goes after the command's own.
        let mut sub =
            sub.clone().mut_arg("config", |a| a.display_order(usize::MAX)).after_help(globals);
        sub.render_help().to_string()
    }

    fn cli(&self, settings: &[&dyn AnySetting], commands: &[Command]) -> clap::Command {
        let mut cli = clap::Command::new(self.name)
            .version(self.version)
            .about(self.about)
            // Repeating a flag is not an error: the last one wins, as in most CLIs.
            .args_override_self(true)
            .after_help(
                "Precedence: flag > environment variable > config file > default. \
                 In the config file (--config), each option is the TOML key shown in \
                 [config: …], e.g. [server] port = 8080 for [config: server.port].",
            )
            .arg(
                Arg::new("config")
                    .long("config")
                    .env("CONFIG")
                    .global(true)
                    .value_name("FILE")
                    .help("TOML file with settings (e.g. [server] port = 8080)"),
            )
            .args(settings.iter().map(|setting| setting.info().clap_arg()))
            .subcommand(
                clap::Command::new("serve")
                    .about("Serve HTTP (the default when no command is given)"),
            )
            .subcommand(
                clap::Command::new("migrate")
                    .about("Apply pending migrations without serving")
                    .arg(
                        Arg::new("list")
                            .long("list")
                            .action(ArgAction::SetTrue)
                            .help("List applied and pending migrations; apply nothing"),
                    ),
            )
            .subcommand(clap::Command::new("seed").about("Load every app's sample data"))
            .subcommand(
                clap::Command::new("backup")
                    .about("Copy the live database consistently (safe while the server runs)")
                    .arg(
                        Arg::new("dest")
                            .required(true)
                            .value_name("DEST")
                            .help("File, or directory for app-YYYYMMDD-HHMMSS.db"),
                    )
                    .arg(Arg::new("force").long("force").action(ArgAction::SetTrue).help(
                        "Replace DEST if it is an existing file (never the database \
                         itself, never a symbolic link)",
                    ))
                    .arg(
                        Arg::new("include-media")
                            .long("include-media")
                            .action(ArgAction::SetTrue)
                            .help(
                                "Also copy the uploaded files (--storage-dir) to BACKUP.media/ \
                             beside the backup",
                            ),
                    ),
            )
            .subcommand(
                clap::Command::new("check").about("Report what would go wrong in production"),
            );
        for command in commands {
            cli = cli.subcommand(command.cli.clone());
        }
        cli
    }
}

impl Prepared {
    fn run(self, inherited: Inherited) -> Result<(), StartError> {
        match self.matches.subcommand() {
            None | Some(("serve", _)) => self.serve(inherited),
            Some(("migrate", sub)) if sub.get_flag("list") => self.list_migrations(),
            Some(("migrate", _)) => {
                let mut applied = self.open_and_migrate()?.1;
                if let Some(dsn) = self.jobs_database()? {
                    let source = "--jobs-database";
                    let sets = self.jobs_migration_sets();
                    applied.extend(open_and_migrate(&dsn, &self.settings, source, &sets)?.1);
                }
                if applied.is_empty() {
                    println!("No pending migrations.");
                }
                for file in applied {
                    println!("applied {file}");
                }
                Ok(())
            }
            Some(("backup", args)) => self.backup(
                args.get_one::<String>("dest").expect("required"),
                args.get_flag("force"),
                args.get_flag("include-media"),
            ),
            Some(("check", _)) => {
                let problems = crate::check::run(&self.settings, &self.config);
                for problem in &problems {
                    println!("✗ {}", problem.0);
                }
                if problems.is_empty() {
                    println!("All clear: nothing found that would go wrong in production.");
                    Ok(())
                } else {
                    println!("{} problem(s) found.", problems.len());
                    Err(StartError::new(1, ""))
                }
            }
            Some(("seed", _)) => {
                let booted = self.boot()?;
                booted.block_on(async {
                    for app in booted.apps.iter() {
                        app.seed(&booted.ctx).await.map_err(|e| StartError {
                            code: 1,
                            message: format!("seed of app '{}' failed: {e}", app.name()),
                        })?;
                    }
                    println!("Seeded.");
                    Ok(())
                })
            }
            Some((command, args)) => {
                let command = self
                    .commands
                    .iter()
                    .find(|c| c.name() == command)
                    .cloned()
                    .expect("clap only accepts known commands");
                let args = args.clone();
                let booted = self.boot()?;
                booted.block_on(async {
                    let result = (command.run)(booted.ctx.clone(), args).await;
                    // What the command left to finish (jobs queued after a commit) is done
                    // before the process exits, and the database closes cleanly.
                    booted.shutdown().await;
                    result.map_err(|e| StartError {
                        code: 1,
                        message: format!("{}: {e}", command.name()),
                    })
                })
            }
        }
    }

    /// `server` / `server serve`: detach if asked to, else take the listeners (inherited
    /// or bound; before the database is touched, so a busy port writes nothing), boot and
    /// serve until a signal.
    fn serve(self, inherited: Inherited) -> Result<(), StartError> {
        let settings = self.settings.clone();
        let mode = Mode::detect();
        let runtime = runtime()?;
        if let Mode::Restart { exe } = &mode
            && should_detach(&settings, &inherited)
        {
            return runtime
                .block_on(run::detach(exe, settings.restart_timeout))
                .map_err(StartError::from);
        }
        let _entered = runtime.enter();
        let signals = Signals::install().map_err(|e| StartError {
            code: 1,
            message: format!("cannot install signal handlers: {e}"),
        })?;
        let listeners =
            serve::listeners(&inherited.listeners, &settings).map_err(StartError::config)?;
        // Certificates before the database: a bad certificate file writes nothing.
        let tls = serve::tls::prepare(&settings).map_err(StartError::config)?;
        let booted = self.boot()?;
        booted.start_when_serving();
        let site = run::Site {
            settings: settings.clone(),
            stack: booted.stack.clone(),
            // The ACME HTTP port's answers get the security headers too.
            acme_stack: tls
                .acme
                .as_ref()
                .map(|a| crate::Stack::plain(http::security_headers(a.http_router(), &settings))),
            draining: booted.draining.clone(),
            lifecycle: booted.ctx.lifecycle.clone(),
            close: move |grace| async move { booted.shutdown_within(grace).await },
        };
        // This thread now only waits for the end; what its boot freed goes back now.
        #[cfg(feature = "mimalloc")]
        crate::allocator::serving();
        let result = runtime
            .block_on(run::run(site, listeners, tls, signals, inherited, mode))
            .map_err(StartError::from);
        // Dropping a runtime waits for every blocking task without limit; the shutdown
        // already waited for database work up to --shutdown-timeout, so what is left is
        // abandoned (and logged as such) rather than waited for.
        runtime.shutdown_timeout(ABANDON_AFTER);
        result
    }

    /// Every app's migrations for the server's database: all of them, but the `jobs`
    /// app's when the queue has a database of its own.
    fn migration_sets(&self) -> Vec<Migrations> {
        let separate = matches!(self.jobs_database(), Ok(Some(_)));
        self.app_migrations(|name| !(separate && name == crate::contrib::jobs::NAME))
    }

    /// The `jobs` app's migrations, for `--jobs-database`.
    fn jobs_migration_sets(&self) -> Vec<Migrations> {
        self.app_migrations(|name| name == crate::contrib::jobs::NAME)
    }

    fn app_migrations(&self, which: impl Fn(&str) -> bool) -> Vec<Migrations> {
        (self.apps.iter().filter(|a| which(a.name())))
            .filter_map(|a| a.migrations().map(|dir| Migrations::from_dir(a.name(), dir)))
            .collect()
    }

    /// The queue's own SQLite file, when the `jobs` app is registered with
    /// `--jobs-database` (checked in its `configure`).
    fn jobs_database(&self) -> Result<Option<Dsn>, StartError> {
        if !self.apps.iter().any(|a| a.name() == crate::contrib::jobs::NAME) {
            return Ok(None);
        }
        crate::contrib::jobs::separate_database(&self.config).map_err(StartError::from)
    }

    /// Opens the database and applies pending migrations (see [`open_and_migrate`]).
    fn open_and_migrate(&self) -> Result<(Db, Vec<String>), StartError> {
        let source = format!("--database-dsn from {}", self.config.source(&settings::DATABASE_DSN));
        let sets = self.migration_sets();
        open_and_migrate(&self.settings.database, &self.settings, &source, &sets)
    }

    /// `server backup DEST [--force]`: works whether or not a server runs on the database.
    /// A destination that is refused is bad input (exit code 2, nothing written); a backup
    /// that fails while copying exits with 1.
    fn backup(&self, dest: &str, force: bool, include_media: bool) -> Result<(), StartError> {
        let source = match &self.settings.database {
            Dsn::SqliteFile(source) => source,
            Dsn::SqliteMemory => {
                return Err(StartError::config(
                    "an in-memory database (--database-dsn sqlite://:memory:) cannot be backed up",
                ));
            }
            Dsn::Postgres(_) => {
                return Err(StartError::config(
                    "server backup copies SQLite files; back up PostgreSQL with pg_dump (e.g. \
                     pg_dump -Fc -f app.dump DBNAME)",
                ));
            }
        };
        let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut last = 0;
        let plan = crate::db::backup::plan(source, std::path::Path::new(dest), force)
            .map_err(|e| StartError::config(e.to_string()))?;
        let report = plan
            .run(|done, total| {
                // Progress for large databases (25,000 pages ≈ 100 MB), at most once per percent.
                let percent = done * 100 / total.max(1);
                if (show || total > 25_000) && percent != last {
                    last = percent;
                    eprint!("\rbacking up {}: {percent}% ({done}/{total} pages)", source.display());
                }
            })
            .map_err(|e| StartError::new(1, e.to_string()))?;
        if last > 0 {
            eprintln!();
        }
        println!(
            "Backed up {} to {} ({:.1} MB in {:.2} s, {:.1} MB/s; integrity ok)",
            source.display(),
            report.path.display(),
            report.bytes as f64 / 1e6,
            report.elapsed.as_secs_f64(),
            report.mb_per_s()
        );
        let media = &self.settings.storage_dir;
        if include_media {
            let mut copy = report.path.clone().into_os_string();
            copy.push(".media");
            let copy = std::path::PathBuf::from(copy);
            let (files, bytes) = crate::storage::backup::copy(media, &copy).map_err(|e| {
                StartError::new(
                    1,
                    format!("copying {} to {}: {e}", media.display(), copy.display()),
                )
            })?;
            println!(
                "Copied {files} uploaded file(s) ({:.1} MB) from {} to {}",
                bytes as f64 / 1e6,
                media.display(),
                copy.display()
            );
        } else if media.is_dir() {
            println!(
                "Uploaded files in {} are not in this backup: add --include-media, or copy that \
                 directory (its files never change once written)",
                media.display()
            );
        }
        Ok(())
    }

    fn list_migrations(&self) -> Result<(), StartError> {
        let options = DbOptions { readers: 1, ..self.settings.db_options() };
        let db = Db::open_with(&self.settings.database, &options)
            .map_err(|e| StartError::config(e.to_string()))?;
        let status = db
            .migration_status_blocking(&self.migration_sets())
            .map_err(|e| StartError::config(e.to_string()))?;
        print_migrations(&status);
        let mut status = status;
        if let Some(dsn) = self.jobs_database()? {
            let jobs = Db::open_with(&dsn, &options)
                .map_err(|e| StartError::config(format!("{e} (--jobs-database)")))?;
            let jobs_status = jobs
                .migration_status_blocking(&self.jobs_migration_sets())
                .map_err(|e| StartError::config(e.to_string()))?;
            println!("--jobs-database {dsn}:");
            print_migrations(&jobs_status);
            status.extend(jobs_status);
        }
        let pending = status.iter().filter(|m| m.applied_at.is_none()).count();
        println!("{} applied, {pending} pending", status.len() - pending);
        Ok(())
    }

    fn boot(self) -> Result<Booted, StartError> {
        let version = self.version;
        // Templates before the database: a template that does not compile stops the start
        // before a database file is created or migrated.
        let migrations = self.migration_sets();
        let (jobs_database, jobs_migrations) = (self.jobs_database()?, self.jobs_migration_sets());
        let apps = Arc::new(self.apps);
        // --dev: each app's source folder, where it has one (`None` in production).
        let roots = self.settings.dev.as_ref().map(|dev| source_roots(&apps, dev));
        let files = match &roots {
            None => {
                let static_dirs: Vec<_> = apps.iter().filter_map(|a| a.static_files()).collect();
                StaticFiles::collect(&static_dirs)
            }
            Some(roots) => StaticFiles::dev(
                (apps.iter().zip(roots))
                    .filter_map(|(app, root)| match root {
                        Some(root) => Some(StaticDir::Disk(root.join("static"))),
                        None => app.static_files().map(StaticDir::Embedded),
                    })
                    .collect(),
            ),
        };
        let configure: template::Configure = Arc::new({
            let (files, config, apps) = (files.clone(), self.config.clone(), apps.clone());
            move |env: &mut template::TemplateEnv| {
                files.register(env);
                env.add_global("app_version", version);
                let config = config.clone();
                env.add_function("setting", move |key: &str| {
                    let text = config.text_for_template(key);
                    text.map_err(|e| {
                        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e)
                    })
                });
                for app in apps.iter() {
                    app.template_env(env);
                }
            }
        });
        let i18n = Arc::new(languages(&apps, &self.settings, &self.config)?);
        let sources = template_sources(&apps, roots.as_deref(), i18n.clone());
        let templates =
            Templates::build(sources, configure, roots.is_some()).map_err(StartError::config)?;
        let registry = job_registry(&apps)?;
        let mut admin = crate::admin::AdminSite::default();
        for app in apps.iter() {
            app.admin(admin.for_app(app.name()));
        }
        admin.check().map_err(StartError::config)?;
        let source = format!("--database-dsn from {}", self.config.source(&settings::DATABASE_DSN));
        let new_file = match &self.settings.database {
            Dsn::SqliteFile(path) => (!path.exists()).then(|| path.clone()),
            _ => None,
        };
        let (db, _) =
            open_and_migrate(&self.settings.database, &self.settings, &source, &migrations)?;
        let queue_db = match &jobs_database {
            Some(dsn) => {
                match open_and_migrate(dsn, &self.settings, "--jobs-database", &jobs_migrations) {
                    Ok((queue_db, _)) => queue_db,
                    Err(e) => {
                        // A failed start writes nothing: not the server's database either.
                        drop(db);
                        if let Some(path) = new_file {
                            remove_database(&path);
                        }
                        return Err(e);
                    }
                }
            }
            None => db.clone(),
        };
        let installed = apps.iter().any(|a| a.name() == crate::contrib::jobs::NAME);
        let jobs = Jobs::new(registry, queue_db, installed, jobs_database.is_some());
        if let Some(warning) = settings::storage_dir_warning(&self.settings.storage_dir) {
            tracing::warn!("{warning}");
        }
        let storage = crate::storage::Storage::new(crate::storage::FileSystem::new(
            self.settings.storage_dir.clone(),
        ));
        let ctx = AppContext {
            live: db.live().clone(),
            db,
            storage,
            config: self.config,
            mailer: Mailer::new(self.settings.mail.as_ref(), jobs.clone()),
            settings: self.settings,
            templates: templates.clone(),
            jobs,
            lifecycle: Lifecycle::default(),
            admin: Arc::new(admin),
        };
        let mut routes = Router::new()
            .merge(health::routes(ctx.db.clone(), readiness_checks(&apps, &ctx), version))
            .merge(files.routes());
        let secure = ctx.settings.base_url.starts_with("https://");
        if let Some(switch) = i18n::routes(ctx.templates.i18n(), secure) {
            routes = routes.merge(switch);
        }
        for app in apps.iter() {
            routes = routes.merge(app.routes(&ctx));
        }
        // Inside the app middleware, so a 404 page knows what it knows (e.g. who is signed in).
        routes = routes.fallback(|| async { crate::error::Error::not_found() });
        // Earlier apps' middleware wraps later apps' middleware.
        for app in apps.iter().rev() {
            routes = app.middleware(routes, &ctx);
        }
        let draining = Draining::default();
        let reloads = roots.map(|roots| watch_sources(&apps, &roots, &templates));
        // The session's and CSRF cookies are the core stack's (see `core_stack`).
        let csrf =
            apps.iter().find_map(|app| app.as_any().downcast_ref::<crate::contrib::csrf::Csrf>());
        let sessions = apps
            .iter()
            .find_map(|app| app.as_any().downcast_ref::<crate::contrib::session::Sessions>())
            .map(|sessions| sessions.cookie_apps(&ctx, csrf.map(|csrf| csrf.config(&ctx))));
        let stack = http::core_stack(routes, &ctx, draining.clone(), reloads, sessions);
        if ctx.settings.dev.is_some() {
            crate::secrets::save_dev_file();
        }
        crate::secrets::flush_warnings();
        Ok(Booted { stack, ctx, apps, draining })
    }
}

/// Opens the database and applies pending migrations. A database file this call
/// created is removed again when it fails, so a failed start writes nothing.
fn print_migrations(status: &[crate::db::MigrationStatus]) {
    for m in status {
        match &m.applied_at {
            Some(at) => println!("[x] {}/{}  (applied {at})", m.app, m.name),
            None => println!("[ ] {}/{}  (pending)", m.app, m.name),
        }
    }
}

/// `source` names the setting for errors (`--database-dsn from flag`).
fn open_and_migrate(
    dsn: &Dsn,
    settings: &Settings,
    source: &str,
    migrations: &[Migrations],
) -> Result<(Db, Vec<String>), StartError> {
    let new_file = match dsn {
        Dsn::SqliteFile(path) => (!path.exists()).then(|| path.clone()),
        Dsn::SqliteMemory | Dsn::Postgres(_) => None,
    };
    let options = settings.db_options();
    let db =
        Db::open_with(dsn, &options).map_err(|e| StartError::config(format!("{e} ({source})")))?;
    match db.migrate_blocking(migrations) {
        Ok(applied) => {
            for file in &applied {
                tracing::info!("applied migration {file}");
            }
            Ok((db, applied))
        }
        Err(e) => {
            drop(db);
            if let Some(path) = new_file {
                remove_database(&path);
            }
            let message = match e {
                DbError::Migration { .. } => format!("{e}; the database was left unchanged"),
                other => format!("{other} ({source})"),
            };
            Err(StartError::config(message))
        }
    }
}

/// clap's error on one line: the problem, its tips (`a similar argument exists: '--port'`)
/// and the command whose `--help` explains it, without the usage block.
fn clap_one_line(rendered: &str) -> String {
    let path = usage_path(rendered);
    let mut parts: Vec<String> = Vec::new();
    let mut lines = rendered.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let line = line.trim_start_matches("error: ");
        // "the following required arguments were not provided:" is followed by the
        // arguments, one per line: one clause.
        if line.ends_with(':') {
            let mut items = Vec::new();
            while let Some(item) = lines.peek().filter(|l| !l.is_empty() && !l.ends_with(':')) {
                items.push(item.to_string());
                lines.next();
            }
            parts.push(format!("{line} {}", items.join(", ")));
        } else {
            parts.push(line.to_string());
        }
    }
    let problem = if parts.is_empty() { "invalid arguments".to_string() } else { parts.join("; ") };
    let command =
        if path.is_empty() { "--help".to_string() } else { format!("{} --help", path.join(" ")) };
    format!("{problem} (see {command})")
}

/// The command path of clap's `Usage:` line: `["server", "backup"]` for `Usage: server
/// backup [OPTIONS] <DEST>`.
fn usage_path(rendered: &str) -> Vec<String> {
    let Some(usage) = rendered.lines().find_map(|l| l.trim().strip_prefix("Usage:")) else {
        return Vec::new();
    };
    usage
        .split_whitespace()
        .take_while(|w| !w.starts_with(['[', '<', '-']))
        .map(str::to_string)
        .collect()
}

/// The apps' templates, navigation entries and request-context hooks, in app order. With
/// `roots` (--dev), an app with a source folder has its templates read from there.
fn template_sources(
    apps: &Arc<Vec<Box<dyn DynApp>>>,
    roots: Option<&[Option<PathBuf>]>,
    i18n: Arc<I18n>,
) -> template::Sources {
    let hooks = apps.clone();
    let dirs = apps.iter().enumerate().filter_map(|(i, app)| {
        match roots.and_then(|roots| roots[i].as_ref()) {
            Some(root) => Some(TemplateDir::Disk(root.join("templates"))),
            None => app.templates().map(TemplateDir::Embedded),
        }
    });
    template::Sources {
        dirs: dirs.collect(),
        nav: apps.iter().flat_map(|a| a.nav_items()).collect(),
        request_hooks: Arc::new(move |request, context| {
            for app in hooks.iter() {
                app.request_context(request, context);
            }
        }),
        i18n,
    }
}

/// The site's languages from the core's and the apps' catalogs, in app order.
fn languages(
    apps: &[Box<dyn DynApp>],
    settings: &Settings,
    config: &Config,
) -> Result<I18n, StartError> {
    let catalogs: Vec<i18n::Source> =
        apps.iter().filter_map(|app| Some((app.name(), app.translations()?))).collect();
    let languages = settings.i18n_languages.as_deref();
    I18n::build(&settings.i18n_default_language, languages, &catalogs).map_err(|e| match e {
        i18n::BuildError::DefaultLanguage(reason) => {
            StartError::config(config.error(&settings::I18N_DEFAULT_LANGUAGE, &reason).0)
        }
        i18n::BuildError::Catalog(reason) => StartError::config(reason),
    })
}

/// --dev: each app's source folder (`None` for an app without one, such as the contrib
/// apps, which stay embedded): where `app_files!` was built from, or under
/// `--dev-source-root`.
fn source_roots(apps: &[Box<dyn DynApp>], dev: &DevSettings) -> Vec<Option<PathBuf>> {
    (apps.iter().map(|app| app.files()))
        .map(|files| {
            files.map(|files| match &dev.source_root {
                Some(root) => root.join(files.relative()),
                None => files.source().to_path_buf(),
            })
        })
        .collect()
}

/// --dev: watches the apps' `templates/` and `static/` folders; after a change the
/// templates are compiled again and open pages are told to reload.
fn watch_sources(
    apps: &[Box<dyn DynApp>],
    roots: &[Option<PathBuf>],
    templates: &Templates,
) -> http::dev::Reloads {
    let reloads = http::dev::Reloads::default();
    let folders: Vec<PathBuf> = (roots.iter().flatten())
        .flat_map(|root| [root.join("templates"), root.join("static")])
        .collect();
    let names: Vec<&str> =
        (apps.iter().zip(roots)).filter(|(_, r)| r.is_some()).map(|(a, _)| a.name()).collect();
    tracing::info!(
        "--dev: templates and static files of {} read from their source folders and reloaded \
         on change (production serves the embedded copies)",
        if names.is_empty() { "no app".to_string() } else { names.join(", ") }
    );
    for folder in folders.iter().filter(|f| !f.is_dir()) {
        tracing::debug!("--dev: {} does not exist (yet)", folder.display());
    }
    let Some(reloader) = templates.reloader() else { return reloads };
    let notify = reloads.clone();
    http::dev::watch_folders(folders, move || {
        let started = std::time::Instant::now();
        match reloader.reload() {
            // The server is gone (a server built in-process and dropped): stop watching.
            None => return false,
            Some(Ok(())) => tracing::info!(
                "--dev: change seen; templates rebuilt in {:.1} ms, reloading pages",
                started.elapsed().as_secs_f64() * 1000.0
            ),
            Some(Err(e)) => tracing::error!("--dev: {e} (shown on every page until fixed)"),
        }
        notify.notify();
        true
    });
    reloads
}

/// Every app's job types and periodic jobs, after the framework's own (mail); a type
/// registered twice or a bad schedule stops the start.
fn job_registry(apps: &[Box<dyn DynApp>]) -> Result<JobRegistry, StartError> {
    let mut registry = JobRegistry::default();
    registry.register::<crate::mail::SendMail>();
    for app in apps {
        app.jobs(&mut registry);
    }
    match registry.errors.first() {
        Some(error) => Err(StartError::config(error.clone())),
        None => Ok(registry),
    }
}

/// Each app's readiness hook, for `/healthz/ready`.
fn readiness_checks(apps: &Arc<Vec<Box<dyn DynApp>>>, ctx: &AppContext) -> Vec<health::Check> {
    (0..apps.len())
        .map(|i| {
            let (apps, ctx) = (apps.clone(), ctx.clone());
            let (facts_apps, facts_ctx) = (apps.clone(), ctx.clone());
            health::Check {
                name: apps[i].name(),
                run: Box::new(move || {
                    let (apps, ctx) = (apps.clone(), ctx.clone());
                    Box::pin(async move { apps[i].ready(&ctx).await })
                }),
                facts: Box::new(move || {
                    let (apps, ctx) = (facts_apps.clone(), facts_ctx.clone());
                    Box::pin(async move { apps[i].health(&ctx).await })
                }),
            }
        })
        .collect()
}

impl Booted {
    /// True if the server has an app of this name (the test client looks for `csrf`).
    pub fn has_app(&self, name: &str) -> bool {
        self.apps.iter().any(|app| app.name() == name)
    }

    /// Calls every app's [`start`](App::start) hook once the process serves (the
    /// lifecycle says so), in app order.
    pub(crate) fn start_when_serving(&self) {
        let (apps, ctx) = (self.apps.clone(), self.ctx.clone());
        tokio::spawn(async move {
            ctx.lifecycle.serving().await;
            crate::live::start_listener(&ctx.db, &ctx.lifecycle);
            for app in apps.iter() {
                app.start(&ctx);
            }
        });
    }

    /// Runs every app's shutdown hook in reverse app order, then closes the database.
    pub async fn shutdown(&self) {
        self.shutdown_within(self.ctx.settings.shutdown_timeout).await;
    }

    /// [`Booted::shutdown`], waiting at most `grace` for database work still running on
    /// blocking threads (it is interrupted first); what is still running then is logged
    /// and abandoned.
    pub async fn shutdown_within(&self, grace: std::time::Duration) {
        // Background work that has not heard yet (a test's server) stops now, with what
        // is left of the grace to finish.
        if !matches!(self.ctx.lifecycle.phase(), crate::lifecycle::Phase::Stopping { .. }) {
            self.ctx.lifecycle.set_stopping(tokio::time::Instant::now() + grace);
        }
        for app in self.apps.iter().rev() {
            app.shutdown(&self.ctx).await;
        }
        let abandoned = self.ctx.db.close(grace).await;
        if abandoned > 0 {
            tracing::warn!(
                operations = abandoned,
                "shutdown: abandoning {abandoned} database operation(s) still running after \
                 {:.1} s (interrupted; they end with the process)",
                grace.as_secs_f64()
            );
        }
    }

    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StartError>>,
    ) -> Result<T, StartError> {
        runtime()?.block_on(f)
    }
}

/// How long the runtime still waits for blocking tasks once the server has shut down:
/// only for tasks finishing right now, since the shutdown already waited for them.
const ABANDON_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Detach (the Type=forking contract) when asked, or by default with a PID file — but
/// never when a process already waits for this one, under Type=notify, or as PID 1.
fn should_detach(settings: &Settings, inherited: &Inherited) -> bool {
    let wanted = match settings.detach {
        Detach::Always => true,
        Detach::Never => false,
        Detach::Auto => settings.pid_file.is_some(),
    };
    wanted && !inherited.has_starter() && !serve::notify::enabled() && std::process::id() != 1
}

fn runtime() -> Result<tokio::runtime::Runtime, StartError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| StartError {
        code: 1,
        message: format!("cannot start the async runtime: {e}"),
    })
}

fn remove_database(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(crate::db::sidecar(path, suffix));
    }
}
