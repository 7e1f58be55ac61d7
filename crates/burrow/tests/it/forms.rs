//! Forms through a real stack: the CSRF app in front, `FormResult` in the handler, the
//! page shown again with 422, escaped values and aria attributes, and the htmx headers.

use burrow::Stack;
use burrow::axum::Router;
use burrow::axum::body::Body;
use burrow::axum::http::{Request, StatusCode, header};
use burrow::axum::response::{IntoResponse, Response};
use burrow::axum::routing::{get, post};
use burrow::contrib::csrf::{Csrf, CsrfToken};
use burrow::contrib::session::Sessions;
use burrow::forms::{Form, FormData, FormResult, Valid};
use burrow::minijinja::context;
use burrow::{App, AppContext, Dir, Error, Render, Server};

use crate::{Reply, Site, send};

static TEMPLATES: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_forms");

const HASH: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const CSRF: &str = "2222222222222222222222222222222222222222222222222222222222222222";

#[derive(Debug, Form)]
struct Signup {
    #[form(required, max_length = 40)]
    name: String,
    #[form(required, email, label = "Email address", help = "We never share it.")]
    email: String,
    #[form(min = 13)]
    age: Option<u32>,
    newsletter: bool,
}

struct Signups;

impl App for Signups {
    fn name(&self) -> &'static str {
        "signups"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["csrf"]
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new()
            .route("/token", get(|t: CsrfToken| async move { t.0 }))
            .route("/signup", get(page).post(create))
            // `Valid` alone: an invalid submission is a plain 422.
            .route("/api/signup", post(|Valid(s): Valid<Signup>| async move { s.name }))
            // The raw fields and files of an upload.
            .route("/upload", post(upload))
    }
}

async fn page(render: Render) -> Result<Response, Error> {
    Ok(render
        .page("signup.html", context! { form => Signup::blank(), button => "Sign up" })?
        .into_response())
}

async fn create(render: Render, form: FormResult<Signup>) -> Result<Response, Error> {
    match form {
        Ok(Valid(signup)) => Ok(format!(
            "welcome {} {} {:?} {}",
            signup.name, signup.email, signup.age, signup.newsletter
        )
        .into_response()),
        Err(invalid) => invalid.page(&render, "signup.html", context! { button => "Try again" }),
    }
}

async fn upload(data: FormData) -> String {
    let files: Vec<String> = (data.files().iter())
        .map(|f| format!("{}={} {:?} {}", f.field, f.file_name, f.content_type, f.size()))
        .collect();
    format!("title={:?} files={files:?}", data.get("title"))
}

fn server() -> Server {
    Server::new("f", "1").app(Sessions::new()).app(Csrf::new()).app(Signups)
}

/// A CSRF cookie and a token for it, as a page with a form would give.
async fn credentials(stack: &Stack) -> (String, String) {
    let reply = send(stack, Request::get("/token").body(Body::empty()).unwrap()).await;
    let cookie = reply.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    (cookie.split(';').next().unwrap().to_string(), reply.body)
}

async fn post_form(stack: &Stack, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let (cookie, token) = credentials(stack).await;
    let mut request = Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    // The token travels in the body, beside the form's own fields.
    let body = format!("{body}&csrf_token={}", urlencode(&token));
    send(stack, request.body(Body::from(body)).unwrap()).await
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn booted() -> burrow::Booted {
    Site::new().build(server(), &["--session-hash-key", HASH, "--csrf-key", CSRF]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_valid_submission_reaches_the_handler() {
    let booted = booted();
    let reply = post_form(
        &booted.stack,
        "/signup",
        "name=+Ada+&email=ada%40example.org&age=36&newsletter=on",
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "welcome Ada ada@example.org Some(36) true");
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_blank_page_shows_the_fields() {
    let booted = booted();
    let reply = send(&booted.stack, Request::get("/signup").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.body;
    assert!(body.contains(r#"<label for="email">Email address</label>"#), "{body}");
    assert!(
        body.contains(r#"<input type="email" id="email" name="email" required aria-describedby="email-help" value="">"#),
        "{body}"
    );
    assert!(body.contains(r#"name="csrf_token""#) && !body.contains("role=\"alert\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_invalid_submission_is_shown_again_with_422() {
    let booted = booted();
    let body = "name=%3Cscript%3Ealert(1)%3C%2Fscript%3E&email=not-an-email&age=7";
    let reply = post_form(&booted.stack, "/signup", body, &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let content_type = reply.headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(reply.headers.get("hx-retarget").is_none(), "not an htmx request");
    let body = reply.body;
    assert!(body.contains("<html") && body.contains("Try again"), "the whole page:\n{body}");
    // What was entered comes back, escaped.
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert!(body.contains(r#"value="&lt;script&gt;alert(1)&lt;&#x2f;script&gt;""#), "{body}");
    assert!(
        body.contains(r#"<input type="email" id="email" name="email" required class="invalid" aria-invalid="true" aria-describedby="email-error email-help" value="not-an-email">"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"<p id="email-error" class="field-error">Email address must be an email address.</p>"#
        ),
        "{body}"
    );
    assert!(body.contains(r#"<div class="errors" role="alert">"#), "{body}");
    assert!(body.contains(r##"<a href="#age">Age must be at least 13.</a>"##), "{body}");
    assert!(
        !body.contains(r#"id="name" name="name" required class="invalid""#),
        "name is valid: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_htmx_submission_replaces_the_form_that_sent_it() {
    let booted = booted();
    let htmx = [("hx-request", "true"), ("hx-trigger", "signup")];
    let reply = post_form(&booted.stack, "/signup", "name=&email=a%40b.co", &htmx).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let header = |name| reply.headers.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header("hx-retarget").as_deref(), Some("#signup"));
    assert_eq!(header("hx-reswap").as_deref(), Some("outerHTML"));
    assert!(!reply.body.contains("<html"), "only the content block:\n{}", reply.body);
    assert!(reply.body.contains("Name is required."), "{}", reply.body);

    // An id that is not a plain name is not made into a selector.
    let htmx = [("hx-request", "true"), ("hx-trigger", "x\"],body")];
    let reply = post_form(&booted.stack, "/signup", "name=", &htmx).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.headers.get("hx-retarget").is_none() && reply.headers.get("hx-reswap").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_other_bodies_and_bare_valid() {
    let booted = booted();
    let (cookie, token) = credentials(&booted.stack).await;
    let request = Request::post("/signup")
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name":"Ada"}"#))
        .unwrap();
    let reply = send(&booted.stack, request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", reply.body);

    let reply = post_form(&booted.stack, "/api/signup", "name=Ada&email=nope", &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("Email address must be an email address."), "{}", reply.body);
    let reply = post_form(&booted.stack, "/api/signup", "name=Ada&email=a%40b.co", &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "Ada"));
}

/// A `multipart/form-data` body of `fields` and `files` (field, file name, bytes), as a
/// browser sends a form with `enctype="multipart/form-data"`.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--B0UNDARY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .bytes(),
        );
        body.extend(format!("{value}\r\n").bytes());
    }
    for (name, file_name, bytes) in files {
        let head = format!(
            "--B0UNDARY\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        body.extend(head.bytes());
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(b"--B0UNDARY--\r\n");
    body
}

async fn post_multipart(stack: &Stack, path: &str, body: Vec<u8>, cookie: &str) -> Reply {
    let request = Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=B0UNDARY");
    send(stack, request.body(Body::from(body)).unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_read_multipart_bodies_with_the_csrf_token_among_the_fields() {
    let booted = booted();
    let (cookie, token) = credentials(&booted.stack).await;
    let token = token.as_str();

    // The same form as a urlencoded one: trimmed, validated, the token checked in the body.
    let fields = [("name", " Ada "), ("email", "ada@example.org"), ("csrf_token", token)];
    let reply = post_multipart(&booted.stack, "/signup", multipart(&fields, &[]), &cookie).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "welcome Ada ada@example.org None false");

    // Invalid: the page again with 422 and the errors.
    let fields = [("name", ""), ("email", "nope"), ("csrf_token", token)];
    let reply = post_multipart(&booted.stack, "/signup", multipart(&fields, &[]), &cookie).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert!(reply.body.contains("Name is required."), "{}", reply.body);

    // Without the token, or with another one: refused before the handler.
    for fields in [vec![("name", "Ada")], vec![("name", "Ada"), ("csrf_token", "forged")]] {
        let body = multipart(&fields, &[]);
        let reply = post_multipart(&booted.stack, "/signup", body, &cookie).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{fields:?}: {}", reply.body);
    }

    // Files reach a handler that takes the raw `FormData`; an empty file input is no file.
    let files: [(&str, &str, &[u8]); 2] =
        [("attachment", "notes.txt", b"hello\x00world"), ("empty", "", b"")];
    let body = multipart(&[("title", "Mine"), ("csrf_token", token)], &files);
    let reply = post_multipart(&booted.stack, "/upload", body, &cookie).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        r#"title=Some("Mine") files=["attachment=notes.txt Some(\"application/octet-stream\") 11"]"#
    );

    // A body that is not multipart after all: 403 (no token can be read from it).
    let request = Request::post("/signup")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=B0UNDARY");
    let reply = send(&booted.stack, request.body(Body::from("garbage")).unwrap()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
}

/// Multipart bodies (uploads) have their own limit, `--upload-max-size`; their text fields
/// together stay under `--max-body-size`, since those are held in memory.
#[tokio::test(flavor = "multi_thread")]
async fn forms_multipart_over_the_upload_limit_is_413() {
    let site = Site::new();
    let limits = ["--max-body-size", "64KB", "--upload-max-size", "128KB"];
    let args = [["--session-hash-key", HASH, "--csrf-key", CSRF].as_slice(), &limits].concat();
    let booted = site.build(server(), &args).unwrap();
    let (cookie, token) = credentials(&booted.stack).await;
    let post = |size: usize, text: usize| {
        let (stack, cookie, token) = (&booted.stack, &cookie, &token);
        async move {
            let big = vec![b'x'; size];
            let files: [(&str, &str, &[u8]); 1] = [("attachment", "big.bin", &big)];
            let title = "t".repeat(text);
            let body = multipart(&[("csrf_token", token.as_str()), ("title", &title)], &files);
            post_multipart(stack, "/upload", body, cookie).await
        }
    };
    let reply = post(100 * 1024, 10).await;
    assert_eq!(reply.status, StatusCode::OK, "a file over --max-body-size: {}", reply.body);
    assert!(reply.body.contains("big.bin") && reply.body.contains(" 102400"), "{}", reply.body);
    let reply = post(200 * 1024, 10).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.body);
    let reply = post(1024, 80 * 1024).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "text over --max-body-size: {}",
        reply.body
    );
}
