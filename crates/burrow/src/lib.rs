//! # Burrow
//!
//! A web framework for server-rendered applications (pages, forms, htmx) whose product is
//! **one static binary with an embedded SQLite database**. Deployment is: copy the
//! binary, run it.
//!
//! A server is made of [`App`]s. An app overrides only the hooks it needs: routes,
//! migrations, templates, static files, settings, CLI commands, middleware, readiness,
//! shutdown. The smallest server:
//!
//! ```no_run
//! use burrow::{App, AppContext, Server};
//! use burrow::axum::{Router, routing::get};
//!
//! struct Hello;
//!
//! impl App for Hello {
//!     fn name(&self) -> &'static str { "hello" }
//!
//!     fn routes(&self, _ctx: &AppContext) -> Router {
//!         Router::new().route("/", get(|| async { "Hello from Burrow!" }))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Server::new("hello", env!("CARGO_PKG_VERSION")).app(Hello).run()
//! }
//! ```
//!
//! `cargo run` serves it on <http://localhost:8080>, with `app.db` created beside it,
//! `/healthz/live` and `/healthz/ready`, a request id on every response, an access log,
//! gzip, a 1 MB body limit and HTML or JSON error pages. `--help` lists every setting
//! with its environment variable and default.
//!
//! ## A tour
//!
//! - [`config`]: flag > env > TOML > default. A setting is declared once, as a typed
//!   constant (`const PORT: Setting<u16> = Setting::new("server.port").default("8080")`,
//!   flag `--port` and env var `PORT` derived from the key); apps list theirs in
//!   [`App::settings`] and read them with [`Config::get`] in [`App::configure`]. Bad values
//!   are one line naming the setting and its source.
//! - [`db`]: [`Db::read`] and [`Db::write`] run closures on blocking threads; one writer
//!   connection (writes queue), a pool of readers; embedded `*.up.sql` migrations.
//! - [`template`]: minijinja, per-app embedded templates, layouts, htmx fragments via the
//!   [`Render`] extractor, request-scoped functions (`current_path()`, `nav_links()`).
//! - [`error`]: handlers return [`Error`]; every error response becomes an HTML page or
//!   JSON, through one renderer.
//! - [`Server`]: the builder and start-up sequence; `server migrate [--list]`,
//!   `server seed` and app commands ([`Command`]).
//!
//! A page handler that reads the database and renders a template:
//!
//! ```no_run
//! use burrow::{Db, Error, Html, Render};
//! use burrow::axum::extract::State;
//! use burrow::minijinja::context;
//!
//! async fn count(State(db): State<Db>, render: Render) -> Result<Html, Error> {
//!     let (n,): (i64,) = db.read(|c| c.query_one("SELECT count(*) FROM notes", &[])).await?;
//!     render.page("count.html", context! { n })
//! }
//! ```

pub mod app;
mod check;
pub mod command;
pub mod config;
pub mod contrib;
pub mod db;
pub mod error;
mod files;
mod http;
pub mod secrets;
mod serve;
mod server;
pub mod settings;
pub mod template;

pub use app::{App, AppContext, BoxError, BoxFuture, NavItem};
pub use command::Command;
pub use config::{AnySetting, Config, ConfigError, Setting};
pub use db::Db;
pub use error::Error;
pub use http::request_id::RequestId;
pub use http::staticfiles::StaticFiles;
pub use serve::PeerAddr;
pub use server::{Booted, Server, StartError};
pub use settings::Settings;
pub use template::{Html, Render, RequestContext, RequestInfo, TemplateEnv, Templates};

// The crates app code needs, at the versions Burrow uses.
pub use axum;
pub use clap;
pub use include_dir;
pub use minijinja;
pub use tracing;
