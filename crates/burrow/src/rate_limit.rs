//! Rate limits: token buckets per key (the client's IP, or the signed-in user), in memory,
//! bounded. Over the limit a request gets a 429 with `Retry-After` through the error
//! renderer (the error page, or JSON for JSON clients), before the handler runs.
//!
//! An app puts a [`RateLimit`] on the routes it guards, as with any tower layer:
//!
//! ```no_run
//! use burrow::axum::handler::Handler; // `.layer` on a handler
//! use burrow::prelude::*;
//! use burrow::{Rate, RateLimit};
//!
//! async fn search() -> &'static str { "results" }
//! async fn comment() -> &'static str { "thanks" }
//!
//! let routes: Router = Router::new()
//!     .route("/search", get(search))
//!     // 20 a minute per client IP (a burst of 20, then one every 3 s) for the routes above.
//!     .route_layer(RateLimit::per_ip(Rate::per_minute(20)))
//!     // 5 an hour per signed-in user (per IP for anonymous visitors), this route only.
//!     .route("/comment", post(comment.layer(RateLimit::per_user(Rate::per_hour(5)))));
//! ```
//!
//! `--rate-limit` puts one limit per client IP on every request (off by default), and the
//! auth app limits its own endpoints (`--auth-rate-limit-…`). docs/guide/rate-limits.md is
//! the guide.
//!
//! Written here rather than with `governor` (STACK.md's pick): governor's keyed limiter
//! bounds its key map only when `retain_recent` is called, so many distinct clients
//! (an IPv6 /64 holds 2^64 addresses) grow it between sweeps, and it brings dashmap and
//! quanta along. The buckets below are governor's algorithm (GCRA: one instant per key),
//! with a hard cap on keys, idle ones dropped first, and the wait for `Retry-After`.
//!
//! Limits are per process: several instances behind a load balancer each count on their
//! own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::{Error, OrRefused, too_many_requests};
use crate::request::ClientIp;

/// Keys a limiter remembers at most, unless [`RateLimit::max_keys`] says otherwise: about
/// 48 bytes each, so ~2.5 MB per limiter at worst.
pub const DEFAULT_MAX_KEYS: usize = 50_000;

/// How many requests a key may make: `count` per `window`, up to `burst` at once (by
/// default `count`: a client may spend a whole window's allowance at once, then one
/// request every `window / count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    window: Duration,
    burst: u32,
}

impl Rate {
    /// `count` requests per `window` (both at least 1; a zero is taken as 1).
    pub const fn new(count: u32, window: Duration) -> Rate {
        let count = if count == 0 { 1 } else { count };
        let window = if window.is_zero() { Duration::from_millis(1) } else { window };
        Rate { count, window, burst: count }
    }

    pub const fn per_second(count: u32) -> Rate {
        Rate::new(count, Duration::from_secs(1))
    }

    pub const fn per_minute(count: u32) -> Rate {
        Rate::new(count, Duration::from_secs(60))
    }

    pub const fn per_hour(count: u32) -> Rate {
        Rate::new(count, Duration::from_secs(3600))
    }

    /// At most `burst` requests at once (at least 1), refilled at the same pace.
    pub const fn burst(mut self, burst: u32) -> Rate {
        self.burst = if burst == 0 { 1 } else { burst };
        self
    }

    /// The time one request's allowance takes to come back.
    fn interval(&self) -> Duration {
        self.window / self.count
    }
}

/// `N/WINDOW` as settings write it: `30/1m`, `10/10m`, `100/s`.
impl FromStr for Rate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Rate, String> {
        let bad = || "expected COUNT/WINDOW such as 30/1m, 10/10m or 100/1s, or off".to_string();
        let (count, window) = raw.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        let window = window.trim();
        // `30/m` is `30/1m`.
        let window = if window.starts_with(|c: char| c.is_ascii_alphabetic()) {
            format!("1{window}")
        } else {
            window.to_string()
        };
        let window = crate::config::parse_duration(&window).map_err(|_| bad())?;
        if window < Duration::from_millis(1) {
            return Err(bad());
        }
        Ok(Rate::new(count, window))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.window.as_secs_f64())?;
        if self.burst != self.count {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

/// A rate setting's parser: a [`Rate`], or `off` (also `0`, `none`) for no limit.
pub fn parse_rate(raw: &str) -> Result<Option<Rate>, String> {
    match raw.trim() {
        "off" | "0" | "none" | "false" => Ok(None),
        rate => rate.parse().map(Some),
    }
}

/// What a bucket belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A request without a client address (made in-process): they share one bucket.
    Unknown,
    /// An IPv4 address, or an IPv6 address's /64 (what one subscriber usually gets).
    Ip(IpAddr),
    User(i64),
    /// Anything else an app counts by (an account name, an email address).
    Name(Box<str>),
}

impl Key {
    pub(crate) fn ip(ip: Option<IpAddr>) -> Key {
        match ip.map(|ip| ip.to_canonical()) {
            None => Key::Unknown,
            Some(IpAddr::V6(v6)) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Key::Ip(IpAddr::V6(prefix.into()))
            }
            Some(v4) => Key::Ip(v4),
        }
    }

    pub(crate) fn name(name: &str) -> Key {
        Key::Name(name.into())
    }
}

/// The buckets of one rate. Each key keeps one instant, its "theoretical arrival time"
/// (GCRA): the bucket is full once that instant has passed, and a request is allowed while
/// it lies less than `burst` intervals ahead.
pub(crate) struct Limiter {
    rate: Rate,
    max_keys: usize,
    state: Mutex<State>,
}

struct State {
    due: HashMap<Key, Instant>,
    /// When idle keys are dropped next (once a window, when a key is added).
    next_sweep: Instant,
}

impl Limiter {
    pub(crate) fn new(rate: Rate, max_keys: usize) -> Limiter {
        let state = State { due: HashMap::new(), next_sweep: Instant::now() + rate.window };
        Limiter { rate, max_keys: max_keys.max(1), state: Mutex::new(state) }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is back.
    pub(crate) fn take(&self, key: Key) -> Result<(), TooMany> {
        self.take_at(key, Instant::now()).map_err(|wait| TooMany { wait })
    }

    fn take_at(&self, key: Key, now: Instant) -> Result<(), Duration> {
        let interval = self.rate.interval();
        let tolerance = interval * (self.rate.burst - 1);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = match state.due.get(&key) {
            Some(due) => (*due).max(now),
            None => {
                state.make_room(now, self.rate.window, self.max_keys);
                now
            }
        };
        let ahead = due - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        state.due.insert(key, due + interval);
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().due.len()
    }
}

impl State {
    /// Before a new key goes in: idle keys (full buckets, which remember nothing) are
    /// dropped once a window, and whenever the map is full; if it is still full, the half
    /// nearest to full goes (they lose the least).
    fn make_room(&mut self, now: Instant, window: Duration, max_keys: usize) {
        if now >= self.next_sweep || self.due.len() >= max_keys {
            self.due.retain(|_, due| *due > now);
            self.next_sweep = now + window;
        }
        if self.due.len() >= max_keys {
            let mut dues: Vec<Instant> = self.due.values().copied().collect();
            let middle = dues.len() / 2;
            let (_, cut, _) = dues.select_nth_unstable(middle);
            let cut = *cut;
            self.due.retain(|_, due| *due > cut);
        }
    }
}

/// A request over a limit: answered 429 with `Retry-After`, through the error renderer.
#[derive(Debug)]
pub struct TooMany {
    wait: Duration,
}

impl TooMany {
    /// Whole seconds to wait, rounded up (at least 1).
    pub fn retry_after(&self) -> u64 {
        (self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0)).max(1)
    }
}

impl IntoResponse for TooMany {
    fn into_response(self) -> Response {
        let seconds = self.retry_after();
        let mut response = Error::new(StatusCode::TOO_MANY_REQUESTS, too_many_requests(seconds))
            .translate_with("error-too-many-requests", &[("count", &seconds)])
            .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// What a [`RateLimit`] counts by.
#[derive(Clone, Copy, Debug)]
enum By {
    Ip,
    User,
}

/// A rate limit as a tower layer: [`RateLimit::per_ip`] or [`RateLimit::per_user`], put on
/// routes with `Router::route_layer` or on one handler with `.layer`. Every route the
/// layer wraps shares its buckets; make one per route for separate counts.
#[derive(Clone)]
pub struct RateLimit {
    /// `None`: a limit turned off by its setting.
    limiter: Option<Arc<Limiter>>,
    by: By,
    /// A path prefix the limit does not apply to (`--rate-limit` skips `/healthz/`).
    exempt: Option<&'static str>,
}

impl RateLimit {
    /// Counts per client IP ([`ClientIp`]; an IPv6 address counts by its /64).
    pub fn per_ip(rate: Rate) -> RateLimit {
        RateLimit::new(rate, By::Ip)
    }

    /// Counts per signed-in user (the auth app's session), and per client IP for
    /// anonymous visitors.
    pub fn per_user(rate: Rate) -> RateLimit {
        RateLimit::new(rate, By::User)
    }

    /// Keys remembered at most (default [`DEFAULT_MAX_KEYS`]).
    pub fn max_keys(self, max: usize) -> RateLimit {
        let limiter = self.limiter.as_ref().map(|l| Arc::new(Limiter::new(l.rate, max)));
        RateLimit { limiter, ..self }
    }

    /// [`RateLimit::per_ip`], or no limit for `None` (a rate setting that says `off`).
    pub fn per_ip_or_off(rate: Option<Rate>) -> RateLimit {
        match rate {
            Some(rate) => RateLimit::per_ip(rate),
            None => RateLimit { limiter: None, by: By::Ip, exempt: None },
        }
    }

    fn new(rate: Rate, by: By) -> RateLimit {
        let limiter = Some(Arc::new(Limiter::new(rate, DEFAULT_MAX_KEYS)));
        RateLimit { limiter, by, exempt: None }
    }

    pub(crate) fn exempt(self, prefix: &'static str) -> RateLimit {
        RateLimit { exempt: Some(prefix), ..self }
    }

    fn key(&self, request: &Request) -> Key {
        let user = match self.by {
            By::User => crate::contrib::auth::signed_in_id(request.extensions()),
            By::Ip => None,
        };
        match user {
            Some(id) => Key::User(id),
            None => Key::ip(ClientIp::of(request.extensions()).0),
        }
    }

    /// `Err` with the 429 when `request` is over the limit.
    pub(crate) fn admit(&self, request: &Request) -> Result<(), TooMany> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.exempt.is_some_and(|prefix| request.uri().path().starts_with(prefix)) {
            return Ok(());
        }
        let taken = limiter.take(self.key(request));
        if let Err(too_many) = &taken {
            tracing::debug!(
                target: "burrow::rate_limit",
                path = request.uri().path(),
                retry_after_s = too_many.retry_after(),
                "rate limited"
            );
        }
        taken
    }
}

impl<S> Layer<S> for RateLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited { limit: self.clone(), inner }
    }
}

/// The service of a [`RateLimit`].
#[derive(Clone)]
pub struct RateLimited<S> {
    limit: RateLimit,
    inner: S,
}

impl<S> Service<Request> for RateLimited<S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RateLimitedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.limit.admit(&request) {
            Ok(()) => OrRefused::Admitted { future: self.inner.call(request) },
            Err(too_many) => OrRefused::refused(too_many),
        }
    }
}

/// The routes' future, or the 429 at once.
pub type RateLimitedFuture<F> = OrRefused<F>;

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate::new(3, Duration::from_secs(30));

    fn ip(raw: &str) -> Key {
        Key::ip(Some(raw.parse().unwrap()))
    }

    #[test]
    fn a_burst_then_one_every_window_over_count() {
        let limiter = Limiter::new(RATE, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(ip("192.0.2.1"), t0).is_ok());
        }
        let wait = limiter.take_at(ip("192.0.2.1"), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        // Another key has its own bucket.
        assert!(limiter.take_at(ip("192.0.2.2"), t0).is_ok());
        // 10 s later one request is back, not two.
        let t1 = t0 + Duration::from_secs(10);
        assert!(limiter.take_at(ip("192.0.2.1"), t1).is_ok());
        assert_eq!(limiter.take_at(ip("192.0.2.1"), t1), Err(Duration::from_secs(10)));
        // A whole window later the burst is back.
        let t2 = t1 + Duration::from_secs(40);
        for _ in 0..3 {
            assert!(limiter.take_at(ip("192.0.2.1"), t2).is_ok());
        }
        assert!(limiter.take_at(ip("192.0.2.1"), t2).is_err());
    }

    #[test]
    fn a_burst_other_than_the_count() {
        let limiter = Limiter::new(Rate::per_second(10).burst(2), 100);
        let t0 = Instant::now();
        assert!(limiter.take_at(Key::Unknown, t0).is_ok());
        assert!(limiter.take_at(Key::Unknown, t0).is_ok());
        assert_eq!(limiter.take_at(Key::Unknown, t0), Err(Duration::from_millis(100)));
        assert!(limiter.take_at(Key::Unknown, t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(Key::ip(None), Key::Unknown);
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let limiter = Limiter::new(RATE, 1000);
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            let key = Key::ip(Some(IpAddr::V4(i.into())));
            let _ = limiter.take_at(key, t0 + Duration::from_micros(u64::from(i)));
            assert!(limiter.len() <= 1000, "{} keys after {i}", limiter.len());
        }
        // Idle keys go at the next sweep: a window later, one new client leaves one key.
        let later = t0 + Duration::from_secs(120);
        assert!(limiter.take_at(ip("198.51.100.1"), later).is_ok());
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn evicting_keeps_the_clients_that_owe_most() {
        let limiter = Limiter::new(Rate::per_minute(2), 4);
        let t0 = Instant::now();
        // A hammering client, then three that made one request each.
        let _ = limiter.take_at(ip("192.0.2.99"), t0);
        let _ = limiter.take_at(ip("192.0.2.99"), t0);
        for i in 1..=3 {
            let _ = limiter.take_at(ip(&format!("192.0.2.{i}")), t0);
        }
        let _ = limiter.take_at(ip("192.0.2.50"), t0);
        assert!(limiter.len() <= 4);
        assert!(
            limiter.take_at(ip("192.0.2.99"), t0).is_err(),
            "the hammering one is still limited"
        );
    }

    #[test]
    fn rates_parse_from_settings() {
        assert_eq!(parse_rate("30/1m"), Ok(Some(Rate::per_minute(30))));
        assert_eq!(parse_rate("30/m"), Ok(Some(Rate::per_minute(30))));
        assert_eq!(parse_rate(" 10 / 10m "), Ok(Some(Rate::new(10, Duration::from_secs(600)))));
        assert_eq!(parse_rate("100/s"), Ok(Some(Rate::per_second(100))));
        assert_eq!(parse_rate("5/500ms"), Ok(Some(Rate::new(5, Duration::from_millis(500)))));
        assert_eq!(parse_rate("off"), Ok(None));
        assert_eq!(parse_rate("0"), Ok(None));
        for bad in ["", "30", "/1m", "0/1m", "-1/1m", "30/0", "30/1y", "x/1m", "30/1m/2"] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains("COUNT/WINDOW"), "{bad}: {err}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let secs = |wait: Duration| TooMany { wait }.retry_after();
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_secs(10)), 10);
        assert_eq!(secs(Duration::from_millis(10_001)), 11);
        assert_eq!(secs(Duration::ZERO), 1);
    }
}
