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
//! use burrow::prelude::*;
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
//! - [`prelude`]: what handlers and apps use most, in one import.
//! - [`App`]: the hooks an app may override (settings, migrations, templates, static files,
//!   routes, middleware, commands, and the `async fn`s `seed`, `ready`, `shutdown`); an app's
//!   folders are compiled in with [`embed_dir!`].
//! - [`config`]: flag > env > TOML > default. A setting is declared once, as a typed
//!   constant (`const PORT: Setting<u16> = Setting::new("server.port").default("8080")`,
//!   flag `--port` and env var `PORT` derived from the key); apps list theirs in
//!   [`App::settings`] and read them with [`Config::get`] in [`App::configure`]. Bad values
//!   are one line naming the setting and its source.
//! - [`db`]: [`Db::read`] and [`Db::write`] run closures on blocking threads; one writer
//!   connection (writes queue), a pool of readers; a read is interrupted when nobody waits
//!   for it any more; embedded `*.up.sql` migrations.
//! - [`template`]: minijinja, per-app embedded templates, layouts, htmx fragments via the
//!   [`Render`] extractor, request-scoped functions (`current_path()`, `nav_links()`), and
//!   filters every app gets (`date`, `naturaltime`, `intcomma`, `pluralize`, `urlize`, …).
//! - [`forms`]: `#[derive(Form)]` structs with declared rules, the [`forms::FormResult`]
//!   extractor, 422 re-renders (htmx-aware) and `forms.html` template macros; file fields
//!   ([`forms::UploadedFile`]) streamed to disk.
//! - [`storage`]: uploaded files kept under their SHA-256 (`--storage-dir`), private or
//!   public (`/media/{sha256}`), the [`Storage`] extractor.
//! - [`error`]: handlers return [`Result`] (an [`Error`]); `?` converts any error, a 5xx's
//!   cause is logged with the request id; every error response becomes an HTML page or
//!   JSON, through one renderer. [`Path`] answers 404 for a segment that does not parse.
//! - [`i18n`]: message catalogs per app (English and German ship), the request's language
//!   ([`i18n::Locale`]), `t()` in templates.
//! - [`live`]: live updates over server-sent events: a [`live::Hub`] of topics
//!   (`ctx.live`, [`db::Conn::publish`] once a write commits, `NOTIFY` between processes on
//!   PostgreSQL) and the [`live::Sse`] extractor of a stream endpoint
//!   (docs/guide/live-updates.md).
//! - [`pagination`]: [`Paginator`] and [`Page`], `?page=` to `LIMIT`/`OFFSET` and back.
//! - [`contrib`]: sessions ([`Session`]), CSRF, flash [`Messages`], and the default look
//!   (`contrib::theme`: layout, error page, favicon, stylesheet).
//! - [`Server`]: the builder and start-up sequence; `server migrate [--list]`,
//!   `server seed`, `server backup`, `server check` and app commands ([`Command`]).
//! - Tests: the `burrow-test` crate (a dev-dependency) has `burrow_test::Client`, an
//!   in-process client: cookies, CSRF tokens, redirects, CSS selectors, forms and flash
//!   messages (docs/guide/testing.md).
//!
//! How the modules fit together, and how a request and a SIGHUP travel through them, is
//! in `docs/architecture.md`.
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
//!
//! `?` works on any error in a handler returning [`Result`]; [`Path`] answers 404 for an id
//! that does not parse; [`Paginator`] reads `?page=` and gives `LIMIT`/`OFFSET`:
//!
//! ```no_run
//! use burrow::prelude::*;
//!
//! async fn show(State(db): State<Db>, Path(id): Path<i64>, render: Render) -> Result<Html> {
//!     let sql = "SELECT title FROM notes WHERE id = ?";
//!     let (title,): (String,) = db.read(move |c| c.query_one(sql, params![id])).await?;
//!     render.page("note.html", context! { title })
//! }
//!
//! // `?page=N`, 20 rows a page; `page` has items, page, per_page, next, prev.
//! async fn list(State(db): State<Db>, pages: Paginator, render: Render) -> Result<Html> {
//!     let sql = "SELECT id, title FROM notes ORDER BY id DESC";
//!     let page: Page<(i64, String)> = db.read(move |c| c.query_page(sql, &[], pages)).await?;
//!     render.page("notes.html", context! { page })
//! }
//! ```

// `#[derive(FromRow)]` and `#[derive(Form)]` generate `::burrow::…` paths; this makes them
// resolve inside this crate too.
extern crate self as burrow;

pub mod admin;
#[cfg(feature = "mimalloc")]
mod allocator;
pub mod app;
mod check;
pub mod command;
pub mod config;
mod context;
pub mod contrib;
pub mod db;
mod embed;
pub mod error;
pub mod extract;
mod files;
pub mod forms;
mod http;
pub mod i18n;
pub mod jobs;
pub mod lifecycle;
pub mod live;
mod logging;
pub mod mail;
pub mod pagination;
mod proxy;
mod random;
pub mod rate_limit;
mod request;
pub(crate) mod secrets;
mod serve;
mod server;
pub mod settings;
mod sniff;
pub mod storage;
pub mod template;

pub use app::{App, AppBuilder};
pub use burrow_macros::app_files;
pub use command::Command;
pub use config::{AnySetting, Config, ConfigError, Setting};
pub use context::{AppContext, BoxError, BoxFuture};
pub use contrib::messages::Messages;
pub use contrib::session::Session;
pub use db::Db;
pub use embed::{AppFiles, Dir};
pub use error::{Error, Result};
pub use extract::Path;
pub use http::Stack;
pub use pagination::{Page, Paginator};
pub use rate_limit::{Rate, RateLimit};
pub use request::{ClientIp, Forwarded, PeerAddr, RequestId};
pub use server::{Booted, Server, StartError};
pub use settings::Settings;
pub use storage::Storage;
pub use template::{
    Audience, Html, NavItem, Render, RequestContext, RequestInfo, TemplateEnv, Templates,
};

#[cfg(feature = "mimalloc")]
pub use allocator::Allocator;

// The crates app code needs, at the versions Burrow uses. serde's derives name their
// crate in the code they generate: with `#[serde(crate = "burrow::serde")]` on the type,
// an app needs no serde dependency of its own.
pub use axum;
pub use clap;
pub use minijinja;
pub use serde;
pub use tracing;

/// What handlers and apps use most, in one import: `use burrow::prelude::*;`
pub mod prelude {
    pub use crate::contrib::csrf::CsrfToken;
    pub use crate::db::{DbError, FromRow, Row, params};
    pub use crate::forms::{Form, FormResult, Valid};
    pub use crate::{
        AnySetting, App, AppBuilder, AppContext, AppFiles, BoxError, Command, Config, ConfigError,
        Db, Dir, Error, Html, Messages, NavItem, Page, Paginator, Path, Render, Result, Server,
        Session, Setting, app_files, embed_dir,
    };
    pub use axum::Router;
    pub use axum::extract::{Query, State};
    pub use axum::http::StatusCode;
    pub use axum::response::{IntoResponse, Redirect, Response};
    pub use axum::routing::{delete, get, post};
    pub use minijinja::context;
    pub use serde::{Deserialize, Serialize};
}

/// The guide's concept pages (docs/guide/): their Rust blocks run as doctests of this crate,
/// so the guide cannot rot. The tutorial is checked against `examples/guestbook` instead.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../../docs/guide/apps.md")]
    mod apps {}
    #[doc = include_str!("../../../docs/guide/settings.md")]
    mod settings {}
    #[doc = include_str!("../../../docs/guide/database.md")]
    mod database {}
    #[doc = include_str!("../../../docs/guide/templates.md")]
    mod templates {}
    #[doc = include_str!("../../../docs/guide/forms.md")]
    mod forms {}
    #[doc = include_str!("../../../docs/guide/i18n.md")]
    mod i18n {}
    #[doc = include_str!("../../../docs/guide/uploads.md")]
    mod uploads {}
    #[doc = include_str!("../../../docs/guide/sessions.md")]
    mod sessions {}
    #[doc = include_str!("../../../docs/guide/auth.md")]
    mod auth {}
    #[doc = include_str!("../../../docs/guide/mail.md")]
    mod mail {}
    #[doc = include_str!("../../../docs/guide/jobs.md")]
    mod jobs {}
    #[doc = include_str!("../../../docs/guide/live-updates.md")]
    mod live_updates {}
    #[doc = include_str!("../../../docs/guide/admin.md")]
    mod admin {}
    #[doc = include_str!("../../../docs/guide/static-files.md")]
    mod static_files {}
    #[doc = include_str!("../../../docs/guide/deployment.md")]
    mod deployment {}
    #[doc = include_str!("../../../docs/guide/rate-limits.md")]
    mod rate_limits {}
    #[doc = include_str!("../../../docs/guide/tls.md")]
    mod tls {}
    #[doc = include_str!("../../../docs/guide/sqlite.md")]
    mod sqlite {}
    // The test client is burrow-test, a dev-dependency of burrow.
    #[doc = include_str!("../../../docs/guide/testing.md")]
    mod testing {}
}

/// What the exported macros need from other crates; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use include_dir;
}
