//! Sessions, CSRF and flash messages, with the guide's secret keys (docs/notes-contract.md,
//! "Sessions, CSRF, flash messages"): the real binary, real cookies carried from response
//! to request as a browser does, restarts with configured and with generated keys, key
//! rotation, tampered cookies, and bad keys at start-up.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::failure::Failure;
use crate::support::procs::{Cleanup, stop, wait_for_successor, wait_gone, with_pid_file};
use crate::support::{
    Launch, Server, TESTER, client, cookie_set_by, csrf_token, db_path, header, note_ids,
    set_cookie_value, short, signal, tempdir,
};

// ---------------------------------------------------------------------------------------
// A browser

/// One answer, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    location: Option<String>,
    content_type: String,
    /// The raw `Set-Cookie` header values.
    set_cookies: Vec<String>,
    body: String,
}

impl Reply {
    /// The `Location` of a 303 (panics, showing the answer, if it is not one).
    fn redirect(&self, what: &str) -> String {
        assert_eq!(
            self.status,
            303,
            "{what}: expected 303, got {} {}",
            self.status,
            short(&self.body)
        );
        self.location.clone().unwrap_or_else(|| panic!("{what}: 303 without Location"))
    }

    /// The value this answer sets for cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        set_cookie_value(self.set_cookies.iter().map(String::as_str), name)
    }
}

/// What a browser keeps for the site: its cookies, updated from every `Set-Cookie` (an
/// empty value or `Max-Age=0` removes one), and the CSRF token of the last form it
/// loaded. Cloning it gives a second tab replaying the same cookies.
#[derive(Clone, Debug)]
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    token: String,
}

impl Browser {
    fn new() -> Browser {
        Browser { http: client(), cookies: BTreeMap::new(), token: String::new() }
    }

    /// A browser signed in on `server` (notes belong to their author) with a sign-in link
    /// from the CLI: the link's page loaded, its form submitted, the page it leads to (and
    /// its flash message) seen.
    async fn signed_in(server: &Server) -> Browser {
        let mut browser = Browser::new();
        let path = server.login_link(TESTER);
        browser.load_form(server, &path).await;
        let token = path.split_once("token=").expect("a token").1.to_string();
        let next = browser.submit(server, "/auth/link", &[("token", &token)]).await;
        let next = next.redirect("signing in with the link");
        assert_eq!(browser.get(server, &next).await.status, 200, "{next}");
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends `request` with this browser's cookies; keeps the cookies the answer sets.
    async fn send(&mut self, request: reqwest::RequestBuilder, what: &str) -> Reply {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("Cookie", self.cookie_header())
        };
        let res = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let set_cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ASCII Set-Cookie").to_string())
            .collect();
        for set in &set_cookies {
            let Some((name, value)) = cookie_set_by(set) else {
                continue;
            };
            let mut attributes = set.split(';').skip(1);
            let expired = attributes.any(|attr| attr.trim().eq_ignore_ascii_case("max-age=0"));
            if value.is_empty() || expired {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = res.status().as_u16();
        let location = header(&res, "location");
        let content_type = header(&res, "content-type").unwrap_or_default();
        let body = res.text().await.unwrap_or_else(|e| panic!("{what}: body: {e}"));
        Reply { status, location, content_type, set_cookies, body }
    }

    async fn get(&mut self, server: &Server, path: &str) -> Reply {
        let request = self.http.get(server.url(path));
        self.send(request, &format!("GET {path}")).await
    }

    /// GETs a page with a form and keeps its CSRF token.
    async fn load_form(&mut self, server: &Server, path: &str) {
        let reply = self.get(server, path).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        self.token = csrf_token(&reply.body)
            .unwrap_or_else(|| panic!("GET {path}: no csrf_token field:\n{}", reply.body));
        assert!(!self.token.is_empty(), "GET {path}: empty csrf_token");
    }

    /// Submits a form as the browser does: the fields plus the `csrf_token` of the last
    /// form loaded.
    async fn submit(&mut self, server: &Server, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let token = self.token.clone();
        form.push(("csrf_token", &token));
        let request = self.http.post(server.url(path)).form(&form);
        self.send(request, &format!("POST {path}")).await
    }

    /// Creates a note through the form and returns the 303's `Location`, not followed.
    async fn create(&mut self, server: &Server, title: &str) -> String {
        self.submit(
            server,
            "/notes",
            &[("title", title), ("content", "written by the sessions tests")],
        )
        .await
        .redirect(&format!("create {title:?}"))
    }
}

// ---------------------------------------------------------------------------------------
// Pages and logs

/// The `<div id="messages" …>…</div>` element of a page or fragment.
fn messages_div(html: &str) -> Option<&str> {
    let start = html.find("<div id=\"messages\"")?;
    let end = start + html[start..].find("</div>")? + "</div>".len();
    Some(&html[start..end])
}

/// The text of a flash message as the page shows it.
fn created(title: &str) -> String {
    format!("Created “{title}”.")
}

fn assert_shown(reply: &Reply, text: &str, what: &str) {
    assert_eq!(reply.status, 200, "{what}: status; body:\n{}", reply.body);
    let div = messages_div(&reply.body)
        .unwrap_or_else(|| panic!("{what}: no <div id=\"messages\">:\n{}", reply.body));
    assert!(
        div.contains(text),
        "{what}: `{text}` is not in the messages:\n{div}\npage:\n{}",
        reply.body
    );
}

/// The page has its messages element, and no message in it, nor `text` anywhere.
fn assert_not_shown(reply: &Reply, text: &str, what: &str) {
    assert_eq!(reply.status, 200, "{what}: status; body:\n{}", reply.body);
    let div = messages_div(&reply.body)
        .unwrap_or_else(|| panic!("{what}: no <div id=\"messages\">:\n{}", reply.body));
    assert!(!div.contains("<p class=\"message"), "{what}: a message is shown:\n{div}");
    assert!(!reply.body.contains(text), "{what}: `{text}` is shown:\n{}", reply.body);
}

/// The answer of a page to a browser that is not (or no longer) signed in: to the login page.
fn assert_signed_out(reply: &Reply, what: &str) {
    let location = reply.redirect(what);
    assert!(location.starts_with("/auth/login?next="), "{what}: redirected to {location}");
}

/// How many WARN lines say a session key and a CSRF key were generated (CSRF failures,
/// also WARN lines, are not counted).
fn key_warnings(log: &[String]) -> (usize, usize) {
    let (mut session, mut csrf) = (0, 0);
    for line in log.iter().filter(|l| l.contains("WARN") && !l.contains("CSRF check failed")) {
        let lower = line.to_lowercase();
        if lower.contains("csrf") && lower.contains("key") {
            csrf += 1;
        } else if lower.contains("session") && lower.contains("key") {
            session += 1;
        }
    }
    (session, csrf)
}

/// The longest run of bytes of `s` satisfying `pred`, and where it starts.
fn longest_run(s: &str, pred: impl Fn(u8) -> bool) -> (usize, usize) {
    let (mut best, mut best_at, mut run) = (0, 0, 0);
    for (i, b) in s.bytes().enumerate() {
        run = if pred(b) { run + 1 } else { 0 };
        if run > best {
            (best, best_at) = (run, i + 1 - run);
        }
    }
    (best, best_at)
}

/// No line of the log holds something shaped like a key: 64 hex characters (the
/// configured form), or 43 base64url characters (32 bytes encoded).
fn assert_no_key_in(log: &[String]) {
    for line in log {
        let (hex, at) = longest_run(line, |b| b.is_ascii_hexdigit());
        assert!(hex < 64, "the log shows {hex} hex characters in a row (a key?) at {at}: {line}");
        let (b64, at) = longest_run(line, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        assert!(
            b64 < 43,
            "the log shows {b64} base64url characters in a row (a key?) at {at}: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// base64url and random bytes, for looking into cookies and forging them

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A xorshift generator seeded from the clock (the seed is printed, for reproduction).
struct Random(u64);

impl Random {
    fn new() -> Random {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64;
        let seed = nanos | 1;
        eprintln!("random seed {seed:#x}");
        Random(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn base64url_helpers_round_trip() {
    let mut random = Random::new();
    for len in 0..40 {
        let bytes = random.bytes(len);
        assert_eq!(base64url_decode(&base64url_encode(&bytes)), Some(bytes));
    }
    assert_eq!(base64url_encode(b"Created"), "Q3JlYXRlZA");
    assert_eq!(base64url_decode("Q3JlYXRlZA").as_deref(), Some(&b"Created"[..]));
}

/// Keys of 64 hex characters, distinct from the harness's defaults.
fn key(pattern: &str) -> String {
    assert_eq!(64 % pattern.len(), 0, "{pattern}");
    pattern.repeat(64 / pattern.len())
}

// ---------------------------------------------------------------------------------------
// Flash messages

#[tokio::test]
async fn flash_messages_show_once_after_create_edit_and_delete() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let mut browser = Browser::signed_in(&server).await;

    browser.load_form(&server, "/notes/new").await;
    let target = browser.create(&server, "Flash one").await;
    assert!(
        browser.cookies.contains_key("_session"),
        "no _session cookie after a create: {browser:?}"
    );
    let page = browser.get(&server, &target).await;
    assert_shown(&page, &created("Flash one"), "the page after the create");
    let again = browser.get(&server, &target).await;
    assert_not_shown(&again, &created("Flash one"), "the same page loaded again");
    let id = target.strip_prefix("/notes/").expect("Location /notes/{id}").to_string();

    // Edit, with the token of the edit form.
    browser.load_form(&server, &format!("/notes/{id}/edit")).await;
    let reply = browser
        .submit(&server, &target, &[("title", "Flash one, edited"), ("content", "changed")])
        .await;
    assert_eq!(reply.redirect("edit"), target);
    let page = browser.get(&server, &target).await;
    assert_shown(&page, "Saved your changes.", "the page after the edit");
    assert!(page.body.contains("Flash one, edited"), "the edit was not saved:\n{}", page.body);
    assert_not_shown(
        &browser.get(&server, &target).await,
        "Saved your changes.",
        "the page after the edit, loaded again",
    );

    // Delete (the form on the detail page).
    browser.load_form(&server, &target).await;
    let reply = browser.submit(&server, &format!("/notes/{id}/delete"), &[]).await;
    assert_eq!(reply.redirect("delete"), "/notes");
    let list = browser.get(&server, "/notes").await;
    assert_shown(&list, "Deleted “Flash one, edited”.", "/notes after the delete");
    assert!(note_ids(&list.body).is_empty(), "the deleted note is listed:\n{}", list.body);
    assert_not_shown(
        &browser.get(&server, "/notes").await,
        "Deleted “Flash one, edited”.",
        "/notes loaded again",
    );
}

#[tokio::test]
async fn htmx_create_returns_the_row_and_the_message_out_of_band() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let mut browser = Browser::signed_in(&server).await;
    browser.load_form(&server, "/notes").await;

    // As htmx sends it from the list page's inline form: the token in the header that the
    // layout's hx-headers sets, not in the form.
    let token = browser.token.clone();
    let request = browser
        .http
        .post(server.url("/notes"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .form(&[("title", "Inline flash"), ("content", "from the list page")]);
    let reply = browser.send(request, "htmx POST /notes").await;
    assert_eq!(reply.status, 200, "htmx create: {}", reply.body);
    assert!(!reply.body.contains("<html"), "htmx create returned a whole page:\n{}", reply.body);
    assert_eq!(
        note_ids(&reply.body).len(),
        1,
        "htmx create should hold the new row:\n{}",
        reply.body
    );
    let div = messages_div(&reply.body)
        .unwrap_or_else(|| panic!("no messages element in the htmx answer:\n{}", reply.body));
    let open_tag = &div[..div.find('>').unwrap()];
    assert!(
        open_tag.contains("hx-swap-oob=\"true\""),
        "the messages element is not out of band: {open_tag}"
    );
    assert!(
        div.contains(&created("Inline flash")),
        "the message is not in the out-of-band element:\n{div}"
    );

    // Shown once: not again on the next page.
    let list = browser.get(&server, "/notes").await;
    assert_not_shown(&list, &created("Inline flash"), "/notes after the htmx create");
    assert_eq!(note_ids(&list.body).len(), 1, "{}", list.body);
}

// ---------------------------------------------------------------------------------------
// Restarts

#[tokio::test]
async fn configured_keys_keep_sessions_and_tokens_across_stop_start_and_sighup() {
    let dir = tempdir();
    let launch = Launch::serve(dir.path())
        .env("SESSION_HASH_KEY", &key("a1b2c3d4"))
        .env("SESSION_BLOCK_KEY", &key("0b10c4e7"))
        .env("CSRF_KEY", &key("c5f0e1d2"));
    let mut first = launch.clone().start();
    let mut browser = Browser::signed_in(&first).await;
    browser.load_form(&first, "/notes/new").await;
    let token = browser.token.clone();
    let target = browser.create(&first, "Before the stop").await;
    assert!(
        browser.cookies.contains_key("_session"),
        "no _session cookie after a create: {browser:?}"
    );
    assert_eq!(first.terminate().code(), Some(0), "exit status after SIGTERM");
    assert_eq!(
        key_warnings(&first.log()),
        (0, 0),
        "key warnings although keys are configured:\n{}",
        first.log().join("\n")
    );

    // A new process on the same database with the same keys.
    let pid_file = dir.path().join("server.pid");
    let second = with_pid_file(launch, &pid_file).start();
    let _cleanup = Cleanup::new(dir.path());
    let page = browser.get(&second, &target).await;
    assert_shown(
        &page,
        &created("Before the stop"),
        "the page after a stop/start (session from before)",
    );
    assert_eq!(browser.token, token);
    let target = browser.create(&second, "After the start").await;

    // A zero-downtime restart.
    let old = second.pid();
    assert!(signal(old, "HUP"), "kill -HUP {old}");
    let new = wait_for_successor(&pid_file, second.port, old);
    wait_gone(old);
    let page = browser.get(&second, &target).await;
    assert_shown(&page, &created("After the start"), "the page after SIGHUP (session from before)");
    browser.create(&second, "After the SIGHUP").await;
    assert_eq!(browser.token, token, "the token was loaded from the first process and never again");
    stop(new);
}

/// Generated keys do not survive a stop/start. That they survive a SIGHUP is checked by
/// lifecycle::sighup_keeps_generated_secrets_and_stop_start_does_not.
#[tokio::test]
async fn without_keys_the_server_warns_and_a_stop_start_ends_sessions_and_tokens() {
    let dir = tempdir();
    let mut first = Launch::serve(dir.path()).without_keys().start();
    let mut browser = Browser::signed_in(&first).await;
    browser.load_form(&first, "/notes/new").await;
    let target = browser.create(&first, "Before the stop").await;
    // Controls: the cookie holds the message and the token posts, on this server.
    assert_shown(
        &browser.clone().get(&first, &target).await,
        &created("Before the stop"),
        "the page after the create",
    );
    browser.clone().create(&first, "Control").await;
    assert_eq!(first.terminate().code(), Some(0), "exit status after SIGTERM");
    let log = first.log();
    assert_eq!(key_warnings(&log), (1, 1), "(session, CSRF) key warnings:\n{}", log.join("\n"));
    assert_no_key_in(&log);

    let mut second = Launch::serve(dir.path()).without_keys().start();
    let page = browser.get(&second, &target).await;
    assert_signed_out(&page, "the page after a stop/start with generated keys");
    assert!(!page.body.contains(&created("Before the stop")), "{}", page.body);
    let reply = browser
        .submit(&second, "/notes", &[("title", "With a stale token"), ("content", "")])
        .await;
    assert_eq!(reply.status, 403, "POST with the token of a stopped server: {}", reply.body);
    assert_eq!(second.terminate().code(), Some(0));
    let log = second.log();
    assert_eq!(
        key_warnings(&log),
        (1, 1),
        "(session, CSRF) key warnings of the second server:\n{}",
        log.join("\n")
    );
    assert_no_key_in(&log);
}

// ---------------------------------------------------------------------------------------
// What the cookie holds

#[tokio::test]
async fn a_block_key_hides_the_session_contents() {
    const TITLE: &str = "Confidential plum";
    let mut cookies = Vec::new();
    for block_key in [Some(key("0b10c4e7")), None] {
        let dir = tempdir();
        let launch = Launch::serve(dir.path());
        let server = match &block_key {
            Some(k) => launch.env("SESSION_BLOCK_KEY", k).start(),
            None => launch.start(),
        };
        let mut browser = Browser::signed_in(&server).await;
        browser.load_form(&server, "/notes/new").await;
        let reply = browser.submit(&server, "/notes", &[("title", TITLE), ("content", "")]).await;
        let target = reply.redirect("create");
        let value = reply
            .cookie("_session")
            .unwrap_or_else(|| panic!("no _session cookie set: {:?}", reply.set_cookies));
        // The cookie does hold the message.
        assert_shown(
            &browser.get(&server, &target).await,
            &created(TITLE),
            "the page after the create",
        );
        // Its bytes, as sent, and each '.'-separated part base64url-decoded.
        let mut views = vec![value.as_bytes().to_vec()];
        views.extend(value.split('.').filter_map(base64url_decode));
        let readable = views.iter().any(|v| v.windows(TITLE.len()).any(|w| w == TITLE.as_bytes()));
        cookies.push((block_key.is_some(), readable, value));
    }
    assert_eq!(
        cookies.iter().map(|(encrypted, readable, _)| (*encrypted, *readable)).collect::<Vec<_>>(),
        [(true, false), (false, true)],
        "(block key set, flash text readable in the cookie) for the cookies {cookies:?}"
    );
}

#[tokio::test]
async fn tampered_and_garbage_session_cookies_are_ignored() {
    let mut random = Random::new();
    for block_key in [None, Some(key("0b10c4e7"))] {
        let dir = tempdir();
        let launch = Launch::serve(dir.path());
        let server = match &block_key {
            Some(k) => launch.env("SESSION_BLOCK_KEY", k).start(),
            None => launch.start(),
        };
        let what = if block_key.is_some() { "encrypted" } else { "signed" };
        let mut browser = Browser::signed_in(&server).await;
        browser.load_form(&server, "/notes/new").await;
        let reply =
            browser.submit(&server, "/notes", &[("title", "Tamper target"), ("content", "")]).await;
        reply.redirect("create");
        let valid = reply
            .cookie("_session")
            .unwrap_or_else(|| panic!("no _session cookie set: {:?}", reply.set_cookies));
        let http = client();
        let with_session = async |value: &str| -> Reply {
            let request =
                http.get(server.url("/notes")).header("Cookie", format!("_session={value}"));
            Browser::new().send(request, &format!("GET /notes with _session={value}")).await
        };
        // Control: the untouched cookie shows the message.
        assert_shown(
            &with_session(&valid).await,
            &created("Tamper target"),
            &format!("{what}: the valid cookie"),
        );

        let mut tried = 0;
        for at in 0..valid.len() {
            let mut bytes = valid.clone().into_bytes();
            bytes[at] ^= 0x01;
            if !bytes[at].is_ascii_graphic() || bytes[at] == b';' || bytes[at] == b',' {
                continue;
            }
            let forged = String::from_utf8(bytes).unwrap();
            assert_signed_out(
                &with_session(&forged).await,
                &format!("{what}: byte {at} flipped: {forged}"),
            );
            tried += 1;
        }
        assert!(tried > valid.len() / 2, "{what}: only {tried} of {} flips tried", valid.len());

        let (ts, rest) = valid.split_once('.').expect("TIMESTAMP.PAYLOAD.MAC");
        let payload = rest.split('.').next().unwrap();
        let mut garbage: Vec<String> = [1, 16, 32, 48, 100, 600, 2000]
            .iter()
            .map(|&n| base64url_encode(&random.bytes(n)))
            .collect();
        garbage.extend([
            format!("{ts}.{payload}.{}", base64url_encode(&random.bytes(32))),
            format!(
                "{ts}.{}.{}",
                base64url_encode(&random.bytes(80)),
                base64url_encode(&random.bytes(32))
            ),
            format!("{ts}.{payload}"),
            format!("\"{valid}x\""),
            "..".to_string(),
            String::new(),
        ]);
        for value in garbage {
            assert_signed_out(
                &with_session(&value).await,
                &format!("{what}: garbage cookie {value}"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// CSRF

#[tokio::test]
async fn csrf_is_enforced_over_http() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let mut alice = Browser::signed_in(&server).await;
    alice.load_form(&server, "/notes/new").await;
    let mut bob = Browser::signed_in(&server).await;
    bob.load_form(&server, "/notes/new").await;
    assert_ne!(
        alice.cookies.get("_csrf"),
        bob.cookies.get("_csrf"),
        "two clients got the same CSRF cookie"
    );

    // A server with another CSRF key (its own directory): its cookie and token are valid
    // there, and only there.
    let other_dir = tempdir();
    let other = Launch::serve(other_dir.path()).env("CSRF_KEY", &key("0e7e4c5f")).start();
    let mut mallory = Browser::signed_in(&other).await;
    mallory.load_form(&other, "/notes/new").await;
    mallory.clone().create(&other, "Valid on the other server").await;

    let post = |browser: &Browser, token: Option<&str>, json: bool| {
        let mut form = vec![("title", "Forged".to_string()), ("content", String::new())];
        if let Some(token) = token {
            form.push(("csrf_token", token.to_string()));
        }
        let mut request = browser.http.post(server.url("/notes")).form(&form);
        if json {
            request = request.header("Accept", "application/json");
        }
        let mut browser = browser.clone();
        async move { browser.send(request, "POST /notes").await }
    };
    let cookieless = Browser { token: alice.token.clone(), ..Browser::new() };
    let alice_with_mallorys_cookies = Browser { token: alice.token.clone(), ..mallory.clone() };
    let rejected = [
        ("no token", post(&alice, None, false).await),
        ("empty token", post(&alice, Some(""), false).await),
        ("a token but no cookie", post(&cookieless, Some(&alice.token), false).await),
        ("another user's token", post(&alice, Some(&bob.token), false).await),
        (
            "cookie and token from a server with another key",
            post(&mallory, Some(&mallory.token), false).await,
        ),
        (
            "own token, cookie from a server with another key",
            post(&alice_with_mallorys_cookies, Some(&alice.token), false).await,
        ),
    ];
    for (case, reply) in &rejected {
        assert_eq!(reply.status, 403, "{case}: {}", reply.body);
        assert!(
            reply.content_type.starts_with("text/html"),
            "{case}: 403 content type {}",
            reply.content_type
        );
        assert!(
            reply.body.contains("403"),
            "{case}: the 403 page does not show the code:\n{}",
            reply.body
        );
    }
    let reply = post(&alice, None, true).await;
    assert_eq!(reply.status, 403, "no token, JSON: {}", reply.body);
    assert!(
        reply.content_type.starts_with("application/json"),
        "JSON 403 content type {}",
        reply.content_type
    );
    let json: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("JSON 403 body ({e}): {}", reply.body));
    assert_eq!(json["code"], 403, "{json}");
    assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()), "{json}");

    // Every rejection is logged with its reason.
    let mut from = 0;
    for n in 1..=rejected.len() + 1 {
        let (at, line) =
            server.wait_for_log_after(from, &format!("number {n} with `CSRF check failed`"), |l| {
                l.contains("CSRF check failed")
            });
        assert!(line.contains("WARN"), "not a WARN line: {line}");
        from = at + 1;
    }

    // Nothing was created; the real form posts, with the token in the form or the header.
    let list = alice.get(&server, "/notes").await;
    assert!(note_ids(&list.body).is_empty(), "a rejected POST created a note:\n{}", list.body);
    alice.create(&server, "Valid in the form").await;
    let token = alice.token.clone();
    let request = alice
        .http
        .post(server.url("/notes"))
        .header("X-CSRF-Token", token)
        .form(&[("title", "Valid in the header"), ("content", "")]);
    alice.send(request, "POST /notes with X-CSRF-Token").await.redirect("token in the header");
    let list = alice.get(&server, "/notes").await;
    assert_eq!(note_ids(&list.body).len(), 2, "{}", list.body);
}

// ---------------------------------------------------------------------------------------
// Key rotation

#[tokio::test]
async fn previous_keys_keep_sessions_and_tokens_during_a_rotation() {
    let dir = tempdir();
    let (hash_1, hash_2) = (key("1a51"), key("2a52"));
    let (csrf_1, csrf_2) = (key("1c51"), key("2c52"));

    let mut a =
        Launch::serve(dir.path()).env("SESSION_HASH_KEY", &hash_1).env("CSRF_KEY", &csrf_1).start();
    let mut browser = Browser::signed_in(&a).await;
    browser.load_form(&a, "/notes/new").await;
    let target = browser.create(&a, "Signed with the old key").await;
    assert_eq!(a.terminate().code(), Some(0));

    // The new keys, the old ones still accepted.
    let mut b = Launch::serve(dir.path())
        .env("SESSION_HASH_KEY", &hash_2)
        .env("SESSION_HASH_KEY_PREVIOUS", &hash_1)
        .env("CSRF_KEY", &csrf_2)
        .env("CSRF_KEY_PREVIOUS", &csrf_1)
        .start();
    assert_shown(
        &browser.clone().get(&b, &target).await,
        &created("Signed with the old key"),
        "server with the previous key",
    );
    // A new session value is written with the new key (checked on the next server).
    let mut rewritten = browser.clone();
    let second = rewritten.create(&b, "Signed with the new key").await;
    assert_eq!(b.terminate().code(), Some(0));

    // The old keys dropped.
    let c =
        Launch::serve(dir.path()).env("SESSION_HASH_KEY", &hash_2).env("CSRF_KEY", &csrf_2).start();
    let page = browser.clone().get(&c, &target).await;
    assert_signed_out(&page, "server without the previous key");
    let reply = browser.submit(&c, "/notes", &[("title", "Old token"), ("content", "")]).await;
    assert_eq!(
        reply.status, 403,
        "POST with a token signed with a dropped CSRF key: {}",
        reply.body
    );
    assert_shown(
        &rewritten.get(&c, &second).await,
        &created("Signed with the new key"),
        "a cookie written during the rotation",
    );
}

// ---------------------------------------------------------------------------------------
// Bad keys

#[test]
fn bad_keys_are_start_up_errors_that_never_show_the_value() {
    let valid = key("4f5e");
    let almost = format!("{}g", &key("7d8c")[..63]);
    let not_hex = "not-hex!".repeat(8);
    // (variable, value, what the error line names)
    let cases: [(&str, String, &[&str]); 5] = [
        (
            "SESSION_HASH_KEY",
            "abc".to_string(),
            &["--session-hash-key", "environment variable SESSION_HASH_KEY"],
        ),
        ("CSRF_KEY", not_hex.clone(), &["--csrf-key", "environment variable CSRF_KEY"]),
        ("SESSION_BLOCK_KEY", almost.clone(), &["--session-block-key", "SESSION_BLOCK_KEY"]),
        (
            "SESSION_HASH_KEY_PREVIOUS",
            format!("{valid},{almost}"),
            &["--session-hash-key-previous", "SESSION_HASH_KEY_PREVIOUS"],
        ),
        (
            "CSRF_KEY_PREVIOUS",
            format!("{valid},abc"),
            &["--csrf-key-previous", "CSRF_KEY_PREVIOUS"],
        ),
    ];
    for (variable, value, names) in cases {
        let dir = tempdir();
        let out = Launch::serve(dir.path()).env(variable, &value).run();
        eprintln!("{variable}: {}", out.stderr.trim_end());
        let mut failure =
            Failure::of(&out).mentions(names).no_database(dir.path()).never_shows(&value);
        for part in value.split(',') {
            failure = failure.never_shows(part);
        }
        failure.check();
        assert!(!db_path(dir.path()).exists());
    }
    // The same through the flag.
    let dir = tempdir();
    let out = Launch::serve(dir.path()).args(["--session-hash-key", &almost]).run();
    Failure::of(&out)
        .mentions(&["--session-hash-key"])
        .no_database(dir.path())
        .never_shows(&almost)
        .check();
}
