//! In-process benchmarks of the notes request path: routing, the core middleware stack
//! (request id, access log, gzip layer, error renderer, body limit, panic catcher),
//! template rendering and SQLite, without sockets or HTTP parsing.
//!
//! Run by hand: `cargo bench -p notes --bench request_path` (see bench/README.md).

use std::hint::black_box;
use std::time::Duration;

use burrow::Stack;
use burrow::axum::body::{Body, to_bytes};
use burrow::axum::http::{Request, StatusCode, header};
use burrow::contrib::auth::login_link;
use burrow::contrib::auth::users::{self, NewUser};
use burrow::db::DbError;
use criterion::{Criterion, criterion_group, criterion_main};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Notes in the database before the benchmarks start.
const NOTES: usize = 1000;

/// Words the generated notes are made of.
const WORDS: &[&str] = &[
    "apple", "river", "stone", "cloud", "maple", "ember", "quartz", "harbor", "meadow", "cobalt",
    "falcon", "willow", "copper", "glacier", "orchid", "summit", "thistle", "canyon", "juniper",
    "saffron", "tundra", "walnut", "zephyr", "bramble", "cedar", "dune", "fjord", "grove", "heron",
    "indigo", "jasper", "kelp", "lagoon", "mosaic", "nectar", "obsidian", "pebble", "quill",
    "reef", "sparrow",
];

/// A word that every fourth note contains (see `note_text`), so a search finds more than
/// one page of results.
const SEARCH_WORD: &str = "lantern";

struct Fixture {
    rt: Runtime,
    stack: Stack,
    /// An id from the middle of the table, for the detail page, and its title.
    detail_id: i64,
    detail_title: String,
    /// The `Cookie` header and the token of a loaded form, which every POST needs.
    csrf: (String, String),
    _dir: TempDir,
}

/// A deterministic title and content for note `i` (xorshift over `WORDS`).
fn note_text(i: usize) -> (String, String) {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut word = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        WORDS[(state % WORDS.len() as u64) as usize]
    };
    let title = format!("{} {} {} {i}", word(), word(), word());
    let mut content: Vec<&str> = (0..60).map(|_| word()).collect();
    if i.is_multiple_of(4) {
        content[30] = SEARCH_WORD;
    }
    (title, content.join(" "))
}

fn setup() -> Fixture {
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let dsn = dir.path().join("app.db");
    let dsn = dsn.to_str().expect("UTF-8 temp dir");
    let booted = {
        let _guard = rt.enter();
        notes::server()
            .build(["server", "--database-dsn", dsn, "--log-level", "error"])
            .expect("server builds")
    };
    let db = booted.ctx.db.clone();
    // Notes belong to their author: the account the benchmark signs in as.
    let last_id = rt
        .block_on(db.write(|c| {
            let new = NewUser { username: "bench".into(), ..NewUser::default() };
            let user = users::create(c, &new).map_err(|e| DbError::Other(e.to_string()))?;
            for i in 0..NOTES {
                let (title, content) = note_text(i);
                c.execute(
                    "INSERT INTO notes(title, content, user_id) VALUES (?, ?, ?)",
                    burrow::db::params![title, content, user.id],
                )?;
            }
            c.last_insert_id()
        }))
        .expect("seed notes");
    // Note `i` got the id `first_id + i`.
    let first_id = last_id - NOTES as i64 + 1;
    let detail_index = NOTES / 2;
    let csrf = rt.block_on(sign_in(&booted));
    Fixture {
        rt,
        csrf,
        stack: booted.stack,
        detail_id: first_id + detail_index as i64,
        detail_title: note_text(detail_index).0,
        _dir: dir,
    }
}

/// A GET with the signed-in browser's cookies.
fn get(fx: &Fixture, uri: &str) -> Request<Body> {
    Request::get(uri).header(header::COOKIE, &fx.csrf.0).body(Body::empty()).expect("request")
}

fn get_gzip(fx: &Fixture, uri: &str) -> Request<Body> {
    let request = Request::get(uri).header(header::COOKIE, &fx.csrf.0);
    request.header(header::ACCEPT_ENCODING, "gzip").body(Body::empty()).expect("request")
}

/// Signs in as `bench` as a browser follows a sign-in link (the link's page, its form
/// posted), then loads the new-note form: the session and CSRF cookies, and the token.
async fn sign_in(booted: &burrow::Booted) -> (String, String) {
    let link = login_link(&booted.ctx, "bench").await.expect("a sign-in link");
    let path = &link.url[link.url.find("/auth/link").expect("the link's path")..];
    let mut cookies: Vec<String> = Vec::new();
    let mut fetch = async |request: Request<Body>| {
        let response = booted.stack.clone().oneshot(request).await.expect("infallible");
        for value in response.headers().get_all(header::SET_COOKIE) {
            let pair = value.to_str().expect("ASCII cookie").split(';').next().unwrap_or("");
            let name = pair.split('=').next().unwrap_or("").to_string();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(pair.to_string());
        }
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (String::from_utf8_lossy(&body).into_owned(), cookies.join("; "))
    };
    let token_of = |html: &str| {
        const FIELD: &str = "name=\"csrf_token\" value=\"";
        let at = html.find(FIELD).expect("a csrf_token field") + FIELD.len();
        html[at..].chars().take_while(|&c| c != '"').collect::<String>()
    };
    let (page, cookie) = fetch(Request::get(path).body(Body::empty()).expect("request")).await;
    let token = path.split_once("token=").expect("a token").1;
    let form = format!("token={token}&csrf_token={}", token_of(&page));
    let post = Request::post("/auth/link")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie);
    let (_, cookie) = fetch(post.body(Body::from(form)).expect("request")).await;
    let new = Request::get("/notes/new").header(header::COOKIE, cookie);
    let (html, cookie) = fetch(new.body(Body::empty()).expect("request")).await;
    assert!(cookie.contains("_session="), "signed in: {cookie}");
    (cookie, token_of(&html))
}

fn post_note(fx: &Fixture, n: u64) -> Request<Body> {
    let body = format!(
        "title=Bench+note+{n}&content=Written+by+the+request_path+benchmark.+{SEARCH_WORD}+{}",
        WORDS[n as usize % WORDS.len()]
    );
    Request::post("/notes")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &fx.csrf.0)
        .header("x-csrf-token", &fx.csrf.1)
        .body(Body::from(body))
        .expect("request")
}

/// Sends one request through a clone of the stack and reads the whole body.
async fn send(stack: &Stack, request: Request<Body>) -> (StatusCode, burrow::axum::body::Bytes) {
    let response = stack.clone().oneshot(request).await.expect("the stack is infallible");
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.expect("response body");
    (status, body)
}

/// Runs the request once and panics unless it answers `want` with a body containing
/// `needle`, so that a broken route fails loudly instead of benchmarking an error page.
/// Returns the body.
fn check(
    fx: &Fixture,
    name: &str,
    request: Request<Body>,
    want: StatusCode,
    needle: &str,
) -> String {
    let (status, body) = fx.rt.block_on(send(&fx.stack, request));
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, want, "{name}: unexpected status; body:\n{text}");
    assert!(text.contains(needle), "{name}: body lacks {needle:?}:\n{text}");
    text
}

/// Checks that a list page shows a full page of notes (20 rows).
fn check_rows(fx: &Fixture, uri: &str) {
    let text = check(fx, uri, get(fx, uri), StatusCode::OK, "<li id=\"note-");
    let rows = text.matches("<li id=\"note-").count();
    assert_eq!(rows, 20, "{uri}: expected a full page of 20 notes, found {rows}");
}

fn bench_get(c: &mut Criterion, fx: &Fixture, name: &str, uri: &str, needle: &str) {
    check(fx, name, get(fx, uri), StatusCode::OK, needle);
    c.bench_function(name, |b| {
        b.iter(|| {
            let (status, body) = fx.rt.block_on(send(&fx.stack, get(fx, uri)));
            debug_assert_eq!(status, StatusCode::OK);
            black_box(body)
        })
    });
}

fn request_path(c: &mut Criterion) {
    let fx = setup();
    check_rows(&fx, "/notes");
    check_rows(&fx, &format!("/notes?q={SEARCH_WORD}"));

    bench_get(c, &fx, "GET /notes (list, 20 rows)", "/notes", "<li id=\"note-");
    let detail = format!("/notes/{}", fx.detail_id);
    bench_get(c, &fx, "GET /notes/{id} (detail)", &detail, &fx.detail_title);
    bench_get(
        c,
        &fx,
        "GET /notes?q=word (FTS search)",
        &format!("/notes?q={SEARCH_WORD}"),
        "<li id=\"note-",
    );
    bench_get(
        c,
        &fx,
        "GET /healthz/live (middleware baseline)",
        "/healthz/live",
        "\"status\":\"ok\"",
    );

    // The list page again, as a browser asks for it: gzip-compressed.
    let response = fx
        .rt
        .block_on(fx.stack.clone().oneshot(get_gzip(&fx, "/notes")))
        .expect("the stack is infallible");
    assert_eq!(response.status(), StatusCode::OK, "GET /notes with gzip");
    assert_eq!(
        response.headers().get(header::CONTENT_ENCODING).map(|v| v.as_bytes()),
        Some(&b"gzip"[..]),
        "GET /notes with Accept-Encoding: gzip is not compressed"
    );
    c.bench_function("GET /notes (list, gzip)", |b| {
        b.iter(|| {
            let (status, body) = fx.rt.block_on(send(&fx.stack, get_gzip(&fx, "/notes")));
            debug_assert_eq!(status, StatusCode::OK);
            black_box(body)
        })
    });

    check(&fx, "POST /notes", post_note(&fx, 0), StatusCode::SEE_OTHER, "");
    let mut n = 1u64;
    c.bench_function("POST /notes (form insert)", |b| {
        b.iter(|| {
            n += 1;
            let (status, body) = fx.rt.block_on(send(&fx.stack, post_note(&fx, n)));
            debug_assert_eq!(status, StatusCode::SEE_OTHER);
            black_box(body)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = request_path
}
criterion_main!(benches);
