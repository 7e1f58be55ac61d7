//! Rate limits of the auth endpoints: token buckets per client IP and per account, in
//! memory, bounded (idle keys are dropped first). Over the limit, a 429 with
//! `Retry-After` through the error renderer (a page, or JSON for JSON clients).
//!
//! Per process: behind a load balancer with several instances each counts on its own,
//! which still bounds guessing to a small multiple.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::http::around::{Around, AroundLayer};
use crate::i18n::Locale;
use crate::request::PeerAddr;
use crate::template::Templates;

/// A bucket: `burst` attempts at once, refilled evenly over `window`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rate {
    pub(crate) name: &'static str,
    pub(crate) burst: u32,
    pub(crate) window: Duration,
}

/// Passkey ceremonies (begin and finish of sign-in, registration, adding a passkey) per IP.
pub(crate) const CEREMONIES_PER_IP: Rate =
    Rate { name: "ceremony", burst: 30, window: Duration::from_secs(60) };
/// Recovery-code and sign-in-link attempts per IP.
pub(crate) const CODES_PER_IP: Rate =
    Rate { name: "codes-ip", burst: 10, window: Duration::from_secs(600) };
/// Recovery-code attempts per account.
pub(crate) const CODES_PER_ACCOUNT: Rate =
    Rate { name: "codes-account", burst: 5, window: Duration::from_secs(900) };

/// Verification mails asked for per IP (the resend form).
pub(crate) const MAILS_PER_IP: Rate =
    Rate { name: "mails-ip", burst: 10, window: Duration::from_secs(3600) };
/// Verification mails asked for per address.
pub(crate) const MAILS_PER_ACCOUNT: Rate =
    Rate { name: "mails-account", burst: 3, window: Duration::from_secs(3600) };

/// Keys kept at most; beyond, full (idle) buckets go first, then the least recently used.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub(crate) struct Limiter {
    buckets: Mutex<HashMap<(&'static str, String), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Limiter {
    /// Takes one attempt from `key`'s bucket of `rate`, or says how long to wait.
    pub(crate) fn take(&self, rate: Rate, key: &str) -> Result<(), TooMany> {
        self.take_at(rate, key, Instant::now()).map_err(|wait| TooMany { rate, wait })
    }

    fn take_at(&self, rate: Rate, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS {
            evict(&mut buckets, now);
        }
        let burst = f64::from(rate.burst);
        let per_second = burst / rate.window.as_secs_f64();
        let bucket = buckets
            .entry((rate.name, key.to_string()))
            .or_insert(Bucket { tokens: burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// Drops the buckets that have refilled (nothing to remember), and if that is not
/// enough, the least recently used half.
fn evict(buckets: &mut HashMap<(&'static str, String), Bucket>, now: Instant) {
    // A bucket untouched for an hour is full under every rate above.
    buckets.retain(|_, b| now.saturating_duration_since(b.updated) < Duration::from_secs(3600));
    if buckets.len() >= MAX_KEYS {
        let mut ages: Vec<Instant> = buckets.values().map(|b| b.updated).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        buckets.retain(|_, b| b.updated > cut);
    }
}

/// One route's limit per client IP, as an [`Around`] layer:
/// `handler.layer(PerIp::layer(…))`. Requests built in-process, without a client
/// address, share one bucket.
#[derive(Clone)]
pub(crate) struct PerIp {
    limiter: Arc<Limiter>,
    rate: Rate,
    /// For the language of the 429.
    templates: Templates,
}

impl PerIp {
    pub(crate) fn layer(
        limiter: &Arc<Limiter>,
        rate: Rate,
        templates: &Templates,
    ) -> AroundLayer<PerIp> {
        AroundLayer(PerIp { limiter: limiter.clone(), rate, templates: templates.clone() })
    }
}

impl Around for PerIp {
    type State = ();

    fn before(&self, _request: &mut Request) {}

    fn after(&self, _: (), response: Response) -> Response {
        response
    }

    fn needs_check(&self, _request: &Request) -> bool {
        true
    }

    fn check(
        &self,
        request: Request,
        _: &(),
    ) -> impl Future<Output = Result<Request, Response>> + Send {
        let ip = request.extensions().get::<PeerAddr>().map(|PeerAddr(addr)| addr.ip());
        let key = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        let taken = self.limiter.take(self.rate, &key).map_err(|too_many| {
            too_many.response(&self.templates.i18n().negotiate(request.headers()))
        });
        std::future::ready(taken.map(|()| request))
    }
}

/// An attempt over a limit: a 429 with `Retry-After` as a response.
pub(crate) struct TooMany {
    rate: Rate,
    wait: Duration,
}

impl TooMany {
    /// The 429, saying so in `locale`'s language.
    pub(crate) fn response(self, locale: &Locale) -> Response {
        too_many(self.rate, self.wait, locale)
    }
}

fn too_many(rate: Rate, wait: Duration, locale: &Locale) -> Response {
    let seconds = wait.as_secs() + 1;
    tracing::warn!(target: "burrow::auth", limit = rate.name, retry_after_s = seconds, "rate limited");
    let message = locale.t_args("auth-too-many", &[("count", &seconds)]);
    let mut response = Error::new(StatusCode::TOO_MANY_REQUESTS, message).into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { name: "t", burst: 3, window: Duration::from_secs(30) };

    #[test]
    fn a_burst_then_one_every_window_over_burst() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(RATE, "1.2.3.4", t0).is_ok());
        }
        let wait = limiter.take_at(RATE, "1.2.3.4", t0).unwrap_err();
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10), "{wait:?}");
        // Another key has its own bucket.
        assert!(limiter.take_at(RATE, "5.6.7.8", t0).is_ok());
        // 10 s later one attempt is back, not two.
        let t1 = t0 + Duration::from_secs(10);
        assert!(limiter.take_at(RATE, "1.2.3.4", t1).is_ok());
        assert!(limiter.take_at(RATE, "1.2.3.4", t1).is_err());
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 2) {
            let _ = limiter.take_at(RATE, &i.to_string(), t0 + Duration::from_millis(i as u64));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
