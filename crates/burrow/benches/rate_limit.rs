//! What a rate limit costs a request: the same route called in-process without a layer,
//! under a layer that does nothing (what `route_layer` costs by itself), and under
//! `RateLimit::per_ip` (one client, and 10,000 clients in turn), and a refused request
//! (the 429 built, not rendered). The route answers at once, so the futures are
//! polled once, without a runtime. Run: `cargo bench -p burrow --bench rate_limit`.

use std::future::Future;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::task::{Context, Poll, Waker};

use burrow::axum::Router;
use burrow::axum::body::Body;
use burrow::axum::http::{Request, StatusCode};
use burrow::axum::routing::get;
use burrow::{ClientIp, Rate, RateLimit};
use criterion::{Criterion, criterion_group, criterion_main};
// A router is always ready: `call` needs no `poll_ready` first.
use tower::Service;

fn router(limit: Option<RateLimit>) -> Router {
    let router = Router::new().route("/", get(|| async { "ok" }));
    match limit {
        Some(limit) => router.route_layer(limit),
        None => router,
    }
    .with_state(())
}

/// The route under a layer that does nothing: what `route_layer` itself costs (axum boxes
/// the layered route, and its future on every request).
fn router_with_a_no_op_layer() -> Router {
    let router = Router::new().route("/", get(|| async { "ok" }));
    router.route_layer(tower::layer::util::Identity::new()).with_state(())
}

/// Calls `router` for a request from `ip`; the route never waits, so one poll answers.
fn call(router: &mut Router, ip: IpAddr) -> StatusCode {
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ClientIp(Some(ip)));
    let mut future = std::pin::pin!(router.call(request));
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response.status(),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => panic!("the route waited"),
    }
}

fn rate_limit(c: &mut Criterion) {
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    // A rate no benchmark reaches: every request is let through.
    let generous = || RateLimit::per_ip(Rate::per_second(u32::MAX));
    let mut group = c.benchmark_group("rate limit");
    let mut plain = router(None);
    group.bench_function("route without a limit", |b| {
        b.iter(|| black_box(call(&mut plain, black_box(client))))
    });
    let mut no_op = router_with_a_no_op_layer();
    group.bench_function("route with a layer that does nothing", |b| {
        b.iter(|| black_box(call(&mut no_op, black_box(client))))
    });
    let mut limited = router(Some(generous()));
    group.bench_function("route with RateLimit::per_ip, one client", |b| {
        b.iter(|| black_box(call(&mut limited, black_box(client))))
    });
    let mut many = router(Some(generous()));
    let mut n = 0u32;
    group.bench_function("route with RateLimit::per_ip, 10,000 clients in turn", |b| {
        b.iter(|| {
            n = (n + 1) % 10_000;
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            black_box(call(&mut many, ip))
        })
    });
    let mut refusing = router(Some(RateLimit::per_ip(Rate::per_hour(1))));
    assert_eq!(call(&mut refusing, client), StatusCode::OK);
    group.bench_function("refused (429 with Retry-After)", |b| {
        b.iter(|| {
            let status = call(&mut refusing, black_box(client));
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        })
    });
    group.finish();
}

criterion_group!(benches, rate_limit);
criterion_main!(benches);
