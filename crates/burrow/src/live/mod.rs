//! Live updates: server-sent events (docs/guide/live-updates.md).
//!
//! - [`Hub`]: topics (`notes:user:42`) and the event streams subscribed to them, each
//!   with a bounded buffer (a client that falls behind is dropped and reconnects, it never
//!   makes the server hold more). Handlers get it as an extractor, apps and jobs as
//!   `ctx.live`; [`Conn::publish`](crate::db::Conn::publish) publishes from inside a write
//!   transaction, once it commits.
//! - [`Sse`], the extractor of a stream endpoint, and [`EventStream`], its response:
//!   `text/event-stream`, never compressed or cached, a `retry:` hint, keep-alive comments
//!   every `--sse-keep-alive`, at most `--sse-max-streams` open streams
//!   (`--sse-max-streams-per-ip` per client address). Streams end with the retry hint as
//!   soon as the server drains (SIGHUP hand-over, shutdown): the browser reconnects to the
//!   successor, and no stream holds the drain.
//! - On PostgreSQL, events also go to the other server processes on the database
//!   (`NOTIFY` on [`CHANNEL`], which each server `LISTEN`s to on a connection of its own,
//!   reconnecting when the database restarts). On SQLite there is one process: events stay
//!   in it.

mod hub;
mod postgres;
mod stream;

use std::time::Duration;

use crate::config::{Config, ConfigError, Setting, parse_duration};

pub use hub::{Event, Hub};
pub(crate) use postgres::{CHANNEL, NOTIFY_SQL, payload as remote_payload, start_listener};
pub(crate) use stream::Streams;
pub use stream::{EventStream, Sse};

pub(crate) const SSE_KEEP_ALIVE: Setting<Duration> =
    Setting::with_parser("sse.keep_alive", parse_duration)
        .default("15")
        .help("Seconds between keep-alive comments on an event stream (finds clients that left)");
pub(crate) const SSE_RETRY: Setting<Duration> =
    Setting::with_parser("sse.retry", parse_duration).default("1").help(
        "How soon a browser reconnects after its event stream ended (the retry: hint; each \
         stream adds up to as much again at random, so a restart's reconnects spread out)",
    );
pub(crate) const SSE_MAX_STREAMS: Setting<usize> = Setting::new("sse.max_streams")
    .default("5000")
    .help("Open event streams at most; more are answered 503 (each holds a connection)");
pub(crate) const SSE_MAX_STREAMS_PER_IP: Setting<usize> = Setting::new("sse.max_streams_per_ip")
    .default("64")
    .help("Open event streams per client address at most; more are answered 429 (0: no limit)");

/// `--sse-*`.
#[derive(Clone, Copy, Debug)]
pub struct LiveSettings {
    pub keep_alive: Duration,
    pub retry: Duration,
    pub max_streams: usize,
    pub max_streams_per_ip: usize,
}

impl LiveSettings {
    pub(crate) fn from_config(config: &Config) -> Result<LiveSettings, ConfigError> {
        let keep_alive = config.get(&SSE_KEEP_ALIVE)?;
        if keep_alive < Duration::from_secs(1) {
            return Err(config.error(&SSE_KEEP_ALIVE, "must be at least 1 second"));
        }
        let retry = config.get(&SSE_RETRY)?;
        if retry.is_zero() || retry > Duration::from_secs(3600) {
            return Err(config.error(&SSE_RETRY, "must be more than 0 and at most an hour"));
        }
        let max_streams = config.get(&SSE_MAX_STREAMS)?;
        if max_streams == 0 {
            return Err(config.error(&SSE_MAX_STREAMS, "must be at least 1"));
        }
        let max_streams_per_ip = config.get(&SSE_MAX_STREAMS_PER_IP)?;
        Ok(LiveSettings { keep_alive, retry, max_streams, max_streams_per_ip })
    }
}

impl Default for LiveSettings {
    fn default() -> LiveSettings {
        LiveSettings {
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(1),
            max_streams: 5000,
            max_streams_per_ip: 64,
        }
    }
}
