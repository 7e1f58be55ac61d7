//! What apps are handed when they build routes, run a command, seed, check readiness or
//! shut down: the [`AppContext`], and the future and error types of async hooks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::jobs::Jobs;
use crate::lifecycle::Lifecycle;
use crate::mail::Mailer;
use crate::settings::Settings;
use crate::template::Templates;

/// A boxed future, for async hooks that must stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error type of app hooks and commands: any error, shown as its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The database, the configuration and the templates of a running server; cheap to clone
/// (every field is shared).
#[derive(Clone)]
pub struct AppContext {
    pub db: Db,
    pub config: Arc<Config>,
    pub settings: Arc<Settings>,
    pub templates: Templates,
    /// Sends mail through `--smtp-host` (off without it).
    pub mailer: Mailer,
    /// Uploaded files (`--storage-dir`).
    pub storage: crate::storage::Storage,
    /// The background job queue (enqueuing fails without the `jobs` app).
    pub jobs: Jobs,
    /// Live updates: publish events to the event streams of a topic ([`crate::live`]).
    pub live: crate::live::Hub,
    /// Whether the process serves or drains, for background work.
    pub lifecycle: Lifecycle,
    /// What every app registered for the admin (served by the `admin` app).
    pub admin: Arc<crate::admin::AdminSite>,
}
