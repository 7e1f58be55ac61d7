//! Sessions, CSRF and flash messages through the whole stack, with real cookies.

use burrow::Stack;
use burrow::axum::body::Body;
use burrow::axum::extract::Form;
use burrow::axum::http::{Request, StatusCode, header};
use burrow::axum::routing::{get, post};
use burrow::axum::{Router, response::IntoResponse};
use burrow::contrib::csrf::{Csrf, CsrfToken};
use burrow::contrib::messages::{FlashMessages, Messages};
use burrow::contrib::securecookie::{Codec, now, parse_key};
use burrow::contrib::session::{Session, Sessions};
use burrow::{App, AppContext, Error, Server};

use crate::{Reply, Site, send};

const HASH: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const HASH2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const BLOCK: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const CSRF: &str = "4444444444444444444444444444444444444444444444444444444444444444";
const CSRF2: &str = "5555555555555555555555555555555555555555555555555555555555555555";

#[derive(serde::Deserialize)]
struct Value {
    v: String,
}

/// Routes that read and write the session, hand out CSRF tokens and flash messages.
struct Probe;

impl App for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["session", "csrf", "messages"]
    }

    fn templates(&self) -> Option<&'static burrow::Dir<'static>> {
        static TEMPLATES: burrow::Dir<'static> =
            burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_probe");
        Some(&TEMPLATES)
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new()
            .route(
                "/get",
                get(|s: Session| async move {
                    s.get::<String>("v").unwrap_or_else(|| "none".into())
                }),
            )
            .route(
                "/set",
                post(|s: Session, Form(f): Form<Value>| async move {
                    s.insert("v", f.v)?;
                    Ok::<_, Error>("stored")
                }),
            )
            .route(
                "/big",
                post(|s: Session| async move {
                    s.insert("v", "x".repeat(5000)).map(|_| "stored").map_err(Error::from)
                }),
            )
            .route("/token", get(|t: CsrfToken| async move { t.0 }))
            .route("/hooks/ping", post(|| async { "pong" }))
            .route("/hooks", post(|| async { "hooks" }))
            .route("/hooksevil", post(|| async { "not exempt" }))
            .route(
                "/json",
                post(|burrow::axum::Json(v): burrow::axum::Json<serde_json::Value>| async move {
                    v.to_string()
                }),
            )
            .route(
                "/flash-long",
                post(|m: Messages, Form(f): Form<Value>| async move {
                    m.info(f.v)?;
                    Ok::<_, Error>(burrow::axum::response::Redirect::to("/show").into_response())
                }),
            )
            .route(
                "/flash",
                post(|m: Messages| async move {
                    m.success("saved")?;
                    Ok::<_, Error>(burrow::axum::response::Redirect::to("/show").into_response())
                }),
            )
            .route(
                "/show",
                get(|render: burrow::Render| async move {
                    render.partial("flash.html", burrow::minijinja::context! {})
                }),
            )
    }
}

fn server() -> Server {
    Server::new("s", "1")
        .app(Sessions::new())
        .app(Csrf::new().exempt("/hooks/"))
        .app(FlashMessages)
        .app(Probe)
}

/// A browser's cookie jar, enough for one site.
#[derive(Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, reply: &Reply) {
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !attrs.contains("Max-Age=0") {
                self.0.push((name.to_string(), value.to_string()));
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn set(&mut self, name: &str, value: String) {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_string(), value));
    }
}

async fn call(
    stack: &Stack,
    jar: &mut Jar,
    method: &str,
    path: &str,
    form: Option<&str>,
    token: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path).header(header::COOKIE, jar.header());
    if let Some(token) = token {
        req = req.header("x-csrf-token", token);
    }
    let req = match form {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    };
    let reply = send(stack, req.unwrap()).await;
    jar.take(&reply);
    reply
}

/// Gets a token (and the CSRF cookie) like a page with a form would.
async fn token(stack: &Stack, jar: &mut Jar) -> String {
    let reply = call(stack, jar, "GET", "/token", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

#[tokio::test(flavor = "multi_thread")]
async fn session_round_trip_with_cookie_attributes() {
    let site = Site::new();
    let booted = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let mut jar = Jar::default();
    let t = token(&booted.stack, &mut jar).await;
    let set = call(&booted.stack, &mut jar, "POST", "/set", Some("v=hello"), Some(&t)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let cookie = set
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("_session="))
        .unwrap();
    for attr in ["Path=/", "Max-Age=604800", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http base URL: {cookie}");
    assert_eq!(call(&booted.stack, &mut jar, "GET", "/get", None, None).await.body, "hello");
    // A read-only request does not rewrite the cookie.
    let again = call(&booted.stack, &mut jar, "GET", "/get", None, None).await;
    assert!(again.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_flipped_byte_gives_an_empty_session_not_an_error() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &["--session-hash-key", HASH, "--session-block-key", BLOCK, "--csrf-key", CSRF],
        )
        .unwrap();
    let mut jar = Jar::default();
    let t = token(&booted.stack, &mut jar).await;
    call(&booted.stack, &mut jar, "POST", "/set", Some("v=precious"), Some(&t)).await;
    let good = jar.get("_session").unwrap();
    assert_eq!(
        call(&booted.stack, &mut jar.clone(), "GET", "/get", None, None).await.body,
        "precious"
    );
    let mut checked = 0;
    for i in 0..good.len() {
        for flip in [0x01u8, 0x20] {
            let mut bytes = good.clone().into_bytes();
            bytes[i] ^= flip;
            let Ok(bad) = String::from_utf8(bytes) else { continue };
            // What a browser could send back: visible ASCII without separators.
            if bad.contains([';', ',']) || !bad.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                continue;
            }
            let mut tampered = jar.clone();
            tampered.set("_session", bad);
            let reply = call(&booted.stack, &mut tampered, "GET", "/get", None, None).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (StatusCode::OK, "none"),
                "byte {i} ^ {flip:#x}"
            );
            checked += 1;
        }
    }
    assert!(checked > good.len(), "{checked} tampered cookies tried");
    for garbage in ["", "x", "...", "1.2.3", "99999999999999999999.AAAA.AAAA", "%00%ff"] {
        let mut tampered = jar.clone();
        tampered.set("_session", garbage.to_string());
        assert_eq!(
            call(&booted.stack, &mut tampered, "GET", "/get", None, None).await.body,
            "none",
            "{garbage:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_block_key_stored_values_are_not_in_the_cookie() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &["--session-hash-key", HASH, "--session-block-key", BLOCK, "--csrf-key", CSRF],
        )
        .unwrap();
    let mut jar = Jar::default();
    let t = token(&booted.stack, &mut jar).await;
    call(&booted.stack, &mut jar, "POST", "/set", Some("v=topsecretvalue"), Some(&t)).await;
    let cookie = jar.get("_session").unwrap();
    use base64::Engine;
    let decoded: Vec<u8> = cookie
        .split('.')
        .flat_map(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap_or_default()
        })
        .collect();
    for haystack in [cookie.as_bytes(), &decoded] {
        assert!(!haystack.windows(9).any(|w| w == b"topsecret"), "value visible in the cookie");
    }
    assert_eq!(
        call(&booted.stack, &mut jar, "GET", "/get", None, None).await.body,
        "topsecretvalue"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_foreign_cookies_are_empty_sessions() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &["--session-hash-key", HASH, "--csrf-key", CSRF, "--session-max-age", "3600"],
        )
        .unwrap();
    let key = parse_key(HASH).unwrap();
    let fresh =
        Codec::new(&[key], &[], 3600).encode("_session", br#"{"v":"fresh"}"#, now()).unwrap();
    let old =
        Codec::new(&[key], &[], 3600).encode("_session", br#"{"v":"old"}"#, now() - 3601).unwrap();
    let foreign = Codec::new(&[parse_key(HASH2).unwrap()], &[], 3600)
        .encode("_session", br#"{"v":"foreign"}"#, now())
        .unwrap();
    for (cookie, expected) in [(fresh, "fresh"), (old, "none"), (foreign, "none")] {
        let mut jar = Jar::default();
        jar.set("_session", cookie);
        assert_eq!(call(&booted.stack, &mut jar, "GET", "/get", None, None).await.body, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_old_sessions_and_writes_with_the_new_key() {
    let site = Site::new();
    let before = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let mut jar = Jar::default();
    let t = token(&before.stack, &mut jar).await;
    call(&before.stack, &mut jar, "POST", "/set", Some("v=kept"), Some(&t)).await;
    drop(before);
    let rotated = site
        .build(
            server(),
            &[
                "--session-hash-key",
                HASH2,
                "--session-hash-key-previous",
                HASH,
                "--csrf-key",
                CSRF2,
                "--csrf-key-previous",
                CSRF,
            ],
        )
        .unwrap();
    assert_eq!(
        call(&rotated.stack, &mut jar, "GET", "/get", None, None).await.body,
        "kept",
        "old session still valid"
    );
    let set = call(&rotated.stack, &mut jar, "POST", "/set", Some("v=new"), Some(&t)).await;
    assert_eq!(
        set.status,
        StatusCode::OK,
        "a token for the old CSRF key still works: {}",
        set.body
    );
    let without_previous =
        site.build(server(), &["--session-hash-key", HASH2, "--csrf-key", CSRF2]).unwrap();
    assert_eq!(
        call(&without_previous.stack, &mut jar.clone(), "GET", "/get", None, None).await.body,
        "new",
        "written with the new key"
    );
    let old_only = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    assert_eq!(call(&old_only.stack, &mut jar, "GET", "/get", None, None).await.body, "none");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_too_large_for_a_cookie_is_a_clear_error() {
    let site = Site::new();
    let booted = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let mut jar = Jar::default();
    let t = token(&booted.stack, &mut jar).await;
    let reply = call(&booted.stack, &mut jar, "POST", "/big", None, Some(&t)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(jar.get("_session").is_none(), "no cookie written");
}

#[tokio::test(flavor = "multi_thread")]
async fn csrf_rejects_missing_invalid_foreign_and_other_users_tokens() {
    let site = Site::new();
    let booted = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let stack = &booted.stack;
    let mut alice = Jar::default();
    let alice_token = token(stack, &mut alice).await;
    let mut bob = Jar::default();
    let bob_token = token(stack, &mut bob).await;
    let other = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF2]).unwrap();
    let mut mallory = Jar::default();
    let foreign_token = token(&other.stack, &mut mallory).await;

    let forbidden = [
        ("no token", alice.clone(), None, None),
        ("garbage token", alice.clone(), Some("not-a-token"), None),
        ("another user's token", alice.clone(), Some(bob_token.as_str()), None),
        (
            "a token and cookie signed with another key",
            mallory.clone(),
            Some(foreign_token.as_str()),
            None,
        ),
        ("no cookie", Jar::default(), Some(alice_token.as_str()), None),
        (
            "form field of another user",
            alice.clone(),
            None,
            Some(format!("v=x&csrf_token={bob_token}")),
        ),
    ];
    for (case, mut jar, header_token, form) in forbidden {
        let reply = call(
            stack,
            &mut jar,
            "POST",
            "/set",
            Some(form.as_deref().unwrap_or("v=x")),
            header_token,
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{case}");
        assert!(reply.body.contains("403"), "{case}: rendered by the error renderer");
    }
    assert_eq!(
        call(stack, &mut alice.clone(), "POST", "/set", Some("v=x"), Some(&alice_token))
            .await
            .status,
        StatusCode::OK
    );
    let form = format!("v=via-form&csrf_token={alice_token}");
    assert_eq!(
        call(stack, &mut alice, "POST", "/set", Some(&form), None).await.status,
        StatusCode::OK,
        "token from the form field"
    );
    assert_eq!(
        call(stack, &mut alice, "GET", "/get", None, None).await.body,
        "via-form",
        "the handler still reads the form"
    );
    assert_eq!(
        call(stack, &mut Jar::default(), "POST", "/hooks/ping", None, None).await.status,
        StatusCode::OK,
        "exempt path"
    );
    assert_eq!(
        call(stack, &mut Jar::default(), "GET", "/get", None, None).await.status,
        StatusCode::OK,
        "safe methods pass"
    );
    // Tokens are masked anew each time.
    assert_ne!(token(stack, &mut alice).await, token(stack, &mut alice).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn under_https_the_origin_must_be_this_site() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &[
                "--session-hash-key",
                HASH,
                "--csrf-key",
                CSRF,
                "--base-url",
                "https://notes.example.com",
            ],
        )
        .unwrap();
    let stack = &booted.stack;
    let mut jar = Jar::default();
    let t = token(stack, &mut jar).await;
    let csrf_cookie = booted_cookie_attrs(stack).await;
    assert!(csrf_cookie.contains("; Secure"), "cookies are Secure under https: {csrf_cookie}");
    let post = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let mut req =
            Request::post("/set").header(header::COOKIE, jar.header()).header("x-csrf-token", &t);
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if let Some(r) = referer {
            req = req.header(header::REFERER, r);
        }
        req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("v=x"))
            .unwrap()
    };
    assert_eq!(
        send(stack, post(Some("https://notes.example.com"), None)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(stack, post(None, Some("https://notes.example.com/notes/new"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(stack, post(Some("https://evil.example"), None)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(stack, post(None, Some("https://notes.example.com.evil.example/x"))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(stack, post(None, None)).await.status, StatusCode::FORBIDDEN);
}

async fn booted_cookie_attrs(stack: &Stack) -> String {
    let reply = send(stack, Request::get("/token").body(Body::empty()).unwrap()).await;
    reply
        .headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_are_start_up_errors_that_never_show_the_key() {
    let site = Site::new();
    for (flag, value) in [
        ("--session-hash-key", "abc"),
        ("--session-block-key", &"zz".repeat(32)),
        ("--csrf-key", &"a".repeat(63)),
    ] {
        let err = match site.build(server(), &[flag, value]) {
            Ok(_) => panic!("{flag} {value} accepted"),
            Err(e) => e,
        };
        assert_eq!(err.code, 2);
        assert!(err.message.contains(flag), "{}", err.message);
        assert!(!err.message.contains(value), "the value is a secret: {}", err.message);
    }
    assert!(!site.db().exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn flash_messages_show_once() {
    let site = Site::new();
    let booted = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let mut jar = Jar::default();
    let t = token(&booted.stack, &mut jar).await;
    let flashed = call(&booted.stack, &mut jar, "POST", "/flash", None, Some(&t)).await;
    assert_eq!(flashed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        call(&booted.stack, &mut jar, "GET", "/show", None, None).await.body,
        "success:saved;"
    );
    assert_eq!(
        call(&booted.stack, &mut jar, "GET", "/show", None, None).await.body,
        "",
        "shown once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exempt_prefixes_match_whole_path_segments() {
    let site = Site::new();
    let booted = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    // Exempted as "/hooks/": the prefix itself and what is below it, not a longer name.
    for (path, expected) in [
        ("/hooks/ping", StatusCode::OK),
        ("/hooks", StatusCode::OK),
        ("/hooksevil", StatusCode::FORBIDDEN),
    ] {
        let reply = call(&booted.stack, &mut Jar::default(), "POST", path, None, None).await;
        assert_eq!(reply.status, expected, "POST {path} without a token: {}", reply.body);
    }
}

/// A token for `secret` masked with zeros: what `CsrfToken` hands out, minus the randomness.
fn token_for(secret: &[u8; 32]) -> String {
    use base64::Engine;
    let mut raw = vec![0u8; 32];
    raw.extend_from_slice(secret);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[tokio::test(flavor = "multi_thread")]
async fn under_https_cookies_get_the_host_prefix_and_unprefixed_ones_are_ignored() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &["--session-hash-key", HASH, "--csrf-key", CSRF, "--base-url", "https://n.example"],
        )
        .unwrap();
    let stack = &booted.stack;
    let mut jar = Jar::default();
    let t = token(stack, &mut jar).await;
    assert!(jar.get("__Host-_csrf").is_some() && jar.get("_csrf").is_none(), "{:?}", jar.0);
    let set = send(
        stack,
        Request::post("/set")
            .header(header::COOKIE, jar.header())
            .header(header::ORIGIN, "https://n.example")
            .header("x-csrf-token", &t)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("v=prefixed"))
            .unwrap(),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    jar.take(&set);
    for cookie in set.headers.get_all(header::SET_COOKIE) {
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("__Host-_session="), "{cookie}");
        for attr in ["; Secure", "; Path=/;"] {
            assert!(cookie.contains(attr), "a __Host- cookie needs {attr}: {cookie}");
        }
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    }
    assert_eq!(call(stack, &mut jar, "GET", "/get", None, None).await.body, "prefixed");

    // Valid values under the plain names, as the site itself would have set them over http
    // (or as an attacker holding such cookies would plant them): not read under https.
    let session = Codec::new(&[parse_key(HASH).unwrap()], &[], 3600)
        .encode("_session", br#"{"v":"planted"}"#, now())
        .unwrap();
    let mut planted = Jar::default();
    planted.set("_session", session);
    assert_eq!(call(stack, &mut planted, "GET", "/get", None, None).await.body, "none");
    let secret = [7u8; 32];
    let csrf_codec = Codec::new(&[parse_key(CSRF).unwrap()], &[], 3600);
    for (name, expected) in [("_csrf", StatusCode::FORBIDDEN), ("__Host-_csrf", StatusCode::OK)] {
        let value = csrf_codec.encode(name, &secret, now()).unwrap();
        let reply = send(
            stack,
            Request::post("/set")
                .header(header::COOKIE, format!("{name}={value}"))
                .header(header::ORIGIN, "https://n.example")
                .header("x-csrf-token", token_for(&secret))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("v=x"))
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, expected, "CSRF cookie named {name}: {}", reply.body);
    }
}

/// A request body that fails after its first bytes, as when a client goes away mid-upload.
struct BrokenBody(bool);

impl burrow::axum::body::HttpBody for BrokenBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.0 {
            let gone = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away");
            return std::task::Poll::Ready(Some(Err(gone)));
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
            b"v=partial&csrf_",
        )))))
    }
}

/// Bodies sent without Content-Length (as chunked uploads are) go over the limit while they
/// are read: by the CSRF layer looking for the form's token, or by the handler's extractor.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_413_wherever_they_are_read() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &["--session-hash-key", HASH, "--csrf-key", CSRF, "--max-body-size", "1KB"],
        )
        .unwrap();
    let stack = &booted.stack;
    let mut jar = Jar::default();
    let t = token(stack, &mut jar).await;
    let big = format!("v={}", "x".repeat(4096));

    let in_form = format!("{big}&csrf_token={t}");
    let reply = call(stack, &mut jar.clone(), "POST", "/set", Some(&in_form), None).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "token in the form: {}", reply.body);
    assert!(reply.body.contains("413"), "rendered by the error renderer: {}", reply.body);
    let reply = call(stack, &mut jar.clone(), "POST", "/set", Some(&big), Some(&t)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "token in the header: {}", reply.body);

    let json = |body: String| {
        Request::post("/json")
            .header(header::COOKIE, jar.header())
            .header("x-csrf-token", &t)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let reply = send(stack, json(format!("[{}1]", "1,".repeat(1000)))).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "JSON: {}", reply.body);
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(v["code"], 413, "{v}");
    assert_eq!(send(stack, json("[1,2]".into())).await.body, "[1,2]", "a small JSON body");

    // A body that breaks off is a bad request, not a CSRF failure.
    let broken = Request::post("/set")
        .header(header::COOKIE, jar.header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::new(BrokenBody(false)))
        .unwrap();
    assert_eq!(send(stack, broken).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn flash_messages_make_room_in_the_cookie_instead_of_failing() {
    let site = Site::new();
    let booted = site.build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let stack = &booted.stack;
    let mut jar = Jar::default();
    let t = token(stack, &mut jar).await;
    let session_size = |reply: &Reply| {
        reply
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|c| c.to_str().unwrap())
            .find(|c| c.starts_with("_session="))
            .map(|c| c.split(';').next().unwrap().len())
            .expect("a session cookie")
    };

    // Each message alone fits, two do not: the older one is dropped.
    for letter in ["a", "b", "c"] {
        let form = format!("v={}", letter.repeat(1500));
        let reply = call(stack, &mut jar, "POST", "/flash-long", Some(&form), Some(&t)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{letter}: {}", reply.body);
        assert!(session_size(&reply) <= 4096);
    }
    let shown = call(stack, &mut jar, "GET", "/show", None, None).await.body;
    assert_eq!(shown, format!("info:{};", "c".repeat(1500)));

    // One message alone too large: shortened, with an ellipsis.
    let form = format!("v={}", "é".repeat(3000));
    let reply = call(stack, &mut jar, "POST", "/flash-long", Some(&form), Some(&t)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(session_size(&reply) <= 4096);
    let shown = call(stack, &mut jar, "GET", "/show", None, None).await.body;
    let text = shown
        .strip_prefix("info:")
        .and_then(|s| s.strip_suffix("…;"))
        .unwrap_or_else(|| panic!("not one shortened message: {}", &shown[..shown.len().min(200)]));
    assert!(text.chars().all(|c| c == 'é') && text.chars().count() > 1000, "{text}");
}

/// An app whose middleware reads the session (`Session::of`): registered before `Sessions`,
/// its middleware still sees it, because the core stack makes each request's session state
/// around all apps' middleware.
struct Early;

impl App for Early {
    fn name(&self) -> &'static str {
        "early"
    }

    fn middleware(&self, router: Router, _ctx: &AppContext) -> Router {
        router.layer(burrow::axum::middleware::from_fn(
            |request: burrow::axum::extract::Request, next: burrow::axum::middleware::Next| async move {
                let visits = Session::of(request.extensions())
                    .map_or("no session".to_string(), |s| {
                        s.get::<u32>("visits").unwrap_or(0).to_string()
                    });
                let mut response = next.run(request).await;
                response.headers_mut().insert("x-visits", visits.parse().unwrap());
                response
            },
        ))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_apps_middleware_sees_the_session_whatever_the_registration_order() {
    struct Counter;
    impl App for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn routes(&self, _ctx: &AppContext) -> Router {
            Router::new().route(
                "/count",
                get(|s: Session| async move {
                    let n = s.get::<u32>("visits").unwrap_or(0) + 1;
                    s.insert("visits", n)?;
                    Ok::<_, Error>(n.to_string())
                }),
            )
        }
    }
    let site = Site::new();
    let server = Server::new("s", "1").app(Early).app(Sessions::new()).app(Counter);
    let booted = site.build(server, &["--session-hash-key", HASH]).unwrap();
    let mut jar = Jar::default();
    let first = call(&booted.stack, &mut jar, "GET", "/count", None, None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(first.headers["x-visits"], "0", "an app registered before Sessions sees it");
    call(&booted.stack, &mut jar, "GET", "/count", None, None).await;
    // The 404 fallback is inside the app middleware: it knows the session too.
    let missing = call(&booted.stack, &mut jar, "GET", "/no/such/page", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers["x-visits"], "2");
}

/// The CSRF check runs around every app's middleware, wherever the app is registered: an
/// unsafe request that fails it reaches none of them. Safe requests skip it, with a body
/// or without (the core stack sends those without one past its layer), and an unsafe one
/// without a body is checked all the same.
#[tokio::test(flavor = "multi_thread")]
async fn csrf_checks_unsafe_requests_before_any_apps_middleware() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the requests its middleware sees.
    struct Watcher(Arc<AtomicUsize>);
    impl App for Watcher {
        fn name(&self) -> &'static str {
            "watcher"
        }
        fn routes(&self, _ctx: &AppContext) -> Router {
            let echo = |method: burrow::axum::http::Method, body: String| async move {
                format!("{method} {body}")
            };
            Router::new().route("/w", get(echo).post(echo).delete(echo))
        }
        fn middleware(&self, router: Router, _ctx: &AppContext) -> Router {
            let seen = self.0.clone();
            router.layer(burrow::axum::middleware::from_fn(
                move |request: burrow::axum::extract::Request,
                      next: burrow::axum::middleware::Next| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    next.run(request)
                },
            ))
        }
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let server = Server::new("s", "1")
        .app(Watcher(seen.clone()))
        .app(Sessions::new())
        .app(Csrf::new())
        .app(FlashMessages)
        .app(Probe);
    let site = Site::new();
    let booted = site.build(server, &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap();
    let stack = &booted.stack;
    let mut jar = Jar::default();
    let t = token(stack, &mut jar).await;
    let seen_now = || seen.load(Ordering::SeqCst);
    let before = seen_now();

    for (method, form) in [("POST", Some("v=1")), ("DELETE", None)] {
        let refused = call(stack, &mut jar, method, "/w", form, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} without a token");
        assert_eq!(seen_now(), before, "{method}: the middleware saw a refused request");
    }
    let posted = call(stack, &mut jar, "POST", "/w", Some("v=1"), Some(&t)).await;
    assert_eq!((posted.status, posted.body.as_str()), (StatusCode::OK, "POST v=1"));
    let deleted = call(stack, &mut jar, "DELETE", "/w", None, Some(&t)).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (StatusCode::OK, "DELETE "));
    assert_eq!(seen_now(), before + 2, "checked requests reach the middleware");

    // Safe methods need no token, with a body or without, and pass the middleware.
    let got = call(stack, &mut jar, "GET", "/w", None, None).await;
    assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, "GET "));
    let with_body = call(stack, &mut jar, "GET", "/w", Some("v=2"), None).await;
    assert_eq!((with_body.status, with_body.body.as_str()), (StatusCode::OK, "GET v=2"));
    assert_eq!(seen_now(), before + 4);
    // An unknown path is a 404 whatever the token, and the middleware sees it (the 404
    // page is inside the apps' middleware).
    let missing = call(stack, &mut jar, "POST", "/no/such/page", Some("v=1"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(seen_now(), before + 5);
}
