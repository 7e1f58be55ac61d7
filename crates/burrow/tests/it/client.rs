//! `burrow_test::Client` against a small guest book on the real contrib apps (theme,
//! sessions, CSRF, flash messages) and a real SQLite file: cookies, CSRF tokens, redirects
//! and the page helpers.

use burrow::axum::Json;
// axum's form extractor (the prelude's `Form` is the derive).
use burrow::axum::extract::Form;
use burrow::axum::routing::put;
use burrow::contrib::csrf::Csrf;
use burrow::contrib::messages::FlashMessages;
use burrow::contrib::session::Sessions;
use burrow::contrib::theme::Theme;
use burrow::prelude::*;
use burrow_test::Client;

static TEMPLATES: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_client");
static MIGRATIONS: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/tests/it/migrations_client");

/// A guest book: entries in SQLite, a flash message after signing, a login that rotates
/// the session and CSRF secret, redirect chains and a JSON route.
struct Book;

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
    message: String,
}

#[derive(serde::Deserialize)]
struct Login {
    who: String,
}

impl App for Book {
    fn name(&self) -> &'static str {
        "book"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["theme", "messages", "csrf"]
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn routes(&self, ctx: &AppContext) -> Router {
        Router::new()
            .route("/", get(book).post(sign))
            .route("/login", post(login))
            .route("/logout", post(logout))
            .route(
                "/whoami",
                get(|s: Session| async move { s.get::<String>("who").unwrap_or_default() }),
            )
            // /hop/3 → /hop/2 → /hop/1 → /hop/0 → /, with relative and absolute Locations.
            .route("/hop/{n}", get(hop))
            .route("/loop", get(|| async { Redirect::to("/loop") }))
            .route("/old", post(|| async { Redirect::temporary("/new") }))
            .route("/new", post(|Form(e): Form<Entry>| async move { format!("new: {}", e.name) }))
            .route("/api/thing", put(|Json(v): Json<serde_json::Value>| async move { Json(v) }))
            .with_state(ctx.db.clone())
    }
}

async fn book(State(db): State<Db>, render: Render) -> Result<Html> {
    let sql = "SELECT name, message FROM entries ORDER BY id";
    let rows: Vec<(String, String)> = db.read(move |c| c.query(sql, &[])).await?;
    let entries: Vec<_> =
        rows.into_iter().map(|(name, message)| context! { name, message }).collect();
    render.page("book.html", context! { entries })
}

async fn sign(State(db): State<Db>, messages: Messages, Form(e): Form<Entry>) -> Result<Response> {
    let name = e.name.clone();
    let sql = "INSERT INTO entries (name, message) VALUES (?, ?)";
    db.write(move |c| c.execute(sql, params![e.name, e.message])).await?;
    messages.success(format!("Thanks, {name}."))?;
    Ok(Redirect::to("/").into_response())
}

async fn login(session: Session, Form(l): Form<Login>) -> Result<Redirect> {
    session.insert("who", l.who)?;
    session.regenerate();
    Ok(Redirect::to("/whoami"))
}

async fn logout(session: Session) -> Redirect {
    session.clear();
    Redirect::to("/")
}

async fn hop(Path(n): Path<u32>) -> Response {
    match n {
        0 => Redirect::to("http://localhost:8080/").into_response(),
        // A relative Location, resolved against /hop/N.
        1 => (StatusCode::FOUND, [("location", "0")]).into_response(),
        n => Redirect::to(&format!("/hop/{}", n - 1)).into_response(),
    }
}

fn server() -> Server {
    Server::new("server", "0.1.0")
        .app(Theme::new("Book"))
        .app(Sessions::new())
        .app(Csrf::new())
        .app(FlashMessages)
        .app(Book)
}

fn entries(client: &Client) -> Vec<(String, String)> {
    client
        .block_on(
            client.db().read(|c| c.query("SELECT name, message FROM entries ORDER BY id", &[])),
        )
        .expect("entries")
}

#[test]
fn a_post_as_the_first_request_carries_a_valid_token() {
    let client = Client::new(server());
    let page = client.post("/", &[("name", "Ann"), ("message", "Hi")]);
    assert_eq!(page.status(), 303, "{page:?}");
    assert_eq!(page.location(), Some("/"));
    assert_eq!(entries(&client), [("Ann".to_string(), "Hi".to_string())]);
    assert!(client.cookie("_csrf").is_some(), "the CSRF cookie was kept");
    assert!(client.cookie("_session").is_some(), "the flash message's session cookie");
}

#[test]
fn the_csrf_check_is_real() {
    let client = Client::new(server());
    assert_eq!(client.get("/").status(), 200);
    let form = [("name", "Eve"), ("message", "forged")];
    let wrong = client.request("POST", "/").form(&form).csrf_token("wrong").send();
    assert_eq!(wrong.status(), 403, "{wrong:?}");
    assert!(wrong.text().contains("did not come from this site"), "{wrong:?}");
    let none = client.request("POST", "/").form(&form).without_csrf().send();
    assert_eq!(none.status(), 403, "{none:?}");
    let foreign =
        client.request("POST", "/").form(&form).header("origin", "http://evil.example").send();
    assert_eq!(foreign.status(), 403, "another site's Origin: {foreign:?}");
    // A valid token, but for another browser's CSRF cookie.
    let other = Client::new(server());
    let token = other.get("/").form_fields("#sign").into_iter().find(|(k, _)| k == "csrf_token");
    let token = token.expect("the form has a token").1;
    let stolen = client.request("POST", "/").form(&form).csrf_token(&token).send();
    assert_eq!(stolen.status(), 403, "{stolen:?}");
    assert!(entries(&client).is_empty(), "a refused request wrote: {:?}", entries(&client));
    // The same request with the client's own token goes through.
    assert_eq!(client.post("/", &form).status(), 303);
}

#[test]
fn the_form_of_a_page_posts_back_as_it_is() {
    let client = Client::new(server());
    let page = client.get("/");
    let mut fields = page.form_fields("#sign");
    assert_eq!(
        fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| *k != "csrf_token")
            .collect::<Vec<_>>(),
        [
            ("name", "Ann"),
            ("message", "Hello there"),
            ("mood", "Happy"),
            ("subscribe", "on"),
            ("color", "blue"),
            ("source", "book"),
        ],
        "checked boxes only, no disabled field, no file, no button"
    );
    assert!(
        fields.iter().any(|(k, v)| k == "csrf_token" && !v.is_empty()),
        "the hidden token is a field: {fields:?}"
    );
    let name = fields.iter_mut().find(|(k, _)| k == "name").expect("a name field");
    name.1 = "Bob".to_string();
    // The form's own token is sent, not a second one.
    let page = client.post("/", &fields);
    assert_eq!(page.status(), 303, "{page:?}");
    assert_eq!(entries(&client), [("Bob".to_string(), "Hello there".to_string())]);
}

#[test]
fn select_reads_text_and_messages_show_once() {
    let client = Client::new(server());
    client.post("/", &[("name", "Ann"), ("message", "First  entry")]);
    let page = client.post("/", &[("name", "Bob"), ("message", "Second")]).follow();
    assert_eq!(page.status(), 200);
    assert_eq!(page.path(), "/");
    assert_eq!(page.select_one("h1"), "Guest book");
    assert_eq!(page.select("li.entry"), ["Ann: First entry", "Bob: Second"]);
    assert_eq!(page.attr("a.more", "href"), ["/?page=2"]);
    assert_eq!(page.messages(), ["Thanks, Ann.", "Thanks, Bob."]);
    assert!(page.header("content-type").is_some_and(|ct| ct.starts_with("text/html")));
    assert!(client.get("/").messages().is_empty(), "flash messages show once");
    assert!(page.select("li.missing").is_empty());
}

#[test]
#[should_panic(expected = "no element matches the selector \"h2.missing\" in the response to /")]
fn select_one_names_the_selector_it_did_not_find() {
    let client = Client::new(server());
    client.get("/").select_one("h2.missing");
}

#[test]
#[should_panic(expected = "not a redirect")]
fn follow_needs_a_redirect() {
    let client = Client::new(server());
    client.get("/").follow();
}

#[test]
fn cookies_are_kept_and_removed() {
    let client = Client::new(server());
    assert_eq!(client.cookie("_session"), None);
    let page = client.post("/login", &[("who", "ann")]);
    assert_eq!(page.status(), 303, "{page:?}");
    let session = client.cookie("_session").expect("a session cookie after login");
    assert_eq!(client.get("/whoami").text(), "ann");
    // Cleared: the server answers Max-Age=0, and the cookie leaves the jar.
    assert_eq!(client.post("/logout", &[("x", "y")]).status(), 303);
    assert_eq!(client.cookie("_session"), None, "was {session}");
    assert_eq!(client.get("/whoami").text(), "");
    client.set_cookie("_session", &session);
    assert_eq!(client.get("/whoami").text(), "ann", "a cookie put back is sent");
    client.clear_cookies();
    assert_eq!(client.get("/whoami").text(), "");
}

#[test]
fn a_login_rotates_the_csrf_secret_and_the_stale_token_is_not_used() {
    let client = Client::new(server());
    // The page's token is remembered …
    assert_eq!(client.get("/").status(), 200);
    let before = client.cookie("_csrf").expect("the page set the CSRF cookie");
    // … and the login answers a new CSRF cookie without a page: that token is stale now.
    assert_eq!(client.post("/login", &[("who", "ann")]).status(), 303);
    assert_ne!(client.cookie("_csrf").as_deref(), Some(before.as_str()), "rotated");
    let page = client.post("/", &[("name", "Ann"), ("message", "after login")]);
    assert_eq!(page.status(), 303, "{page:?}");
}

#[test]
fn redirects_are_followed_on_request() {
    let client = Client::new(server());
    let page = client.get("/hop/3");
    assert_eq!((page.status(), page.location()), (303, Some("/hop/2")));
    assert_eq!(page.follow().location(), Some("/hop/1"));
    client.follow_redirects(true);
    // Through a relative Location and an absolute one of this site.
    let page = client.get("/hop/3");
    assert_eq!((page.status(), page.path()), (200, "/"));
    let page = client.post("/", &[("name", "Ann"), ("message", "Hi")]);
    assert_eq!((page.status(), page.path()), (200, "/"), "the 303 became a GET");
    assert_eq!(page.messages(), ["Thanks, Ann."]);
    // A 307 repeats the POST with its body (and the token already in it).
    let page = client.post("/old", &[("name", "Ann"), ("message", "x")]);
    assert_eq!((page.status(), page.text()), (200, "new: Ann"));
    let page = client.request("GET", "/hop/1").follow_redirects(false).send();
    assert_eq!(page.status(), 302);
}

#[test]
fn an_https_site_gets_its_host_cookies_and_origin() {
    // Under https the cookies are `__Host-` prefixed and an Origin is required: the client
    // sends the base URL's.
    let client = Client::with_args(server(), &["--base-url", "https://book.example"]);
    let page = client.post("/", &[("name", "Ann"), ("message", "Hi")]);
    assert_eq!(page.status(), 303, "{page:?}");
    assert!(client.cookie("__Host-_csrf").is_some() && client.cookie("_csrf").is_none());
    assert_eq!(page.follow().messages(), ["Thanks, Ann."]);
    let page = client.follow_redirects(true).post("/login", &[("who", "ann")]);
    assert_eq!((page.status(), page.text()), (200, "ann"));
    assert!(page.header("strict-transport-security").is_some(), "{page:?}");
    let page = client.post("/", &[("name", "Ann"), ("message", "again")]);
    assert_eq!(page.messages(), ["Thanks, Ann."], "after the login's rotation: {page:?}");
}

#[test]
#[should_panic(expected = "a redirect loop?")]
fn a_redirect_loop_is_reported() {
    let client = Client::new(server());
    client.follow_redirects(true).get("/loop");
}

#[test]
fn other_methods_send_the_token_in_the_header() {
    let client = Client::new(server());
    let page = client.request("PUT", "/api/thing").json(&serde_json::json!({"a": 1})).send();
    assert_eq!(page.status(), 200, "{page:?}");
    assert_eq!(page.json(), serde_json::json!({"a": 1}));
    let refused =
        client.request("PUT", "/api/thing").json(&serde_json::json!({})).without_csrf().send();
    assert_eq!(refused.status(), 403);
    // htmx gets the page's content block only.
    let page = client.request("GET", "/").htmx().send();
    assert_eq!(page.status(), 200);
    assert!(!page.text().contains("<html"), "{page:?}");
    assert_eq!(page.select_one("h1"), "Guest book");
}

#[test]
#[should_panic(expected = "the server did not start: invalid value 'abc' for --max-body-size")]
fn a_server_that_does_not_start_is_a_panic_with_its_message() {
    Client::with_args(server(), &["--max-body-size", "abc"]);
}

#[test]
fn the_database_is_a_fresh_file_deleted_with_the_client() {
    let client = Client::with_args(server(), &["--log-level", "warn"]);
    let n: (i64,) = client
        .block_on(client.db().write(|c| {
            c.execute("INSERT INTO entries (name, message) VALUES ('Seed', 'row')", &[])?;
            c.query_one("SELECT count(*) FROM entries", &[])
        }))
        .unwrap();
    assert_eq!(n, (1,));
    assert_eq!(client.get("/").select("li.entry"), ["Seed: row"]);
    let dir = client.dir().to_path_buf();
    assert!(dir.join("app.db").exists());
    drop(client);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[tokio::test]
async fn it_works_inside_a_tokio_test() {
    let client = Client::new(server());
    assert_eq!(client.post("/", &[("name", "Ann"), ("message", "Hi")]).status(), 303);
    assert_eq!(client.get("/").select("li.entry"), ["Ann: Hi"]);
    // Dropped here, inside the runtime of the test.
}
