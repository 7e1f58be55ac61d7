//! The [`App`] trait: one trait, a name, and a default no-op hook for every capability.
//!
//! An app overrides only what it provides. Apps are registered with
//! [`Server::app`](crate::Server::app); the server orders them by [`App::dependencies`]
//! and refuses to start on a missing dependency, a cycle or a duplicate name.

use std::collections::HashMap;
use std::future::Future;

use axum::Router;
use include_dir::Dir;

use crate::admin::AdminSite;
use crate::command::Command;
use crate::config::{AnySetting, Config, ConfigError};
use crate::context::{AppContext, BoxError, BoxFuture};
use crate::embed::AppFiles;
use crate::jobs::JobRegistry;
use crate::template::{NavItem, RequestContext, RequestInfo, TemplateEnv};

/// A composable piece of a Burrow server (like a Django app or a Bevy plugin).
///
/// Hooks run in this order at start-up: [`settings`](App::settings) →
/// [`configure`](App::configure) → [`migrations`](App::migrations) →
/// [`templates`](App::templates) / [`template_env`](App::template_env) →
/// [`jobs`](App::jobs) → [`admin`](App::admin) → [`routes`](App::routes) → [`middleware`](App::middleware); once
/// the process serves, [`start`](App::start). At shutdown, [`shutdown`](App::shutdown)
/// runs in reverse app order.
#[allow(unused_variables)]
pub trait App: Send + Sync + 'static {
    /// A unique name; also the app's key in `_migrations`.
    fn name(&self) -> &'static str;

    /// Names of apps that must be registered and set up before this one.
    fn dependencies(&self) -> &'static [&'static str] {
        &[]
    }

    /// Settings this app adds (flags, env vars, TOML keys), under its own prefix: its
    /// [`Setting`](crate::Setting) constants, e.g. `&[&COOKIE_NAME, &MAX_AGE]`.
    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[]
    }

    /// Reads (with [`Config::get`]) and validates this app's settings before anything is
    /// opened or written.
    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The app's folders (`migrations/`, `templates/`, `static/`), compiled in with
    /// [`app_files!`](crate::app_files): the usual way to provide all three at once. The
    /// three hooks below read from it unless an app overrides them.
    fn files(&self) -> Option<&'static AppFiles> {
        None
    }

    /// Embedded `*.up.sql` migrations, applied in name order at start-up.
    fn migrations(&self) -> Option<&'static Dir<'static>> {
        self.files().and_then(AppFiles::migrations)
    }

    /// Embedded templates, named by their path in the directory. An app registered later
    /// overrides an earlier app's template of the same name.
    fn templates(&self) -> Option<&'static Dir<'static>> {
        self.files().and_then(AppFiles::templates)
    }

    /// Embedded message catalogs, one per language (`en.toml`, `de.toml`; see
    /// [`i18n`](crate::i18n)). A later app's text replaces an earlier app's for the same key.
    fn translations(&self) -> Option<&'static Dir<'static>> {
        self.files().and_then(AppFiles::translations)
    }

    /// Adds static template functions, filters and globals.
    fn template_env(&self, env: &mut TemplateEnv) {}

    /// Adds template values computed for every render of every page. A function that
    /// depends on the request (e.g. `csrf_token()`) is cheaper registered once in
    /// [`template_env`](App::template_env), reading the request with
    /// [`template::request_of`](crate::template::request_of) when a page calls it.
    fn request_context(&self, request: &RequestInfo, context: &mut RequestContext) {}

    /// Navigation entries for the layout.
    fn nav_items(&self) -> Vec<NavItem> {
        Vec::new()
    }

    /// Embedded static files, served under `/static/` with content-hashed URLs.
    fn static_files(&self) -> Option<&'static Dir<'static>> {
        self.files().and_then(AppFiles::static_files)
    }

    /// The app's routes.
    fn routes(&self, ctx: &AppContext) -> Router {
        Router::new()
    }

    /// Wraps the whole router (every app's routes) in this app's middleware. Earlier
    /// apps' middleware runs outside later apps' middleware, and the session (the
    /// [`Sessions`](crate::contrib::session::Sessions) app's layer, part of the core stack)
    /// outside all of them: any app's middleware can read it. The CSRF app's check, part
    /// of the core stack too, also runs outside all of them: no app's middleware sees an
    /// unsafe request that failed it.
    fn middleware(&self, router: Router, ctx: &AppContext) -> Router {
        router
    }

    /// CLI subcommands (`server NAME …`).
    fn commands(&self) -> Vec<Command> {
        Vec::new()
    }

    /// Registers the app's background job types and periodic jobs (run by the `jobs`
    /// app; see [`jobs`](crate::jobs)).
    fn jobs(&self, jobs: &mut JobRegistry) {}

    /// Registers the app's tables and pages in the admin (served under `/admin/` by the
    /// `admin` app; see [`admin`](crate::admin)).
    fn admin(&self, site: &mut AdminSite) {}

    /// Called once the process is ready and serving (never for CLI commands): starts the
    /// app's background work (`tokio::spawn`). The work stops taking new tasks when
    /// `ctx.lifecycle.stopping()` resolves; [`shutdown`](App::shutdown) waits for it.
    fn start(&self, ctx: &AppContext) {}

    /// Sample data for `server seed`.
    ///
    /// ```ignore
    /// async fn seed(&self, ctx: &AppContext) -> Result<(), BoxError> {
    ///     ctx.db.write(|c| c.execute("INSERT INTO notes(title) VALUES ('Hello')", &[])).await?;
    ///     Ok(())
    /// }
    /// ```
    fn seed(&self, ctx: &AppContext) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Readiness for `/healthz/ready`; an `Err` makes it answer 503 naming this app.
    fn ready(&self, ctx: &AppContext) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Facts for `/healthz/ready` (e.g. queue depths), under `apps.NAME`; unlike
    /// [`ready`](App::ready) they never make the server unready.
    fn health(&self, ctx: &AppContext) -> impl Future<Output = Option<serde_json::Value>> + Send {
        async { None }
    }

    /// Called once at graceful shutdown, after requests drained, in reverse app order.
    fn shutdown(&self, ctx: &AppContext) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How the server holds apps: [`App`] with its async hooks boxed. `App` itself cannot be
/// a trait object (its hooks are `async fn`s, so apps write them as such), and every app
/// gets this for free.
pub(crate) trait DynApp: Send + Sync + 'static {
    /// The app itself, for the framework's own apps that the core stack places (sessions).
    fn as_any(&self) -> &dyn std::any::Any;
    fn name(&self) -> &'static str;
    fn dependencies(&self) -> &'static [&'static str];
    fn settings(&self) -> &'static [&'static dyn AnySetting];
    fn configure(&mut self, config: &Config) -> Result<(), ConfigError>;
    fn files(&self) -> Option<&'static AppFiles>;
    fn migrations(&self) -> Option<&'static Dir<'static>>;
    fn templates(&self) -> Option<&'static Dir<'static>>;
    fn translations(&self) -> Option<&'static Dir<'static>>;
    fn template_env(&self, env: &mut TemplateEnv);
    fn request_context(&self, request: &RequestInfo, context: &mut RequestContext);
    fn nav_items(&self) -> Vec<NavItem>;
    fn static_files(&self) -> Option<&'static Dir<'static>>;
    fn routes(&self, ctx: &AppContext) -> Router;
    fn middleware(&self, router: Router, ctx: &AppContext) -> Router;
    fn commands(&self) -> Vec<Command>;
    fn jobs(&self, jobs: &mut JobRegistry);
    fn admin(&self, site: &mut AdminSite);
    fn start(&self, ctx: &AppContext);
    fn health<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, Option<serde_json::Value>>;
    fn seed<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, Result<(), BoxError>>;
    fn ready<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, Result<(), String>>;
    fn shutdown<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, ()>;
}

impl<A: App> DynApp for A {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn name(&self) -> &'static str {
        App::name(self)
    }
    fn dependencies(&self) -> &'static [&'static str] {
        App::dependencies(self)
    }
    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        App::settings(self)
    }
    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        App::configure(self, config)
    }
    fn files(&self) -> Option<&'static AppFiles> {
        App::files(self)
    }
    fn migrations(&self) -> Option<&'static Dir<'static>> {
        App::migrations(self)
    }
    fn templates(&self) -> Option<&'static Dir<'static>> {
        App::templates(self)
    }
    fn translations(&self) -> Option<&'static Dir<'static>> {
        App::translations(self)
    }
    fn template_env(&self, env: &mut TemplateEnv) {
        App::template_env(self, env)
    }
    fn request_context(&self, request: &RequestInfo, context: &mut RequestContext) {
        App::request_context(self, request, context)
    }
    fn nav_items(&self) -> Vec<NavItem> {
        App::nav_items(self)
    }
    fn static_files(&self) -> Option<&'static Dir<'static>> {
        App::static_files(self)
    }
    fn routes(&self, ctx: &AppContext) -> Router {
        App::routes(self, ctx)
    }
    fn middleware(&self, router: Router, ctx: &AppContext) -> Router {
        App::middleware(self, router, ctx)
    }
    fn commands(&self) -> Vec<Command> {
        App::commands(self)
    }
    fn jobs(&self, jobs: &mut JobRegistry) {
        App::jobs(self, jobs)
    }
    fn admin(&self, site: &mut AdminSite) {
        App::admin(self, site)
    }
    fn start(&self, ctx: &AppContext) {
        App::start(self, ctx)
    }
    fn health<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, Option<serde_json::Value>> {
        Box::pin(App::health(self, ctx))
    }
    fn seed<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(App::seed(self, ctx))
    }
    fn ready<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(App::ready(self, ctx))
    }
    fn shutdown<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, ()> {
        Box::pin(App::shutdown(self, ctx))
    }
}

/// Orders apps so every app comes after its dependencies; registration order breaks
/// ties. Errors name the apps involved.
/// An [`App`] declared with values instead of a trait impl, for an app that only brings
/// its folders, settings, routes and menu entries (Flask calls this a blueprint). An app
/// that reads its settings in [`App::configure`], adds commands, middleware or shutdown
/// work implements [`App`] instead; both register the same way.
///
/// ```
/// use burrow::prelude::*;
///
/// let blog = AppBuilder::new("blog")
///     .nav(NavItem::new("Blog", "/blog"))
///     .routes(Router::new().route("/blog", get(|| async { "Posts" })));
/// let server = Server::new("site", "1.0").defaults("My site").app(blog);
/// ```
///
/// Handlers reach the database with the [`Db`](crate::Db) extractor (`db: Db`) and
/// settings from templates with `setting("key")`, so the router needs no state.
pub struct AppBuilder {
    name: &'static str,
    dependencies: &'static [&'static str],
    files: Option<&'static AppFiles>,
    settings: &'static [&'static dyn AnySetting],
    nav: Vec<NavItem>,
    routes: Router,
}

impl AppBuilder {
    /// An app called `name` (its key in `_migrations`) that provides nothing yet.
    pub fn new(name: &'static str) -> AppBuilder {
        AppBuilder {
            name,
            dependencies: &[],
            files: None,
            settings: &[],
            nav: Vec::new(),
            routes: Router::new(),
        }
    }

    /// Its folders, from [`app_files!`](crate::app_files).
    pub fn files(mut self, files: &'static AppFiles) -> AppBuilder {
        self.files = Some(files);
        self
    }

    /// Its settings, as [`App::settings`].
    pub fn settings(mut self, settings: &'static [&'static dyn AnySetting]) -> AppBuilder {
        self.settings = settings;
        self
    }

    /// Apps that must be registered before it, as [`App::dependencies`].
    pub fn dependencies(mut self, names: &'static [&'static str]) -> AppBuilder {
        self.dependencies = names;
        self
    }

    /// Adds a navigation entry for the layout.
    pub fn nav(mut self, item: NavItem) -> AppBuilder {
        self.nav.push(item);
        self
    }

    /// Its routes (merged with routes given before).
    pub fn routes(mut self, routes: Router) -> AppBuilder {
        self.routes = self.routes.merge(routes);
        self
    }
}

impl App for AppBuilder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn dependencies(&self) -> &'static [&'static str] {
        self.dependencies
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        self.settings
    }

    fn files(&self) -> Option<&'static AppFiles> {
        self.files
    }

    fn nav_items(&self) -> Vec<NavItem> {
        self.nav.clone()
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        self.routes.clone()
    }
}

pub(crate) fn order(apps: Vec<Box<dyn DynApp>>) -> Result<Vec<Box<dyn DynApp>>, ConfigError> {
    let mut index = HashMap::new();
    for (i, app) in apps.iter().enumerate() {
        if index.insert(app.name(), i).is_some() {
            return Err(ConfigError(format!("app '{}' is registered twice", app.name())));
        }
    }
    for app in &apps {
        for dep in app.dependencies() {
            if !index.contains_key(dep) {
                return Err(ConfigError(format!(
                    "app '{}' depends on app '{dep}', which is not registered",
                    app.name()
                )));
            }
        }
    }
    // Depth-first, visiting dependencies in declaration order; `path` catches cycles.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        apps: &[Box<dyn DynApp>],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), ConfigError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut names: Vec<_> = path[start..].iter().map(|&p| apps[p].name()).collect();
                names.push(apps[i].name());
                return Err(ConfigError(format!(
                    "apps depend on each other in a cycle: {}",
                    names.join(" -> ")
                )));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        path.push(i);
        for dep in apps[i].dependencies() {
            visit(index[dep], apps, index, marks, path, out)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        out.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; apps.len()];
    let mut sorted = Vec::with_capacity(apps.len());
    for i in 0..apps.len() {
        visit(i, &apps, &index, &mut marks, &mut Vec::new(), &mut sorted)?;
    }
    let mut slots: Vec<Option<Box<dyn DynApp>>> = apps.into_iter().map(Some).collect();
    Ok(sorted.into_iter().map(|i| slots[i].take().expect("each app once")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct A(&'static str, &'static [&'static str]);
    impl App for A {
        fn name(&self) -> &'static str {
            self.0
        }
        fn dependencies(&self) -> &'static [&'static str] {
            self.1
        }
    }

    fn names(apps: Vec<Box<dyn DynApp>>) -> Result<Vec<&'static str>, String> {
        order(apps).map(|a| a.iter().map(|a| a.name()).collect()).map_err(|e| e.0)
    }

    #[test]
    fn dependencies_come_first_and_registration_order_breaks_ties() {
        let apps: Vec<Box<dyn DynApp>> = vec![
            Box::new(A("notes", &["session", "csrf"])),
            Box::new(A("csrf", &["session"])),
            Box::new(A("session", &[])),
            Box::new(A("z", &[])),
        ];
        assert_eq!(names(apps).unwrap(), ["session", "csrf", "notes", "z"]);
    }

    #[test]
    fn missing_cycle_and_duplicate_are_named() {
        let err = names(vec![Box::new(A("notes", &["auth"]))]).unwrap_err();
        assert!(err.contains("'notes'") && err.contains("'auth'"), "{err}");
        let err = names(vec![
            Box::new(A("a", &["b"])),
            Box::new(A("b", &["c"])),
            Box::new(A("c", &["a"])),
        ])
        .unwrap_err();
        assert!(err.contains("a -> b -> c -> a"), "{err}");
        let err = names(vec![Box::new(A("a", &[])), Box::new(A("a", &[]))]).unwrap_err();
        assert!(err.contains("'a' is registered twice"), "{err}");
    }
}
