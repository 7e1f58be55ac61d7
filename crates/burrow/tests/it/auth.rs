//! The auth app through the whole stack, on both engines: accounts and roles, sign-in
//! links, the guards' answers to anonymous, htmx and JSON clients, and sessions that end
//! everywhere on logout and role changes.

use burrow::Stack;
use burrow::axum::Router;
use burrow::axum::body::Body;
use burrow::axum::handler::Handler;
use burrow::axum::http::{Request, StatusCode, header};
use burrow::axum::routing::get;
use burrow::contrib::auth::users::{self, NewUser, Role, UserError};
use burrow::contrib::auth::{
    Auth, CurrentUser, RequireAdmin, RequireAuth, RequireStaff, create_invite, login_link,
    mail_invite,
};
use burrow::db::params;
use burrow::minijinja::context;
use burrow::{App, AppContext, Booted, Html, NavItem, Rate, RateLimit, Render, Server};

use burrow_test::smtp::{Security, SmtpSink};

use crate::db::PgDatabase;
use crate::{Reply, Site, send};

const HASH: &str = "5e5510a0c0ffee00112233445566778899aabbccddeeff00deadbeefcafe0b01";
const CSRF: &str = "c5bf00d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7c5bf0b02";

static TEMPLATES: burrow::Dir<'static> =
    burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_auth");

struct Probe;

impl App for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["auth"]
    }

    fn templates(&self) -> Option<&'static burrow::Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![
            NavItem::new("Public", "/page"),
            NavItem::new("Members", "/private").order(1).signed_in(),
            NavItem::new("Staff area", "/staff").order(2).staff(),
        ]
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new()
            .route("/private", get(|RequireAuth(u): RequireAuth| async move { u.username.clone() }))
            .route("/staff", get(|RequireStaff(u): RequireStaff| async move { u.username.clone() }))
            .route("/admin", get(|RequireAdmin(u): RequireAdmin| async move { u.username.clone() }))
            .route(
                "/whoami",
                get(|CurrentUser(u): CurrentUser| async move {
                    u.map_or("anonymous".to_string(), |u| u.username.clone())
                }),
            )
            .route(
                "/limited",
                get((|CurrentUser(u): CurrentUser| async move {
                    u.map_or("anonymous".to_string(), |u| u.username.clone())
                })
                .layer(RateLimit::per_user(Rate::per_hour(2)))),
            )
            .route(
                "/page",
                get(|render: Render| async move {
                    render.page("probe.html", context! {}).map(|Html(body)| body)
                }),
            )
    }
}

fn server() -> Server {
    Server::new("s", "1").defaults("Site").app(Auth::new()).app(Probe)
}

/// A server on SQLite or on a fresh PostgreSQL database.
struct Env {
    booted: Booted,
    _site: Site,
    _pg: Option<PgDatabase>,
}

fn boot(postgres: bool) -> Env {
    boot_with(postgres, &[])
}

fn boot_with(postgres: bool, extra: &[&str]) -> Env {
    let site = Site::new();
    let pg = postgres.then(PgDatabase::create);
    let dsn = match &pg {
        Some(pg) => pg.url.clone(),
        None => site.db().display().to_string(),
    };
    let mut args = vec!["server", "--database-dsn", &dsn, "--session-hash-key", HASH];
    args.extend(["--csrf-key", CSRF]);
    args.extend_from_slice(extra);
    // Building connects with PostgreSQL's blocking client, which must not run on a
    // runtime thread.
    let booted = tokio::task::block_in_place(|| server().build(args)).expect("server builds");
    Env { booted, _site: site, _pg: pg }
}

/// One browser: its cookies, its language, and requests that carry them (and the CSRF
/// header).
#[derive(Clone, Default)]
struct Browser {
    cookies: Vec<(String, String)>,
    /// Its `Accept-Language`, if it sends one.
    language: Option<&'static str>,
}

impl Browser {
    fn speaking(language: &'static str) -> Browser {
        Browser { language: Some(language), ..Browser::default() }
    }

    async fn request(&mut self, stack: &Stack, mut req: Request<Body>) -> Reply {
        if let Some(language) = self.language {
            let value = header::HeaderValue::from_static(language);
            req.headers_mut().insert(header::ACCEPT_LANGUAGE, value);
        }
        let reply = send(stack, req).await;
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        reply
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn get(&mut self, stack: &Stack, path: &str) -> Reply {
        let req = Request::get(path).header(header::COOKIE, self.cookie_header());
        self.request(stack, req.body(Body::empty()).unwrap()).await
    }

    /// A form POST with the CSRF token of a page that rendered one.
    async fn post(&mut self, stack: &Stack, path: &str, form: &str) -> Reply {
        let page = self.get(stack, "/page").await;
        let token = between(&page.body, "name=\"csrf_token\" value=\"", "\"");
        let body = if form.is_empty() {
            format!("csrf_token={token}")
        } else {
            format!("{form}&csrf_token={token}")
        };
        let req = Request::post(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.request(stack, req.body(Body::from(body)).unwrap()).await
    }

    /// Follows a sign-in link the way a person does: open it, press the button.
    async fn sign_in(&mut self, env: &Env, username: &str) {
        let stack = &env.booted.stack;
        let link = login_link(&env.booted.ctx, username).await.expect("link issued");
        let path = link.url.split_once("://").unwrap().1;
        let path = &path[path.find('/').unwrap()..];
        let page = self.get(stack, path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let heading = between(&page.body, "<h1>", "</h1>");
        assert!(heading.contains(&format!(" {username}")), "{}", page.body);
        let token = path.split_once("token=").unwrap().1;
        let done = self.post(stack, "/auth/link", &format!("token={token}")).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        // On to adding a passkey: links are for accounts without one.
        assert_eq!(done.headers[header::LOCATION], "/auth/credentials/");
        assert_eq!(self.get(stack, "/whoami").await.body, username);
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?} in {text}")) + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

async fn create(env: &Env, username: &str, role: Option<Role>) -> Result<users::User, UserError> {
    let new = NewUser { username: username.into(), role, ..NewUser::default() };
    env.booted.ctx.db.write(move |c| Ok(users::create(c, &new))).await.unwrap()
}

async fn guards_send_anonymous_visitors_to_sign_in(postgres: bool) {
    let env = boot(postgres);
    let stack = &env.booted.stack;
    let mut anonymous = Browser::default();
    let reply = anonymous.get(stack, "/private?tab=2").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.headers[header::LOCATION], "/auth/login?next=%2Fprivate%3Ftab%3D2");
    // htmx navigates instead of swapping the login page into a fragment.
    let req = Request::get("/staff").header("hx-request", "true").body(Body::empty()).unwrap();
    let reply = send(stack, req).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.headers["hx-redirect"], "/auth/login?next=%2Fstaff");
    // JSON clients get a 401 they can read.
    let req = Request::get("/admin").header(header::ACCEPT, "application/json");
    let reply = send(stack, req.body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("\"error\""), "{}", reply.body);
    assert_eq!(anonymous.get(stack, "/whoami").await.body, "anonymous");
    let page = anonymous.get(stack, "/page").await;
    assert!(
        page.body.contains("authenticated: false") && page.body.contains("Sign in"),
        "{}",
        page.body
    );
    // The login page keeps a safe `next` only.
    let login = anonymous.get(stack, "/auth/login?next=//evil.example").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(!login.body.contains("evil.example"), "{}", login.body);
    assert!(login.body.contains("data-passkey-login"), "passkeys are on: {}", login.body);
    assert!(!login.body.contains("Passkeys are off"), "{}", login.body);
    let register = anonymous.get(stack, "/auth/register").await;
    assert!(register.body.contains("data-passkey-register"), "{}", register.body);
}

async fn roles_links_and_sessions_that_end_everywhere(postgres: bool) {
    let env = boot(postgres);
    let stack = &env.booted.stack;
    let db = &env.booted.ctx.db;

    // The first account is an admin whatever was asked; later ones get what was asked.
    let alice = create(&env, "Alice", Some(Role::User)).await.unwrap();
    assert_eq!((alice.username.as_str(), alice.role), ("alice", Role::Admin));
    let bob = create(&env, "bob", None).await.unwrap();
    assert_eq!(bob.role, Role::User);
    assert!(matches!(create(&env, "ALICE", None).await, Err(UserError::Taken("username"))));
    assert!(matches!(create(&env, "a b", None).await, Err(UserError::Invalid(_))));

    let mut alice_browser = Browser::default();
    alice_browser.sign_in(&env, "alice").await;
    assert_eq!(alice_browser.get(stack, "/admin").await.body, "alice");
    let page = alice_browser.get(stack, "/page").await;
    assert!(page.body.contains("authenticated: true") && page.body.contains("user: alice"));
    assert!(page.body.contains("Sign out"), "{}", page.body);

    // A used link is spent; an expired one never worked.
    let link = login_link(&env.booted.ctx, "bob").await.unwrap();
    let token = link.url.split_once("token=").unwrap().1.to_string();
    let mut mallory = Browser::default();
    let used = mallory.post(stack, "/auth/link", &format!("token={token}")).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER);
    let again = Browser::default().post(stack, "/auth/link", &format!("token={token}")).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    let stale = login_link(&env.booted.ctx, "bob").await.unwrap();
    db.write(|c| c.execute("UPDATE auth_tokens SET expires_at = '2000-01-01T00:00:00Z'", &[]))
        .await
        .unwrap();
    let path = &stale.url[stale.url.find("/auth/").unwrap()..];
    assert_eq!(Browser::default().get(stack, path).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(Browser::default().get(stack, "/auth/link?token=nope").await.status, 400);

    // bob is no staff member: the 403 page, not the login page.
    let mut bob_browser = Browser::default();
    bob_browser.sign_in(&env, "bob").await;
    // Navigation shows what each may see.
    let nav = |body: &str| -> Vec<String> {
        let nav = between(body, "<nav class=\"site-nav\"", "</nav>");
        let links = nav.split("</a>").filter(|l| l.contains("<a "));
        links.map(|l| l[l.rfind('>').unwrap() + 1..].trim().to_string()).collect()
    };
    assert_eq!(nav(&Browser::default().get(stack, "/page").await.body), ["Public"]);
    assert_eq!(nav(&bob_browser.get(stack, "/page").await.body), ["Public", "Members"]);
    let alice_nav = nav(&alice_browser.get(stack, "/page").await.body);
    assert_eq!(alice_nav, ["Public", "Members", "Staff area"]);
    let forbidden = bob_browser.get(stack, "/staff").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    // Error pages know who is signed in too (rendered outside the app middleware).
    assert!(
        forbidden.body.contains("Sign out") && forbidden.body.contains(">bob<"),
        "{}",
        forbidden.body
    );
    let missing = bob_browser.get(stack, "/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("Sign out") && missing.body.contains(">Members<"),
        "{}",
        missing.body
    );
    let anonymous_missing = Browser::default().get(stack, "/no/such/page").await;
    assert!(anonymous_missing.body.contains(">Sign in<"), "{}", anonymous_missing.body);
    // Promoted, his sessions end (they carried the old role); signed in again, he is staff.
    db.write(|c| Ok(users::set_role(c, "bob", Role::Staff))).await.unwrap().unwrap();
    assert_eq!(bob_browser.get(stack, "/whoami").await.body, "anonymous");
    assert_eq!(mallory.get(stack, "/whoami").await.body, "anonymous");
    bob_browser.sign_in(&env, "bob").await;
    assert_eq!(bob_browser.get(stack, "/staff").await.body, "bob");
    assert_eq!(bob_browser.get(stack, "/admin").await.status, StatusCode::FORBIDDEN);

    // The last admin stays one.
    let demoted = db.write(|c| Ok(users::set_role(c, "alice", Role::User))).await.unwrap();
    assert!(matches!(demoted, Err(UserError::LastAdmin)));

    // Logout ends every session of the user: a copy of the cookie is anonymous after it.
    let copied = alice_browser.clone();
    let out = alice_browser.post(stack, "/auth/logout", "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.headers[header::LOCATION], "/auth/login");
    assert_eq!(alice_browser.get(stack, "/whoami").await.body, "anonymous");
    let mut replay = copied;
    assert_eq!(replay.get(stack, "/private").await.status, StatusCode::SEE_OTHER);

    // The audit log has it all, and no token.
    let sql = "SELECT event, username, detail FROM auth_events ORDER BY id";
    let events: Vec<(String, String, String)> = db.read(move |c| c.query(sql, &[])).await.unwrap();
    let names: Vec<&str> = events.iter().map(|(e, _, _)| e.as_str()).collect();
    for expected in ["user_created", "login_link_issued", "signed_in", "role_changed", "signed_out"]
    {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(events.iter().all(|(_, _, detail)| !detail.contains(&token)));
    let count = "SELECT count(*) FROM auth_events WHERE event = ? AND username = ?";
    let (n,): (i64,) =
        db.read(move |c| c.query_one(count, params!["signed_in", "bob"])).await.unwrap();
    assert_eq!(n, 3, "bob signed in with three links (one by mallory)");
}

mod guards {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        guards_send_anonymous_visitors_to_sign_in(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        guards_send_anonymous_visitors_to_sign_in(true).await;
    }
}

mod accounts {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        roles_links_and_sessions_that_end_everywhere(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        roles_links_and_sessions_that_end_everywhere(true).await;
    }
}

/// A JSON POST with the CSRF token of a page, as passkeys.js sends it.
async fn post_json(browser: &mut Browser, stack: &Stack, path: &str, body: &str) -> Reply {
    let page = browser.get(stack, "/page").await;
    let token = between(&page.body, "name=\"csrf_token\" value=\"", "\"").to_string();
    let req = Request::post(path)
        .header(header::COOKIE, browser.cookie_header())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header("x-csrf-token", token);
    browser.request(stack, req.body(Body::from(body.to_string())).unwrap()).await
}

async fn passkey_ceremonies_refuse_what_they_did_not_begin(postgres: bool) {
    let env = boot(postgres);
    let stack = &env.booted.stack;
    let mut browser = Browser::default();

    // Registration options: a discoverable key with user verification, for this site.
    let begin =
        post_json(&mut browser, stack, "/auth/register/begin", r#"{"username":"Zoe"}"#).await;
    assert_eq!(begin.status, StatusCode::OK, "{}", begin.body);
    let options: serde_json::Value = serde_json::from_str(&begin.body).unwrap();
    let pk = &options["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost", "{options}");
    assert_eq!(pk["user"]["name"], "zoe");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert!(pk["challenge"].as_str().is_some_and(|c| c.len() >= 43), "{options}");
    // The ceremony is in the database (a restart keeps it), under a hash only.
    let db = &env.booted.ctx.db;
    let rows: Vec<(String, String)> =
        db.read(|c| c.query("SELECT id, kind FROM auth_ceremonies", &[])).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.len(), rows[0].1.as_str()), (64, "register"));

    // A forged answer is refused, and the ceremony is spent either way.
    let forged = r#"{"id":"AAAA","rawId":"AAAA","type":"public-key",
        "response":{"attestationObject":"AAAA","clientDataJSON":"AAAA"},"extensions":{}}"#;
    let finish = post_json(&mut browser, stack, "/auth/register/finish", forged).await;
    assert_eq!(finish.status, StatusCode::BAD_REQUEST, "{}", finish.body);
    assert!(finish.body.contains("\"error\""), "{}", finish.body);
    let again = post_json(&mut browser, stack, "/auth/register/finish", forged).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("expired or was already used"), "{}", again.body);
    assert_eq!(create(&env, "someone", None).await.unwrap().role, Role::Admin, "no user yet");

    // A taken username is refused before any ceremony; a sign-in never begun is refused.
    let taken =
        post_json(&mut browser, stack, "/auth/register/begin", r#"{"username":"SOMEONE"}"#).await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST);
    assert!(taken.body.contains("already taken"), "{}", taken.body);
    let assertion = r#"{"credential":{"id":"AAAA","rawId":"AAAA","type":"public-key",
        "response":{"authenticatorData":"AAAA","clientDataJSON":"AAAA","signature":"AAAA",
        "userHandle":null},"extensions":{}}}"#;
    let stranger = post_json(&mut Browser::default(), stack, "/auth/login/finish", assertion).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST, "{}", stranger.body);
    // Sign-in options ask for user verification and name no credential (usernameless).
    let begin = post_json(&mut browser, stack, "/auth/login/begin", "{}").await;
    let options: serde_json::Value = serde_json::from_str(&begin.body).unwrap();
    assert_eq!(options["publicKey"]["userVerification"], "required", "{options}");
    assert!(options["publicKey"]["allowCredentials"].as_array().is_none_or(|a| a.is_empty()));
    let unknown = post_json(&mut browser, stack, "/auth/login/finish", assertion).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert_eq!(browser.get(stack, "/whoami").await.body, "anonymous");
    // Without the CSRF token, nothing begins.
    let req = Request::post("/auth/login/begin").header(header::ACCEPT, "application/json");
    let refused = send(stack, req.body(Body::from("{}")).unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[test]
fn passkeys_need_a_domain_name_a_start_up_error_names_the_setting() {
    let site = Site::new();
    let dsn = site.db().display().to_string();
    let build = |extra: &[&str]| {
        let mut args = vec!["server", "--database-dsn", &dsn];
        args.extend_from_slice(extra);
        server().build(args).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let ip = build(&["--auth-webauthn-rp-origin", "http://127.0.0.1:8080"]);
    assert!(ip.contains("--auth-webauthn-rp-origin") && ip.contains("domain name"), "{ip}");
    let foreign = build(&["--auth-webauthn-rp-id", "example.com"]);
    assert!(
        foreign.contains("--auth-webauthn-rp-id") && foreign.contains("example.com"),
        "{foreign}"
    );
    let redirect = build(&["--auth-login-redirect", "https://evil.example/"]);
    assert!(redirect.contains("--auth-login-redirect"), "{redirect}");
    assert!(!site.db().exists(), "nothing written before the error");
}

mod passkeys {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        passkey_ceremonies_refuse_what_they_did_not_begin(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        passkey_ceremonies_refuse_what_they_did_not_begin(true).await;
    }
}

/// A server on an IP address (no domain name in its base URL) runs; passkeys are off, and
/// say so, while sign-in links still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_ip_address_passkeys_are_off_and_say_why() {
    let site = Site::new();
    let dsn = site.db().display().to_string();
    let args = ["server", "--database-dsn", &dsn, "--base-url", "http://127.0.0.1:8080"];
    let booted = server().build(args).expect("a server on an IP address starts");
    let env = Env { booted, _site: site, _pg: None };
    let stack = &env.booted.stack;
    let mut browser = Browser::default();
    let begin = post_json(&mut browser, stack, "/auth/login/begin", "{}").await;
    assert_eq!(begin.status, StatusCode::SERVICE_UNAVAILABLE, "{}", begin.body);
    assert!(begin.body.contains("no domain name"), "{}", begin.body);
    let login = browser.get(stack, "/auth/login").await;
    assert!(login.body.contains("Passkeys are off on this server"), "{}", login.body);
    create(&env, "ops", None).await.unwrap();
    browser.sign_in(&env, "ops").await;
}

async fn recovery_codes_sign_in_once_each(postgres: bool) {
    let env = boot(postgres);
    let stack = &env.booted.stack;
    let db = &env.booted.ctx.db;
    create(&env, "carol", None).await.unwrap();
    let mut carol = Browser::default();
    carol.sign_in(&env, "carol").await;

    // Made on request, shown once, never cached.
    let regenerate = carol.post(stack, "/auth/recovery-codes/regenerate", "").await;
    assert_eq!(regenerate.status, StatusCode::SEE_OTHER);
    assert_eq!(regenerate.headers[header::LOCATION], "/auth/recovery-codes/");
    let shown = carol.get(stack, "/auth/recovery-codes/").await;
    assert_eq!(shown.headers[header::CACHE_CONTROL], "no-store");
    let codes = shown_codes(&shown.body);
    assert_eq!(codes.len(), 8, "{}", shown.body);
    let again = carol.get(stack, "/auth/recovery-codes/").await;
    assert!(!again.body.contains(&codes[0]), "codes are shown once");
    assert!(again.body.contains("You have 8 unused recovery codes of 8."), "{}", again.body);
    let stored: Vec<(String,)> =
        db.read(|c| c.query("SELECT code_hash FROM recovery_codes", &[])).await.unwrap();
    assert_eq!(stored.len(), 8);
    let plain = codes[0].replace('-', "");
    assert!(stored.iter().all(|(h,)| !h.contains(&plain)), "only hashes are stored");

    carol.post(stack, "/auth/logout", "").await;
    let mut stranger = Browser::default();
    for (username, code) in
        [("carol", "aaaa-bbbb-cccc"), ("nobody", codes[1].as_str()), ("carol", "")]
    {
        let form = format!("username={username}&code={code}");
        let wrong = stranger.post(stack, "/auth/recovery", &form).await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{username} {code}");
        assert!(wrong.body.contains("do not match an unused code"), "{}", wrong.body);
    }
    // Any case, without dashes.
    let typed = codes[1].to_uppercase().replace('-', "");
    let used =
        stranger.post(stack, "/auth/recovery", &format!("username=Carol&code={typed}")).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.body);
    assert_eq!(used.headers[header::LOCATION], "/auth/recovery-codes/");
    assert_eq!(stranger.get(stack, "/whoami").await.body, "carol");
    let page = stranger.get(stack, "/auth/recovery-codes/").await;
    assert!(page.body.contains("You have 7 unused recovery codes of 8."), "{}", page.body);
    stranger.post(stack, "/auth/logout", "").await;
    // Once only.
    let form = format!("username=carol&code={}", codes[1]);
    let reused = Browser::default().post(stack, "/auth/recovery", &form).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let sql = "SELECT detail FROM auth_events WHERE event = 'recovery_code_used'";
    let events: Vec<(String,)> = db.read(move |c| c.query(sql, &[])).await.unwrap();
    assert_eq!(events, [("7 left".to_string(),)]);
}

mod recovery {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        recovery_codes_sign_in_once_each(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        recovery_codes_sign_in_once_each(true).await;
    }
}

/// The auth app speaks the visitor's language: its pages (and `<html lang>`), the JSON
/// errors of the passkey steps, plurals, the guards' answers, flash messages. The user's
/// stored language (the one of their mails) follows an explicit choice only: a sign-in
/// with the switcher's cookie, or the switcher while signed in; `Accept-Language` alone
/// does not change it.
async fn pages_errors_and_the_stored_language_follow_the_visitor(postgres: bool) {
    let env = boot(postgres);
    let stack = &env.booted.stack;
    let db = &env.booted.ctx.db;
    let language_of = |name: &'static str| async move {
        let user = db.read(move |c| users::by_username(c, name)).await.unwrap().unwrap();
        user.language
    };
    let mut german = Browser::speaking("de-AT,de;q=0.9,en;q=0.5");
    let mut english = Browser::speaking("en-US,en;q=0.8");

    let login = german.get(stack, "/auth/login").await;
    assert!(login.body.contains(r#"<html lang="de""#), "{}", login.body);
    assert!(login.body.contains(">Mit einem Passkey anmelden</button>"), "{}", login.body);
    let cancelled =
        r#"data-cancelled="Die Passkey-Anfrage wurde abgebrochen oder ist abgelaufen.""#;
    assert!(login.body.contains(cancelled), "texts for passkeys.js: {}", login.body);
    let register = german.get(stack, "/auth/register").await;
    assert!(register.body.contains("<h1>Konto anlegen</h1>"), "{}", register.body);
    assert!(register.body.contains(">Benutzername</label>"), "{}", register.body);
    let login = english.get(stack, "/auth/login").await;
    assert!(login.body.contains(r#"<html lang="en""#), "{}", login.body);
    assert!(login.body.contains(">Sign in with a passkey</button>"), "{}", login.body);

    // The JSON errors of the passkey steps, as passkeys.js shows them.
    let error = |reply: &Reply| {
        let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        json["error"].as_str().unwrap_or_default().to_string()
    };
    let forged = r#"{"id":"AAAA","rawId":"AAAA","type":"public-key",
        "response":{"attestationObject":"AAAA","clientDataJSON":"AAAA"},"extensions":{}}"#;
    let finish = post_json(&mut german, stack, "/auth/register/finish", forged).await;
    assert_eq!(finish.status, StatusCode::BAD_REQUEST, "{}", finish.body);
    assert_eq!(
        error(&finish),
        "Diese Anmeldung oder Registrierung ist abgelaufen oder wurde schon benutzt. \
         Versuchen Sie es noch einmal."
    );
    let finish = post_json(&mut english, stack, "/auth/register/finish", forged).await;
    let expired = "This sign-in or registration expired or was already used. Try again.";
    assert_eq!(error(&finish), expired);
    let begin = r#"{"username":"a b"}"#;
    let bad = post_json(&mut german, stack, "/auth/register/begin", begin).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(error(&bad).starts_with("Ein Benutzername hat 1 bis 64 Zeichen"), "{}", bad.body);

    // A sign-in in a German browser: German pages, the stored language unchanged.
    create(&env, "root", None).await.unwrap();
    create(&env, "greta", None).await.unwrap();
    assert_eq!(language_of("greta").await, "", "the site's default");
    german.sign_in(&env, "greta").await;
    assert_eq!(language_of("greta").await, "", "Accept-Language alone changes nothing");
    let keys = german.get(stack, "/auth/credentials/").await;
    assert!(
        keys.body.contains("Angemeldet als greta. Fügen Sie einen Passkey hinzu"),
        "{}",
        keys.body
    );
    assert!(keys.body.contains("<h1>Ihre Passkeys</h1>"), "{}", keys.body);

    // Plurals: the codes left, in both languages (greta's session in an English browser
    // too, which leaves her stored language alone).
    german.post(stack, "/auth/recovery-codes/regenerate", "").await;
    let shown = german.get(stack, "/auth/recovery-codes/").await;
    assert!(shown.body.contains("<strong>Speichern Sie diese Codes jetzt</strong>"));
    let codes = shown_codes(&shown.body);
    assert_eq!(codes.len(), 8, "{}", shown.body);
    let greta_in_english = Browser { language: Some("en"), ..german.clone() };
    let left = |browser: &Browser| {
        let mut browser = browser.clone();
        async move {
            let page = browser.get(stack, "/auth/recovery-codes/").await;
            between(&page.body, r#"<p class="codes-left">"#, "</p>").to_string()
        }
    };
    let use_all_but = |n: i64| async move {
        let sql = "UPDATE recovery_codes SET used_at = '2026-01-01T00:00:00Z' WHERE id NOT IN \
                   (SELECT id FROM recovery_codes WHERE used_at IS NULL ORDER BY id LIMIT ?)";
        db.write(move |c| c.execute(sql, params![n])).await.unwrap();
    };
    use_all_but(2).await;
    assert_eq!(left(&german).await, "Sie haben noch 2 unbenutzte Wiederherstellungscodes von 8.");
    assert_eq!(left(&greta_in_english).await, "You have 2 unused recovery codes of 8.");
    assert_eq!(language_of("greta").await, "");
    // The first code of the two left signs in a browser that chose German with the
    // switcher (its cookie) over its English Accept-Language: one left, and German is
    // greta's language now.
    german.post(stack, "/auth/logout", "").await;
    let mut stranger = Browser::speaking("en");
    stranger.cookies.push(("lang".into(), "de".into()));
    let form = format!("username=greta&code={}", codes[0]);
    let used = stranger.post(stack, "/auth/recovery", &form).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.body);
    assert_eq!(language_of("greta").await, "de", "a sign-in with a choice stores it");
    let page = stranger.get(stack, "/auth/recovery-codes/").await;
    let flash = "Mit einem Wiederherstellungscode angemeldet. Noch 1 unbenutzter Code:";
    assert!(page.body.contains(flash), "{}", page.body);
    assert_eq!(left(&stranger).await, "Sie haben noch 1 unbenutzten Wiederherstellungscode von 8.");

    // The guards' answers.
    let staff = stranger.get(stack, "/staff").await;
    assert_eq!(staff.status, StatusCode::FORBIDDEN);
    assert!(staff.body.contains("Diese Seite ist nur für Mitarbeiter."), "{}", staff.body);
    let req = Request::get("/private")
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT_LANGUAGE, "de");
    let anonymous = send(stack, req.body(Body::empty()).unwrap()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error(&anonymous), "Melden Sie sich zuerst an.");

    // The switcher: a signed-in user's choice is their language from the next request on.
    let switched = stranger.post(stack, "/i18n/language", "lang=en&next=/auth/login").await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{}", switched.body);
    assert_eq!(left(&stranger).await, "You have 1 unused recovery code of 8.");
    assert_eq!(language_of("greta").await, "en");
    let mut greta_in_german = Browser { language: Some("de"), ..stranger.clone() };
    let login = greta_in_german.get(stack, "/auth/login").await;
    assert!(login.body.contains(r#"<html lang="en""#), "the cookie wins: {}", login.body);
}

mod languages {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        pages_errors_and_the_stored_language_follow_the_visitor(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        pages_errors_and_the_stored_language_follow_the_visitor(true).await;
    }
}

/// A passkey row as registration writes it, without a browser (the list and the delete
/// rules do not look inside it).
async fn fake_passkey(env: &Env, username: &str, name: &str) -> i64 {
    let (username, name) = (username.to_string(), name.to_string());
    env.booted
        .ctx
        .db
        .write(move |c| {
            let user = users::by_username(c, &username)?.unwrap();
            let credential_id = format!("{name}-{}", user.id);
            c.execute(
                "INSERT INTO credentials (user_id, credential_id, passkey, name) VALUES (?, ?, '{}', ?)",
                params![user.id, credential_id, name],
            )?;
            c.last_insert_id()
        })
        .await
        .unwrap()
}

async fn passkeys_are_listed_renamed_and_deleted_but_never_the_last(postgres: bool) {
    let env = boot(postgres);
    let stack = &env.booted.stack;
    create(&env, "dave", None).await.unwrap();
    create(&env, "erin", None).await.unwrap();
    let first = fake_passkey(&env, "dave", "Laptop").await;
    let second = fake_passkey(&env, "dave", "Phone").await;
    let erins = fake_passkey(&env, "erin", "Erin's key").await;
    let mut dave = Browser::default();
    dave.sign_in(&env, "dave").await;
    let mut other_device = Browser::default();
    other_device.sign_in(&env, "dave").await;

    let page = dave.get(stack, "/auth/credentials/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Laptop") && page.body.contains("Phone"), "{}", page.body);
    assert!(!page.body.contains("Erin"), "only one's own passkeys: {}", page.body);
    assert!(page.body.contains("data-passkey-add"), "{}", page.body);

    let renamed =
        dave.post(stack, &format!("/auth/credentials/{first}/rename"), "name=Work+laptop").await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert!(dave.get(stack, "/auth/credentials/").await.body.contains("Work laptop"));
    // Someone else's passkey is not there for dave: 404, untouched.
    let foreign = dave.post(stack, &format!("/auth/credentials/{erins}/rename"), "name=Mine").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let foreign = dave.post(stack, &format!("/auth/credentials/{erins}/delete"), "").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    // Deleting one ends dave's other sessions, not this one.
    let deleted = dave.post(stack, &format!("/auth/credentials/{second}/delete"), "").await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let page = dave.get(stack, "/auth/credentials/").await;
    assert!(page.body.contains("Passkey deleted."), "{}", page.body);
    assert!(!page.body.contains("Phone"), "{}", page.body);
    assert_eq!(dave.get(stack, "/whoami").await.body, "dave");
    assert_eq!(other_device.get(stack, "/whoami").await.body, "anonymous");
    // The last one stays.
    let last = dave.post(stack, &format!("/auth/credentials/{first}/delete"), "").await;
    assert_eq!(last.status, StatusCode::SEE_OTHER);
    let page = dave.get(stack, "/auth/credentials/").await;
    assert!(page.body.contains("cannot be deleted"), "{}", page.body);
    assert!(page.body.contains("Work laptop"), "{}", page.body);
    // Anonymous: to the login page.
    let anonymous = Browser::default().get(stack, "/auth/credentials/").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
}

mod credentials {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        passkeys_are_listed_renamed_and_deleted_but_never_the_last(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        passkeys_are_listed_renamed_and_deleted_but_never_the_last(true).await;
    }
}

/// Guessing is bounded: recovery codes per account, passkey ceremonies per client IP;
/// over the limit, 429 with Retry-After (JSON for JSON clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_over_the_limit_get_429_with_retry_after() {
    let env = boot(false);
    let stack = &env.booted.stack;
    create(&env, "frank", None).await.unwrap();
    let mut guesser = Browser::default();
    for attempt in 1..=5 {
        let wrong =
            guesser.post(stack, "/auth/recovery", "username=frank&code=aaaa-bbbb-cccc").await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "attempt {attempt}");
    }
    // The sixth guess for frank is refused unchecked, whatever the spelling of the name.
    let limited = guesser.post(stack, "/auth/recovery", "username=FRANK&code=aaaa-bbbb-cccc").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    let retry: u64 = limited.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=181).contains(&retry), "a code comes back every 3 minutes: {retry}");
    assert!(limited.body.contains("Too many requests"), "{}", limited.body);
    // Another account is not limited by frank's.
    let other = guesser.post(stack, "/auth/recovery", "username=gina&code=aaaa-bbbb-cccc").await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut client = Browser::default();
    for _ in 0..30 {
        let begin = post_json(&mut client, stack, "/auth/login/begin", "{}").await;
        assert_eq!(begin.status, StatusCode::OK, "{}", begin.body);
    }
    let limited = post_json(&mut client, stack, "/auth/login/begin", "{}").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    let json: serde_json::Value = serde_json::from_str(&limited.body).unwrap();
    assert!(json["error"].as_str().unwrap().contains("Too many requests"), "{json}");
    let german = post_json(&mut Browser::speaking("de"), stack, "/auth/login/begin", "{}").await;
    assert_eq!(german.status, StatusCode::TOO_MANY_REQUESTS);
    let json: serde_json::Value = serde_json::from_str(&german.body).unwrap();
    let error = json["error"].as_str().unwrap();
    assert!(error.starts_with("Zu viele Anfragen. Versuchen Sie es in "), "{json}");
    // Pages that verify nothing are not limited.
    assert_eq!(client.get(stack, "/auth/login").await.status, StatusCode::OK);
}

/// `RateLimit::per_user` counts each signed-in user on their own, whatever their address
/// (here none: in-process requests share one), and anonymous visitors by address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limits_count_each_user() {
    let env = boot(false);
    let stack = &env.booted.stack;
    let mut anonymous = Browser::default();
    for _ in 0..2 {
        assert_eq!(anonymous.get(stack, "/limited").await.body, "anonymous");
    }
    let limited = anonymous.get(stack, "/limited").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=1800).contains(&retry), "one request every 30 minutes: {retry}");
    for name in ["alice", "bob"] {
        create(&env, name, None).await.unwrap();
        let mut user = Browser::default();
        user.sign_in(&env, name).await;
        for _ in 0..2 {
            let reply = user.get(stack, "/limited").await;
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, name));
        }
        assert_eq!(user.get(stack, "/limited").await.status, StatusCode::TOO_MANY_REQUESTS);
    }
}

async fn invite_only_registration_needs_a_valid_invite(postgres: bool) {
    let env = boot_with(postgres, &["--auth-invite-only"]);
    let stack = &env.booted.stack;
    let mut visitor = Browser::default();
    // The very first user needs none.
    let page = visitor.get(stack, "/auth/register").await;
    assert!(page.body.contains("data-passkey-register"), "{}", page.body);
    let first = post_json(&mut visitor, stack, "/auth/register/begin", r#"{"username":"root"}"#);
    assert_eq!(first.await.status, StatusCode::OK);

    create(&env, "root", None).await.unwrap();
    let page = visitor.get(stack, "/auth/register").await;
    assert!(
        page.body.contains("by invitation only") && !page.body.contains("data-passkey-register")
    );
    let refused =
        post_json(&mut visitor, stack, "/auth/register/begin", r#"{"username":"x"}"#).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("by invitation only"), "{}", refused.body);

    let invite = create_invite(&env.booted.ctx, " New@Example.org ").await.unwrap();
    assert!(
        invite.url.starts_with("http://localhost:8080/auth/register?invite="),
        "{}",
        invite.url
    );
    let token = invite.url.split_once("invite=").unwrap().1.to_string();
    let page = visitor.get(stack, &format!("/auth/register?invite={token}")).await;
    assert!(page.body.contains("Invitation for new@example.org."), "{}", page.body);
    assert!(page.body.contains(&format!("value=\"{token}\"")), "{}", page.body);
    let body = format!(r#"{{"username":"newbie","invite":"{token}"}}"#);
    let invited = post_json(&mut visitor, stack, "/auth/register/begin", &body).await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.body);
    let bogus = format!(r#"{{"username":"newbie","invite":"{}"}}"#, "A".repeat(43));
    let bogus = post_json(&mut visitor, stack, "/auth/register/begin", &bogus).await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);
    assert!(bogus.body.contains("invalid, already used or expired"), "{}", bogus.body);
    let page = visitor.get(stack, &format!("/auth/register?invite={}", "A".repeat(43))).await;
    assert!(page.body.contains("no valid invitation"), "{}", page.body);
    assert!(create_invite(&env.booted.ctx, "not an email").await.is_err());
    // Only the hash is stored.
    let db = &env.booted.ctx.db;
    let rows: Vec<(String,)> =
        db.read(|c| c.query("SELECT token_hash FROM invites", &[])).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, token);
}

mod invites {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        invite_only_registration_needs_a_valid_invite(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        invite_only_registration_needs_a_valid_invite(true).await;
    }
}

/// A ceremony begun on one process finishes on the next (as across a SIGHUP hand-over,
/// or on another instance): it lives in the database, not in the process. The forged
/// answer proves it: the new process finds the ceremony and refuses the answer itself,
/// instead of calling the ceremony expired.
async fn a_ceremony_begun_before_a_restart_finishes_after_it(postgres: bool) {
    let old = boot(postgres);
    let mut browser = Browser::default();
    let begin =
        post_json(&mut browser, &old.booted.stack, "/auth/register/begin", r#"{"username":"hal"}"#)
            .await;
    assert_eq!(begin.status, StatusCode::OK);
    // The next process: same database, same keys, a new stack and memory.
    let dsn = match &old._pg {
        Some(pg) => pg.url.clone(),
        None => old._site.db().display().to_string(),
    };
    let args = ["server", "--database-dsn", &dsn, "--session-hash-key", HASH, "--csrf-key", CSRF];
    let new = tokio::task::block_in_place(|| server().build(args)).expect("the next process");
    old.booted.shutdown().await;
    let forged = r#"{"id":"AAAA","rawId":"AAAA","type":"public-key",
        "response":{"attestationObject":"AAAA","clientDataJSON":"AAAA"},"extensions":{}}"#;
    let finish = post_json(&mut browser, &new.stack, "/auth/register/finish", forged).await;
    assert_eq!(finish.status, StatusCode::BAD_REQUEST, "{}", finish.body);
    assert!(finish.body.contains("The passkey was not accepted"), "{}", finish.body);
    assert!(!finish.body.contains("expired"), "{}", finish.body);
}

mod restart {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        a_ceremony_begun_before_a_restart_finishes_after_it(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        a_ceremony_begun_before_a_restart_finishes_after_it(true).await;
    }
}

/// `--auth-use-email`: accounts are named by their email address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_use_email_the_username_is_an_email_address() {
    let env = boot_with(false, &["--auth-use-email"]);
    let stack = &env.booted.stack;
    let mut visitor = Browser::default();
    let page = visitor.get(stack, "/auth/register").await;
    assert!(page.body.contains(">Email</label>") && page.body.contains("type=\"email\""));
    let plain = post_json(&mut visitor, stack, "/auth/register/begin", r#"{"username":"ann"}"#);
    let plain = plain.await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    assert!(plain.body.contains("not an email address"), "{}", plain.body);
    let begin = post_json(
        &mut visitor,
        stack,
        "/auth/register/begin",
        r#"{"username":" Ann@Example.org"}"#,
    )
    .await;
    assert_eq!(begin.status, StatusCode::OK, "{}", begin.body);
    let options: serde_json::Value = serde_json::from_str(&begin.body).unwrap();
    assert_eq!(options["publicKey"]["user"]["name"], "ann@example.org");
    // An invitation is for its address only.
    let invite = create_invite(&env.booted.ctx, "zed@example.org").await.unwrap();
    let token = invite.url.split_once("invite=").unwrap().1;
    let page = visitor.get(stack, &format!("/auth/register?invite={token}")).await;
    assert!(page.body.contains("value=\"zed@example.org\""), "{}", page.body);
    let body = format!(r#"{{"username":"other@example.org","invite":"{token}"}}"#);
    let other = post_json(&mut visitor, stack, "/auth/register/begin", &body).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert!(other.body.contains("another email address"), "{}", other.body);
    let recovery = visitor.get(stack, "/auth/recovery").await;
    assert!(recovery.body.contains(">Email</label>"), "{}", recovery.body);
}

/// A path on the site from an absolute URL.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    &rest[rest.find('/').unwrap()..]
}

async fn unverified(env: &Env, username: &str, email: &str) -> users::User {
    let new = NewUser {
        username: username.into(),
        email: Some(email.into()),
        email_verified: false,
        ..NewUser::default()
    };
    env.booted.ctx.db.write(move |c| Ok(users::create(c, &new))).await.unwrap().unwrap()
}

/// `--auth-require-verification` with a real SMTP server: registration needs an address;
/// an unverified account's sign-in is refused (a recovery code is kept), a link is
/// mailed; the link from the received mail verifies, and signs in the browser that was
/// refused; resending answers the same for every address and is rate limited.
async fn email_verification_by_the_link_of_a_real_mail(postgres: bool) {
    let sink = SmtpSink::start(Security::Starttls { password: None });
    let mut extra = sink.server_args();
    extra.push("--auth-require-verification".into());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let env = boot_with(postgres, &extra);
    let stack = &env.booted.stack;
    let db = &env.booted.ctx.db;

    let mut visitor = Browser::default();
    let page = visitor.get(stack, "/auth/register").await;
    assert!(page.body.contains(r#"autocomplete="email" required"#), "{}", page.body);
    let body = r#"{"username":"dora"}"#;
    let refused = post_json(&mut visitor, stack, "/auth/register/begin", body).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("An email address is required"), "{}", refused.body);
    let body = r#"{"username":"dora","email":" Dora@Example.org"}"#;
    let begun = post_json(&mut visitor, stack, "/auth/register/begin", body).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);

    // Dora's account as registration leaves it: a passkey would be refused like the
    // recovery code below. Give her codes (an operator's link lets her in to make them).
    create(&env, "root", None).await.unwrap();
    unverified(&env, "dora", "dora@example.org").await;
    let mut dora = Browser::default();
    dora.sign_in(&env, "dora").await;
    dora.post(stack, "/auth/recovery-codes/regenerate", "").await;
    let shown = dora.get(stack, "/auth/recovery-codes/").await;
    let code = between(&shown.body, "<li><code>", "<").to_string();
    dora.post(stack, "/auth/logout", "").await;
    assert!(sink.received().is_empty());

    let mut browser = Browser::default();
    let form = format!("username=dora&code={code}");
    let refused = browser.post(stack, "/auth/recovery", &form).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.body);
    assert_eq!(refused.headers[header::LOCATION], "/auth/verify-pending");
    assert_eq!(browser.get(stack, "/whoami").await.body, "anonymous");
    let pending = browser.get(stack, "/auth/verify-pending").await;
    assert!(pending.body.contains("a link to dora@example.org:"), "{}", pending.body);
    let sql = "SELECT count(*) FROM recovery_codes WHERE used_at IS NULL";
    let (unused,): (i64,) = db.read(move |c| c.query_one(sql, &[])).await.unwrap();
    assert_eq!(unused, 8, "the code is kept for when the address is verified");

    let mail = sink.wait_for(1).remove(0);
    assert_eq!(mail.rcpt_tos, ["dora@example.org"]);
    // Dora registered without a language (the site's default, English).
    assert!(mail.data.contains("Subject: Verify your email address for Site"), "{}", mail.data);
    assert!(mail.text.starts_with("Hello dora,\n\nopen this link to verify"), "{}", mail.text);
    assert!(mail.html.contains(">Verify my email address</a>"), "{}", mail.html);
    assert!(mail.text.contains("for 24 hours."), "{}", mail.text);
    let link = mail.link("http://localhost:8080/auth/verify-email?token=").expect("a link");
    let token = link.split_once("token=").unwrap().1.to_string();
    assert_eq!(token.len(), 43, "{link}");
    let rows: Vec<(String,)> =
        db.read(|c| c.query("SELECT token_hash FROM email_verifications", &[])).await.unwrap();
    assert!(rows.len() == 1 && rows[0].0 != token, "only the hash is stored");

    // The refused browser follows the link: verified and signed in.
    let verified = browser.get(stack, path_of(&link)).await;
    assert_eq!(verified.status, StatusCode::SEE_OTHER, "{}", verified.body);
    assert_eq!(verified.headers[header::LOCATION], "/");
    assert_eq!(browser.get(stack, "/whoami").await.body, "dora");
    let user = db.read(|c| users::by_username(c, "dora")).await.unwrap().unwrap();
    assert!(user.email_verified);
    // Once only.
    let again = Browser::default().get(stack, path_of(&link)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("invalid, already used or expired"), "{}", again.body);
    let bogus = Browser::default().get(stack, "/auth/verify-email?token=%3Cx%3E").await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);

    // Resending: the same answer for any address; a mail only for one waiting.
    unverified(&env, "erin", "erin@example.org").await;
    let mut stranger = Browser::default();
    for address in ["nobody@example.org", "dora@example.org", "erin@example.org", "nonsense"] {
        let reply =
            stranger.post(stack, "/auth/resend-verification", &format!("email={address}")).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{address}");
        assert_eq!(reply.headers[header::LOCATION], "/auth/verify-pending");
        let page = stranger.get(stack, "/auth/verify-pending").await;
        assert!(page.body.contains("a new link is on its way"), "{address}: {}", page.body);
    }
    let mail = sink.wait_for(2).remove(1);
    assert_eq!(mail.rcpt_tos, ["erin@example.org"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(sink.received().len(), 2, "no mail for the other addresses");
    // Another browser follows Erin's link: verified, and asked to sign in.
    let link = mail.link("http://localhost:8080/auth/verify-email?token=").unwrap();
    let verified = Browser::default().get(stack, path_of(&link)).await;
    assert_eq!(verified.headers[header::LOCATION], "/auth/login");
    // Per address: three mails an hour, then 429.
    unverified(&env, "finn", "finn@example.org").await;
    for _ in 0..3 {
        let reply = stranger.post(stack, "/auth/resend-verification", "email=finn@example.org");
        assert_eq!(reply.await.status, StatusCode::SEE_OTHER);
    }
    let limited = stranger.post(stack, "/auth/resend-verification", "email=finn@example.org").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    let sql = "SELECT count(*) FROM auth_events WHERE event = 'email_verified'";
    let (verified,): (i64,) = db.read(move |c| c.query_one(sql, &[])).await.unwrap();
    assert_eq!(verified, 2);

    // A German user's mail is German, whoever asks for it (here an English browser).
    let new = NewUser {
        username: "hanna".into(),
        email: Some("hanna@example.org".into()),
        language: "de".into(),
        ..NewUser::default()
    };
    db.write(move |c| Ok(users::create(c, &new))).await.unwrap().unwrap();
    let reply = stranger.post(stack, "/auth/resend-verification", "email=hanna@example.org");
    assert_eq!(reply.await.status, StatusCode::SEE_OTHER);
    // Dora's, Erin's, Finn's three (sent in the background: in any order) and Hanna's.
    let all = sink.wait_for(6);
    let mail = all.iter().find(|m| m.rcpt_tos == ["hanna@example.org"]).unwrap();
    assert_eq!(mail.subject, "Bestätigen Sie Ihre E-Mail-Adresse für Site", "{}", mail.data);
    let hello = "Hallo hanna,\n\nöffnen Sie diesen Link, um Ihre E-Mail-Adresse zu bestätigen";
    assert!(mail.text.starts_with(hello), "{}", mail.text);
    assert!(mail.text.contains("24 Stunden lang."), "{}", mail.text);
    assert!(mail.html.contains(">Meine E-Mail-Adresse bestätigen</a>"), "{}", mail.html);
    let link = mail.link("http://localhost:8080/auth/verify-email?token=").expect("a link");
    assert!(link.contains("token="), "{link}");

    // An invitation by mail, in the language asked for: its link registers.
    let invite = create_invite(&env.booted.ctx, "gus@example.org").await.unwrap();
    mail_invite(&env.booted.ctx, &invite, "").await.unwrap();
    let invite_de = create_invite(&env.booted.ctx, "ida@example.org").await.unwrap();
    mail_invite(&env.booted.ctx, &invite_de, "de").await.unwrap();
    let all = sink.wait_for(8);
    let ida = all.iter().find(|m| m.rcpt_tos == ["ida@example.org"]).unwrap();
    assert_eq!(ida.subject, "Sie sind zu Site eingeladen", "{}", ida.data);
    assert!(ida.text.contains("Öffnen Sie diesen Link, um sich zu registrieren:"), "{}", ida.text);
    let mail = all.iter().find(|m| m.rcpt_tos == ["gus@example.org"]).unwrap();
    assert!(mail.data.contains("Subject: You are invited to Site"), "{}", mail.data);
    assert!(mail.text.contains("Open this link to register:"), "{}", mail.text);
    let link = mail.link("http://localhost:8080/auth/register?invite=").unwrap();
    assert_eq!(link, invite.url);
    let page = Browser::default().get(stack, path_of(&link)).await;
    assert!(page.body.contains("Invitation for gus@example.org."), "{}", page.body);
}

mod verification {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        email_verification_by_the_link_of_a_real_mail(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        email_verification_by_the_link_of_a_real_mail(true).await;
    }
}

/// With the `jobs` app, verification mails are queued as jobs: each is rendered in its
/// user's language before it is queued (whoever's request asks for it), and sent so by
/// the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_verification_mails_are_in_their_users_language() {
    use burrow::contrib::jobs::{JobsApp, run_due};

    let sink = SmtpSink::start(Security::None);
    let site = Site::new();
    let mut args = vec!["--session-hash-key".to_string(), HASH.into()];
    args.extend(["--csrf-key".into(), CSRF.into(), "--auth-require-verification".into()]);
    args.extend(sink.server_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = server().app(JobsApp::new());
    let booted = tokio::task::block_in_place(|| site.build(server, &args)).expect("builds");
    let (stack, ctx) = (&booted.stack, &booted.ctx);
    for (username, language) in [("hanna", "de"), ("eve", "")] {
        let new = NewUser {
            username: username.into(),
            email: Some(format!("{username}@example.org")),
            language: language.into(),
            ..NewUser::default()
        };
        ctx.db.write(move |c| Ok(users::create(c, &new))).await.unwrap().unwrap();
    }
    // Asked for by a browser in the other language each time.
    for (language, email) in [("en", "hanna@example.org"), ("de", "eve@example.org")] {
        let mut browser = Browser::speaking(language);
        let form = format!("email={email}");
        let asked = browser.post(stack, "/auth/resend-verification", &form).await;
        assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    }
    assert_eq!(ctx.jobs.stats().await.unwrap().pending, 2, "queued, not sent yet");
    assert_eq!(run_due(ctx).await, 2);
    let mails = sink.wait_for(2);
    let to = |who: &str| mails.iter().find(|m| m.rcpt_tos == [format!("{who}@example.org")]);
    let hanna = to("hanna").expect("hanna's mail");
    assert_eq!(hanna.subject, "Bestätigen Sie Ihre E-Mail-Adresse für Site", "{}", hanna.data);
    assert!(hanna.text.starts_with("Hallo hanna,"), "{}", hanna.text);
    assert!(hanna.html.contains(">Meine E-Mail-Adresse bestätigen</a>"), "{}", hanna.html);
    let eve = to("eve").expect("eve's mail");
    assert_eq!(eve.subject, "Verify your email address for Site", "{}", eve.data);
    assert!(eve.text.starts_with("Hello eve,"), "{}", eve.text);
    assert!(eve.html.contains(">Verify my email address</a>"), "{}", eve.html);
}

#[test]
fn verification_needs_mail_a_start_up_error_names_the_setting() {
    let site = Site::new();
    let err = site.build(server(), &["--auth-require-verification"]).map(drop).unwrap_err();
    assert_eq!(err.code, 2);
    assert!(
        err.message.contains("--auth-require-verification") && err.message.contains("--smtp-host"),
        "{}",
        err.message
    );
}

/// The recovery codes a page shows, in order.
fn shown_codes(body: &str) -> Vec<String> {
    body.split("<li><code>")
        .skip(1)
        .map(|rest| rest[..rest.find('<').unwrap()].to_string())
        .collect()
}
