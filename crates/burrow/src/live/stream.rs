//! Event streams: the [`Sse`] extractor (a place under the stream caps) and the
//! [`EventStream`] response.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::hub::Subscription;
use super::{Event, Hub, LiveSettings};
use crate::error::Error;
use crate::http::Draining;
use crate::request::ClientIp;
use crate::serve::limits::{Throttle, client_key};

/// Answered (429) when a client address (behind trusted proxies, the one they forwarded)
/// has `--sse-max-streams-per-ip` streams open.
const TOO_MANY_FROM_CLIENT: &str = "Too many open event streams from your address.";
/// Answered (503) when `--sse-max-streams` streams are open.
const TOO_MANY_STREAMS: &str = "Too many open event streams; try again shortly.";

/// The server's streams: their settings, how many are open, and the draining flag that
/// ends them. In every request's extensions (the core layer puts it there).
pub(crate) struct Streams {
    settings: LiveSettings,
    draining: Draining,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    refused_log: Throttle,
}

impl Streams {
    pub(crate) fn new(settings: LiveSettings, draining: Draining) -> Arc<Streams> {
        Arc::new(Streams {
            settings,
            draining,
            open: AtomicUsize::new(0),
            by_ip: Mutex::default(),
            refused_log: Throttle::default(),
        })
    }

    /// A place for one more stream from `peer`, or the response refusing it.
    fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Slot, Refused> {
        let max = self.settings.max_streams;
        if self.open.fetch_add(1, Ordering::Relaxed) >= max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            self.log_refusal(|| format!("{max} event streams are open (--sse-max-streams)"));
            return Err(Refused::Full);
        }
        let mut slot = Slot { streams: self.clone(), ip: None };
        let per_ip = self.settings.max_streams_per_ip;
        if let Some(ip) = peer.filter(|_| per_ip > 0) {
            let key = client_key(ip);
            let mut by_ip = self.by_ip.lock().expect("stream counts poisoned");
            let open = by_ip.entry(key).or_insert(0);
            if *open >= per_ip {
                drop(by_ip);
                self.log_refusal(|| {
                    format!("{key} has {per_ip} event streams open (--sse-max-streams-per-ip)")
                });
                return Err(Refused::Client);
            }
            *open += 1;
            slot.ip = Some(key);
        }
        Ok(slot)
    }

    fn log_refusal(&self, why: impl FnOnce() -> String) {
        if let Some(suppressed) = self.refused_log.ready() {
            tracing::warn!(suppressed, "refused an event stream: {}", why());
        }
    }

    /// The `retry:` hint of one stream: `--sse-retry` plus up to as much again at random,
    /// so the clients of a restarting server do not all come back at the same instant.
    fn retry_ms(&self) -> u64 {
        let base = self.settings.retry.as_millis() as u64;
        let mut random = [0u8; 4];
        crate::random::fill(&mut random);
        base + u64::from(u32::from_le_bytes(random)) % base.max(1)
    }

    /// Open streams now (for tests and the bench's numbers).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Why a stream was refused.
#[derive(Debug)]
enum Refused {
    /// Its client address has as many streams as it may.
    Client,
    /// The server has as many streams as it takes.
    Full,
}

impl IntoResponse for Refused {
    /// 429 or 503 with a `Retry-After`, through the error renderer (in the request's
    /// language).
    fn into_response(self) -> Response {
        let error = match self {
            Refused::Client => Error::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_FROM_CLIENT)
                .translate("error-streams-per-client"),
            Refused::Full => Error::new(StatusCode::SERVICE_UNAVAILABLE, TOO_MANY_STREAMS)
                .translate("error-streams-full"),
        };
        let mut response = error.into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        response
    }
}

/// A stream's place under `--sse-max-streams` and `--sse-max-streams-per-ip`; given back
/// when the stream ends.
struct Slot {
    streams: Arc<Streams>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(key) = self.ip {
            let mut by_ip = self.streams.by_ip.lock().expect("stream counts poisoned");
            if let Some(open) = by_ip.get_mut(&key) {
                *open -= 1;
                if *open == 0 {
                    by_ip.remove(&key);
                }
            }
        }
    }
}

/// The extractor of an event-stream endpoint: a place under the stream caps (otherwise the
/// request is answered 429, or 503 when the server has as many streams as it takes) and
/// the hub. [`Sse::subscribe`] turns it into the response.
///
/// ```
/// use burrow::contrib::auth::RequireAuth;
/// use burrow::live::{Event, EventStream, Sse};
///
/// async fn events(RequireAuth(user): RequireAuth, sse: Sse) -> EventStream {
///     sse.subscribe([format!("notes:user:{}", user.id)])
///         // Events published while the browser was reconnecting are lost: say "look again".
///         .on_reconnect(Event::new("notes-changed"))
/// }
/// ```
pub struct Sse {
    hub: Hub,
    streams: Arc<Streams>,
    slot: Slot,
    last_event_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Sse {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Sse, Response> {
        let installed = crate::http::Services::of(&parts.extensions)
            .map(|s| (s.streams.clone(), s.db.live().clone()));
        let Some((streams, hub)) = installed else {
            return Err(
                Error::internal("event streams are not installed on this router").into_response()
            );
        };
        // The client behind trusted proxies (`--trusted-proxies`), else the TCP peer.
        let ClientIp(client) = ClientIp::of(&parts.extensions);
        let slot = streams.admit(client).map_err(IntoResponse::into_response)?;
        let last_event_id = (parts.headers.get("last-event-id"))
            .and_then(|v| v.to_str().ok())
            .map(|id| id.chars().take(64).collect());
        Ok(Sse { hub, streams, slot, last_event_id })
    }
}

impl Sse {
    /// The `Last-Event-ID` the browser sent: set when it reconnects after its stream
    /// ended (every stream starts by giving it one).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The stream of the events published to `topics` from now on.
    pub fn subscribe<I, T>(self, topics: I) -> EventStream
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let subscription = self.hub.subscribe(topics.into_iter().map(Into::into).collect());
        self.stream_of(subscription)
    }

    /// A stream of `subscription` (the `--dev` reload stream's, on a hub of its own).
    pub(crate) fn stream_of(self, subscription: Subscription) -> EventStream {
        let reconnected = self.last_event_id.is_some();
        EventStream { sse: self, subscription, catch_up: None, reconnected }
    }
}

/// The response of an event-stream endpoint (from [`Sse::subscribe`]): `text/event-stream`,
/// `Cache-Control: no-store`, never compressed, `X-Accel-Buffering: no` (nginx passes it
/// through at once). It starts with a `retry:` hint and an `id:`, sends the topics' events
/// as they are published and a keep-alive comment every `--sse-keep-alive` without one,
/// and ends with the retry hint when the server drains or the client fell behind by more
/// events than its buffer holds: the browser then reconnects (to the successor of a
/// restarting server).
pub struct EventStream {
    sse: Sse,
    subscription: Subscription,
    catch_up: Option<Event>,
    reconnected: bool,
}

impl EventStream {
    /// Sends `event` first when the client is reconnecting (it sent `Last-Event-ID`):
    /// what it tells, typically "look again", covers the events published while it was
    /// away (a restart, a dropped connection, a buffer that overflowed).
    pub fn on_reconnect(mut self, event: Event) -> EventStream {
        if self.reconnected {
            self.catch_up = Some(event);
        }
        self
    }
}

impl IntoResponse for EventStream {
    fn into_response(self) -> Response {
        let EventStream { sse, subscription, catch_up, .. } = self;
        let streams = sse.streams;
        let retry = streams.retry_ms();
        let id = sse.hub.last_id();
        let mut preamble = format!("retry: {retry}\nid: {id}\n\n");
        if let Some(event) = catch_up {
            preamble.push_str(&String::from_utf8_lossy(&event.encode(id)));
        }
        let every = streams.settings.keep_alive;
        let body = EventBody {
            subscription,
            preamble: Some(Bytes::from(preamble)),
            farewell: Some(Bytes::from(format!("retry: {retry}\n\n"))),
            keep_alive: Box::pin(tokio::time::sleep(every)),
            every,
            draining: Box::pin(streams.draining.wait()),
            _slot: sse.slot,
        };
        let mut response = Body::new(body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

/// The body of an [`EventStream`]: polled by hyper directly, no task or channel of its own.
struct EventBody {
    subscription: Subscription,
    /// `retry:` and `id:`, and the catch-up event; sent first.
    preamble: Option<Bytes>,
    /// The retry hint the stream ends with; `None` once sent (the stream is over).
    farewell: Option<Bytes>,
    keep_alive: Pin<Box<Sleep>>,
    every: Duration,
    draining: Pin<Box<WaitForCancellationFutureOwned>>,
    _slot: Slot,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(preamble) = this.preamble.take() {
            return Poll::Ready(Some(Ok(Frame::data(preamble))));
        }
        if this.farewell.is_none() {
            return Poll::Ready(None);
        }
        // Ending (draining, or fell behind) goes before the events still buffered.
        let ending = this.draining.as_mut().poll(cx).is_ready() || this.subscription.lagged();
        if !ending {
            match this.subscription.rx.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    this.keep_alive.as_mut().reset(Instant::now() + this.every);
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                Poll::Ready(None) => {}
                Poll::Pending => {
                    if this.keep_alive.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.keep_alive.as_mut().reset(Instant::now() + this.every);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                        b": keep-alive\n\n",
                    )))));
                }
            }
        }
        Poll::Ready(this.farewell.take().map(|farewell| Ok(Frame::data(farewell))))
    }
}

/// A handler argument: the server's hub (`hub: Hub`), to publish from a handler.
impl<S: Send + Sync> FromRequestParts<S> for Hub {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Hub, Error> {
        crate::http::Services::of(&parts.extensions)
            .map(|s| s.db.live().clone())
            .ok_or_else(|| Error::internal("the database is not installed on this router"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(max: usize, per_ip: usize) -> Arc<Streams> {
        let settings = LiveSettings {
            max_streams: max,
            max_streams_per_ip: per_ip,
            ..LiveSettings::default()
        };
        Streams::new(settings, Draining::default())
    }

    #[test]
    fn caps_count_open_streams_per_address_and_in_all() {
        let s = streams(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = s.admit(Some(a)).unwrap();
        let _second = s.admit(Some("::ffff:192.0.2.1".parse().unwrap())).unwrap();
        let refused = s.admit(Some(a)).err().unwrap().into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let _third = s.admit(Some("192.0.2.2".parse().unwrap())).unwrap();
        let full = s.admit(Some("192.0.2.3".parse().unwrap())).err().unwrap().into_response();
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(full.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(s.open(), 3);
        drop(first);
        assert_eq!(s.open(), 2);
        assert!(s.admit(Some(a)).is_ok(), "room again once a stream ended");
    }

    #[tokio::test]
    async fn draining_ends_open_streams_at_once_with_the_retry_hint_and_new_ones_too() {
        use http_body_util::BodyExt;
        let draining = Draining::default();
        let streams = Streams::new(LiveSettings::default(), draining.clone());
        let hub = Hub::default();
        let open = |last_event_id: Option<&str>| {
            let slot = streams.admit(None).unwrap();
            let (hub, streams) = (hub.clone(), streams.clone());
            let last_event_id = last_event_id.map(str::to_string);
            let sse = Sse { hub, streams, slot, last_event_id };
            sse.subscribe(["t"]).into_response().into_body()
        };
        let text = |frame: Option<Result<Frame<Bytes>, axum::Error>>| {
            let data = frame.expect("a frame").unwrap().into_data().unwrap();
            String::from_utf8(data.to_vec()).unwrap()
        };
        let mut body = open(None);
        assert!(text(body.frame().await).starts_with("retry: "));
        draining.set();
        let farewell = tokio::time::timeout(Duration::from_secs(1), body.frame()).await.unwrap();
        assert!(text(farewell).starts_with("retry: "));
        assert!(body.frame().await.is_none(), "the stream is over");
        drop(body);
        assert_eq!((streams.open(), hub.subscribers("t")), (0, 0));
        // A stream opened while draining gets the hint and ends.
        let mut late = open(Some("3"));
        assert!(text(late.frame().await).starts_with("retry: "));
        assert!(text(late.frame().await).starts_with("retry: "));
        assert!(late.frame().await.is_none());
    }

    #[test]
    fn retry_hints_spread_between_one_and_two_times_the_setting() {
        let s = streams(1, 1);
        let hints: Vec<u64> = (0..200).map(|_| s.retry_ms()).collect();
        assert!(hints.iter().all(|&ms| (1000..2000).contains(&ms)));
        assert!(hints.iter().any(|&ms| ms != hints[0]));
    }
}
