//! Live updates: event streams through the whole stack (headers, no gzip, retry hint,
//! keep-alive), the hub's fan-out, the stream caps, a client that falls behind, and
//! events published in a transaction. Draining is tested with the real binary
//! (examples/notes/tests/it/live.rs).

use std::time::Duration;

use burrow::Stack;
use burrow::axum::Router;
use burrow::axum::body::Body;
use burrow::axum::extract::Query;
use burrow::axum::http::{Request, StatusCode, header};
use burrow::axum::response::Response;
use burrow::axum::routing::{get, post};
use burrow::db::{DbError, params};
use burrow::live::{Event, Hub, Sse};
use burrow::{App, AppContext, Db, PeerAddr, Server};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::Site;

struct Live;

impl App for Live {
    fn name(&self) -> &'static str {
        "live"
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new()
            .route(
                "/events",
                // `?topic=a&topic=b`
                get(|sse: Sse, Query(q): Query<Vec<(String, String)>>| async move {
                    let topics = q.into_iter().map(|(_, topic)| topic);
                    sse.subscribe(topics).on_reconnect(Event::new("catch-up"))
                }),
            )
            .route(
                "/publish/{topic}",
                post(
                    |hub: Hub, burrow::Path(topic): burrow::Path<String>, body: String| async move {
                        hub.publish(&topic, Event::new("ping").data(body)).to_string()
                    },
                ),
            )
    }
}

fn booted(site: &Site, extra: &[&str]) -> burrow::Booted {
    site.build(Server::new("s", "1").app(Live), extra).expect("server builds")
}

/// Opens a stream from `peer`; the response, whose body stays open.
async fn open(stack: &Stack, query: &str, peer: &str, last_id: Option<&str>) -> Response {
    let last_id = last_id.map(|id| ("last-event-id", id));
    open_with(stack, query, peer, last_id.as_slice()).await
}

/// [`open`] with these request headers.
async fn open_with(stack: &Stack, query: &str, peer: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get(format!("/events?{query}")).header("accept-encoding", "gzip");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request.extensions_mut().insert(PeerAddr(format!("{peer}:5000").parse().unwrap()));
    stack.clone().oneshot(request).await.unwrap()
}

/// The next chunk of a stream as text; `None` when it ended, and a panic when nothing
/// came within `wait`.
async fn next(body: &mut Body, wait: Duration) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(wait, body.frame()).await.expect("a chunk in time");
        match frame {
            None => return None,
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    return Some(String::from_utf8_lossy(&data).into_owned());
                }
            }
        }
    }
}

const SOON: Duration = Duration::from_secs(5);

async fn publish(stack: &Stack, topic: &str, data: &str) -> usize {
    let request = Request::post(format!("/publish/{topic}")).body(Body::from(data.to_string()));
    let res = stack.clone().oneshot(request.unwrap()).await.unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_start_with_a_retry_hint_and_carry_a_topics_events_to_each_subscriber() {
    let site = Site::new();
    let booted = booted(&site, &["--sse-retry", "2s"]);
    let stack = &booted.stack;
    let a1 = open(stack, "topic=a", "192.0.2.1", None).await;
    assert_eq!(a1.status(), StatusCode::OK);
    assert_eq!(a1.headers()[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(a1.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(a1.headers()["x-accel-buffering"], "no");
    assert!(a1.headers().get(header::CONTENT_ENCODING).is_none(), "never gzipped");
    assert!(a1.headers().get(header::CONTENT_LENGTH).is_none());
    let mut a1 = a1.into_body();
    let mut a2 = open(stack, "topic=a&topic=b", "192.0.2.2", None).await.into_body();
    let mut b = open(stack, "topic=b", "192.0.2.3", None).await.into_body();
    let preamble = next(&mut a1, SOON).await.unwrap();
    let retry: u64 =
        preamble.strip_prefix("retry: ").unwrap().split('\n').next().unwrap().parse().unwrap();
    assert!((2000..4000).contains(&retry), "--sse-retry plus jitter: {preamble}");
    assert!(preamble.contains("\nid: ") && preamble.ends_with("\n\n"), "{preamble}");
    next(&mut a2, SOON).await.unwrap();
    next(&mut b, SOON).await.unwrap();

    // Larger than gzip's threshold: it still arrives as it was sent.
    let big = "x".repeat(4000);
    assert_eq!(publish(stack, "a", &format!("one\ntwo{big}")).await, 2);
    for stream in [&mut a1, &mut a2] {
        let event = next(stream, SOON).await.unwrap();
        assert!(event.starts_with("id: "), "{event}");
        assert!(
            event.contains(&format!("\nevent: ping\ndata: one\ndata: two{big}\n\n")),
            "{event}"
        );
    }
    assert_eq!(publish(stack, "b", "for b").await, 2);
    assert!(next(&mut a2, SOON).await.unwrap().contains("data: for b"));
    assert!(next(&mut b, SOON).await.unwrap().contains("data: for b"));
    assert_eq!(booted.ctx.live.subscribers("a"), 2);
    drop((a1, a2, b));
    assert_eq!(booted.ctx.live.subscribers("a"), 0, "a closed stream leaves its topics");
    assert_eq!(publish(stack, "a", "nobody").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_stream_gets_keep_alive_comments() {
    let site = Site::new();
    let booted = booted(&site, &["--sse-keep-alive", "1"]);
    let mut body = open(&booted.stack, "topic=quiet", "192.0.2.1", None).await.into_body();
    next(&mut body, SOON).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(next(&mut body, SOON).await.unwrap(), ": keep-alive\n\n");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before --sse-keep-alive");
    assert_eq!(next(&mut body, SOON).await.unwrap(), ": keep-alive\n\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_capped_per_client_address_and_in_all() {
    let site = Site::new();
    let booted = booted(&site, &["--sse-max-streams", "3", "--sse-max-streams-per-ip", "2"]);
    let stack = &booted.stack;
    let first = open(stack, "topic=t", "192.0.2.1", None).await;
    let _second = open(stack, "topic=t", "192.0.2.1", None).await;
    let third = open(stack, "topic=t", "192.0.2.1", None).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()[header::RETRY_AFTER], "5");
    let body = third.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Too many open event streams"));
    let _other = open(stack, "topic=t", "192.0.2.2", None).await;
    let german = [("accept-language", "de")];
    let full = open_with(stack, "topic=t", "192.0.2.3", &german).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = full.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Zu viele offene Ereignis-Streams"));
    drop(first);
    assert_eq!(open(stack, "topic=t", "192.0.2.1", None).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_streams_count_per_forwarded_client() {
    let site = Site::new();
    let proxy = ["--trusted-proxies", "198.51.100.1/32", "--client-ip-mode", "x-forwarded-for"];
    let booted = booted(&site, &[&["--sse-max-streams-per-ip", "1"][..], &proxy[..]].concat());
    let stack = &booted.stack;
    let via_proxy = |client: &'static str| async move {
        open_with(stack, "topic=t", "198.51.100.1", &[("x-forwarded-for", client)]).await
    };
    let _first = via_proxy("192.0.2.1").await;
    assert_eq!(via_proxy("192.0.2.2").await.status(), StatusCode::OK, "another client");
    assert_eq!(via_proxy("192.0.2.1").await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_falls_behind_is_dropped_with_the_retry_hint_and_catches_up_on_reconnect() {
    let site = Site::new();
    let booted = booted(&site, &[]);
    let stack = &booted.stack;
    let mut slow = open(stack, "topic=t", "192.0.2.1", None).await.into_body();
    let mut fast = open(stack, "topic=t", "192.0.2.2", None).await.into_body();
    next(&mut slow, SOON).await.unwrap();
    next(&mut fast, SOON).await.unwrap();
    let mut delivered = 0;
    for n in 0..200 {
        delivered += publish(stack, "t", &n.to_string()).await;
        // The fast one reads as events come; the slow one reads nothing.
        let event = next(&mut fast, SOON).await.unwrap();
        assert!(event.contains(&format!("data: {n}\n")), "{event}");
    }
    assert!(delivered < 400, "the slow stream's buffer is bounded: {delivered}");
    let farewell = next(&mut slow, SOON).await.unwrap();
    assert!(farewell.starts_with("retry: "), "it ends at once with the hint: {farewell}");
    assert_eq!(next(&mut slow, SOON).await, None);
    drop(slow);
    assert_eq!(booted.ctx.live.subscribers("t"), 1);

    // It reconnects with the last id it saw: the catch-up event comes first.
    let mut back = open(stack, "topic=t", "192.0.2.1", Some("17")).await.into_body();
    let preamble = next(&mut back, SOON).await.unwrap();
    assert!(preamble.contains("\nevent: catch-up\ndata: \n\n"), "{preamble}");
    // A first connection gets none.
    let mut new = open(stack, "topic=t", "192.0.2.3", None).await.into_body();
    assert!(!next(&mut new, SOON).await.unwrap().contains("catch-up"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_published_in_a_transaction_is_sent_only_when_it_commits() {
    let site = Site::new();
    let booted = booted(&site, &[]);
    let mut body = open(&booted.stack, "topic=t", "192.0.2.1", None).await.into_body();
    next(&mut body, SOON).await.unwrap();
    let db: &Db = &booted.ctx.db;
    let rolled_back: Result<(), DbError> = db
        .write(|c| {
            c.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)", params![])?;
            c.publish("t", Event::new("rolled-back"))?;
            Err(DbError::Other("changed my mind".into()))
        })
        .await;
    assert!(rolled_back.is_err());
    db.write(|c| c.publish("t", Event::new("committed").data("1"))).await.unwrap();
    let event = next(&mut body, SOON).await.unwrap();
    assert!(event.contains("event: committed\ndata: 1\n"), "only the committed one: {event}");
}

#[test]
fn bad_stream_settings_stop_the_start_naming_the_setting() {
    let site = Site::new();
    for (flag, value) in [
        ("--sse-keep-alive", "0"),
        ("--sse-retry", "0"),
        ("--sse-max-streams", "0"),
        ("--sse-max-streams-per-ip", "many"),
    ] {
        let err = site.build(Server::new("s", "1").app(Live), &[flag, value]).err().unwrap();
        assert_eq!(err.code, 2, "{flag}: {}", err.message);
        assert!(err.message.contains(flag), "{flag}: {}", err.message);
    }
}
