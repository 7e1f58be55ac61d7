//! The notes pages in a real browser: headless Chromium, driven through chromedriver's W3C
//! WebDriver HTTP API, against the real `server` binary. These check what only a browser
//! running htmx shows: inline create and validation swapped in place, the CSRF header from
//! `hx-headers`, infinite scroll, boosted navigation with flash messages after a redirect.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
//! (scripts/test.sh installs them). Every test starts its own chromedriver, browser profile
//! and server, and waits for conditions by polling the DOM until a deadline: no sleeps as
//! synchronization, no timing assertions.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burrow_test::smtp::{Security, SmtpSink};
use serde_json::{Value, json};

use crate::support::{
    Launch, RawRequest, Server, TESTER, client, create_note, db_path, free_port, generate_notes,
    short, tempdir,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium as root in a container, with no connections of its own to the outside.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Upper bound for one DOM condition, chromedriver's start and one WebDriver command. Not a
/// performance assertion: it only keeps a broken page from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(15);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(50);

/// The key of a web element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The outer size of the window every test browses in (set through `/window/rect`); the
/// viewport, and so the screenshot, is a little shorter (1280x757 with Chromium 156).
const WINDOW: (u32, u32) = (1280, 900);

// ---------------------------------------------------------------------------------------
// chromedriver

/// A chromedriver process in its own process group; on drop it is sent SIGTERM, then the
/// whole group (chromedriver and any browser it left behind) SIGKILL.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn spawn(port: u16, log: &Path) -> Driver {
        let out = std::fs::File::create(log).expect("create the chromedriver log");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} (Debian package chromium-driver): {e}")
            });
        Driver { child, port, log: log.to_path_buf() }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pid = self.child.id();
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The group is chromedriver's own (process_group(0): its id is chromedriver's).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- chromedriver log (port {}) ----\n{}\n---- end of chromedriver log ----",
                self.port,
                self.log()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The browser

/// One WebDriver session in headless Chromium. Dropping it ends the session (the browser
/// quits), then stops chromedriver, then removes the browser profile.
pub(crate) struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    session_id: String,
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port (retrying with another port if it cannot listen),
    /// waits until `/status` says it is ready, opens a session and sets the window size.
    pub(crate) async fn start() -> Browser {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(PATIENCE * 4)
            .build()
            .expect("build the WebDriver client");
        let profile = tempfile::Builder::new()
            .prefix("notes-browser-")
            .tempdir()
            .expect("create a browser profile directory");
        let mut attempt = 0;
        let driver = loop {
            attempt += 1;
            // chromedriver has no `--port=0`.
            let mut driver = Driver::spawn(
                free_port(),
                &profile.path().join(format!("chromedriver-{attempt}.log")),
            );
            if wait_ready(&http, &mut driver).await {
                break driver;
            }
            assert!(attempt < 3, "chromedriver never became ready; its log:\n{}", driver.log());
        };
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().join("profile").display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": args,
                    },
                },
            },
        });
        let value =
            match send(&http, reqwest::Method::POST, &driver.url("/session"), Some(capabilities))
                .await
            {
                Ok(value) => value,
                Err(e) => panic!(
                    "cannot open a WebDriver session: {e}\nchromedriver log:\n{}",
                    driver.log()
                ),
            };
        let session_id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_string();
        let browser = Browser {
            http,
            session: driver.url(&format!("/session/{session_id}")),
            session_id,
            driver,
            _profile: profile,
        };
        browser.set_window_size(WINDOW.0, WINDOW.1).await;
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        match send(&self.http, method, &format!("{}{path}", self.session), body).await {
            Ok(value) => value,
            Err(e) => panic!("WebDriver {what}: {e}"),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    /// Adds a WebDriver virtual authenticator (a platform passkey provider: CTAP2, internal
    /// transport, resident keys, user verification that always succeeds); returns its id.
    async fn add_virtual_authenticator(&self) -> String {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "automaticPresenceSimulation": true,
        });
        let value = self.post("/webauthn/authenticator", options).await;
        value.as_str().unwrap_or_else(|| panic!("no authenticator id in {value}")).to_string()
    }

    /// The credentials a virtual authenticator holds.
    async fn authenticator_credentials(&self, id: &str) -> Vec<Value> {
        let path = format!("/webauthn/authenticator/{id}/credentials");
        let value = self.command(reqwest::Method::GET, &path, None).await;
        value.as_array().unwrap_or_else(|| panic!("no credential list in {value}")).clone()
    }

    /// Removes every credential of a virtual authenticator (as if its passkeys were deleted).
    async fn remove_authenticator_credentials(&self, id: &str) {
        let path = format!("/webauthn/authenticator/{id}/credentials");
        self.command(reqwest::Method::DELETE, &path, None).await;
    }

    async fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height })).await;
    }

    /// Navigates to `url` (a full page load) and waits until htmx is loaded.
    pub(crate) async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
        self.wait(
            "htmx loaded",
            "return document.readyState === 'complete' && !!window.htmx;",
            json!([]),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its result.
    pub(crate) async fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Polls `script` until it returns a truthy value, which is returned. Panics after
    /// [`PATIENCE`], or as soon as htmx reports an error (see [`Browser::instrument`]),
    /// describing the page.
    pub(crate) async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let script = format!(
            "const result = (function () {{ {script} }}).apply(null, arguments);
             return [result, window.__htmxErrors ?? []];"
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut answer = self.js(&script, args.clone()).await;
            let value = answer[0].take();
            if answer[1].as_array().is_some_and(|errors| !errors.is_empty()) {
                panic!(
                    "htmx reported an error while waiting for {what};\n{}",
                    self.describe().await
                );
            }
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what} (last value {value});\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Where the page is and what it shows, for failure messages.
    pub(crate) async fn describe(&self) -> String {
        let state = self
            .js(
                "return { url: location.href, page: window.__page ?? null, \
                 htmxErrors: window.__htmxErrors ?? null,
                          text: document.body ? document.body.innerText : null };",
                json!([]),
            )
            .await;
        format!(
            "url: {}\nwindow.__page: {}\nhtmx errors: {}\npage text:\n{}",
            state["url"],
            state["page"],
            state["htmxErrors"],
            short(state["text"].as_str().unwrap_or(""))
        )
    }

    /// The element matching a CSS selector; panics if there is none.
    async fn find(&self, css: &str) -> String {
        let value = self.post("/element", json!({ "using": "css selector", "value": css })).await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element id for `{css}` in {value}"))
            .to_string()
    }

    pub(crate) async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Clears a text field, then types `text` into it.
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    /// The page's current HTML.
    async fn source(&self) -> String {
        self.command(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the viewport.
    async fn screenshot(&self) -> Vec<u8> {
        let value = self.command(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(
            value.as_str().unwrap_or_else(|| {
                panic!("screenshot is not a string: {}", short(&value.to_string()))
            }),
        )
    }

    /// Marks the current document (`window.__page = 'same'`: a full page load would lose
    /// it, an htmx swap does not) and records what htmx reports as errors and the CSRF
    /// header of its requests.
    pub(crate) async fn instrument(&self) {
        self.js(
            "window.__page = 'same';
             window.__htmxErrors = [];
             window.__csrfHeaders = [];
             for (const name of ['htmx:responseError', 'htmx:sendError', \
                                 'htmx:swapError', 'htmx:targetError']) {
               document.addEventListener(name, (e) => window.__htmxErrors.push(name + ' ' + \
                 (e.detail.xhr ? e.detail.xhr.status : '')));
             }
             document.addEventListener('htmx:configRequest', (e) => \
               window.__csrfHeaders.push(e.detail.headers['X-CSRF-Token'] ?? null));",
            json!([]),
        )
        .await;
    }

    /// Asserts that the document is still the one [`Browser::instrument`] marked.
    pub(crate) async fn assert_same_document(&self, after: &str) {
        let page = self.js("return window.__page ?? null;", json!([])).await;
        assert_eq!(
            page,
            json!("same"),
            "a full page load happened after {after} (htmx did not swap);\n{}",
            self.describe().await
        );
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let value = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                json!([css]),
            )
            .await;
        value.as_str().unwrap_or_else(|| panic!("no element `{css}`")).to_string()
    }
}

impl Drop for Browser {
    /// Ends the session (the browser quits) with a plain blocking request: drop cannot await.
    fn drop(&mut self) {
        let session = format!("/session/{}", self.session_id);
        let delete = RawRequest::new(self.driver.port, "DELETE", &session).body(Vec::new());
        match delete.send().map(|res| res.status) {
            Ok(200) => {}
            Ok(status) => eprintln!("browser: DELETE session answered {status}"),
            Err(e) => eprintln!("browser: DELETE session failed: {e}"),
        }
    }
}

/// Sends one WebDriver command; the answer's `value`, or the WebDriver error.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let res = request.send().await.map_err(|e| format!("request failed: {e}"))?;
    let status = res.status();
    let mut answer: Value =
        res.json().await.map_err(|e| format!("{status}, answer is not JSON: {e}"))?;
    let value = answer["value"].take();
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("{status} {}: {}", value["error"], value["message"]))
    }
}

/// Polls chromedriver's `/status` until it is ready; false if it exited or never got ready.
async fn wait_ready(http: &reqwest::Client, driver: &mut Driver) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(value) = send(http, reqwest::Method::GET, &driver.url("/status"), None).await
            && value["ready"] == json!(true)
        {
            return true;
        }
        if driver.child.try_wait().ok().flatten().is_some() {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// Decodes standard base64 (the WebDriver screenshot), ignoring padding and whitespace.
fn base64_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {:?}", c as char),
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        bits = bits << 6 | u32::from(sextet(c));
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        png.len()
    );
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The cargo target directory above this test executable: the outermost directory holding
/// a `CACHEDIR.TAG` (with `--target TRIPLE`, `target/TRIPLE` holds one too).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .filter(|dir| dir.join("CACHEDIR.TAG").is_file())
        .last()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Prints how long a test took when it ends.
pub(crate) struct Timing(&'static str, Instant);

impl Timing {
    pub(crate) fn start(name: &'static str) -> Timing {
        Timing(name, Instant::now())
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        eprintln!("browser test {}: {:.1} s", self.0, self.1.elapsed().as_secs_f64());
    }
}

/// A server on a fresh database in `dir`.
fn serve(dir: &Path) -> Server {
    Launch::serve(dir).start()
}

/// A browser signed in on `server` (notes belong to their author): a sign-in link from
/// the CLI, opened and confirmed, which lands on the passkeys page.
async fn signed_in_browser(server: &Server) -> Browser {
    signed_in_browser_as(server, TESTER).await
}

/// [`signed_in_browser`] as `username` (made if missing).
pub(crate) async fn signed_in_browser_as(server: &Server, username: &str) -> Browser {
    let browser = Browser::start().await;
    browser.goto(&server.url(&server.login_link(username))).await;
    browser.click("main form button").await;
    let landed = "return location.pathname === '/auth/credentials/';";
    browser.wait("the passkeys page after signing in", landed, json!([])).await;
    browser
}

/// Opens the "Quick note" form of the list page (the page must be /notes).
async fn open_quick_note(browser: &Browser) {
    browser.click("details.inline-create > summary").await;
    browser
        .wait(
            "the Quick note form to open",
            "return document.querySelector('details.inline-create').open;",
            json!([]),
        )
        .await;
}

/// JavaScript: the number of rows of the list (`li[id^=note-]` in #note-list).
/// JavaScript: whether the list's event stream (the `sse` extension's `EventSource`, in
/// htmx's data of `#note-list`) is open; changes made before would not reach the page.
pub(crate) const LIST_STREAM_OPEN: &str =
    "const data = document.querySelector('#note-list')['htmx-internal-data'];
     return !!data && !!data.sseEventSource && data.sseEventSource.readyState === 1;";

pub(crate) const ROW_COUNT: &str =
    "document.querySelectorAll('#note-list li[id^=\"note-\"]').length";

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn browser_inline_create_swaps_the_new_note_in() {
    let _timing = Timing::start("inline create");
    let dir = tempdir();
    let server = serve(dir.path());
    let browser = signed_in_browser(&server).await;

    browser.goto(&server.url("/notes")).await;
    browser.instrument().await;
    open_quick_note(&browser).await;
    // The form carries the token twice: a hidden `csrf_token` field and, through the
    // layout's `hx-headers`, the X-CSRF-Token header, which the server checks first when
    // present. Without the field, only the header can get the request past the CSRF check.
    let token = browser
        .js(
            "const f = document.querySelector('#new-note input[name=csrf_token]'); \
             const v = f.value; f.remove(); return v;",
            json!([]),
        )
        .await;
    assert!(
        token.as_str().is_some_and(|t| !t.is_empty()),
        "no csrf_token field in the inline form: {token}"
    );

    let title = "Buy oat milk";
    browser.type_into("#new-note input[name=title]", title).await;
    browser.type_into("#new-note textarea[name=content]", "Two cartons, the barista kind.").await;
    // The list follows its author's changes (live updates): this window's own create too.
    browser.wait("the list's event stream to open", LIST_STREAM_OPEN, json!([])).await;
    browser.click("#new-note button[type=submit]").await;

    let row = browser
        .wait(
            "the new note in #note-list",
            "const li = [...document.querySelectorAll('#note-list li[id^=\"note-\"]')]
                 .find((li) => li.querySelector('a.title')?.textContent.trim() === arguments[0]);
             return li ? li.id : null;",
            json!([title]),
        )
        .await;
    browser.assert_same_document("the inline create").await;
    let messages = browser
        .wait(
            "the flash message",
            "return document.querySelector('#messages').innerText;",
            json!([]),
        )
        .await;
    assert!(
        messages.as_str().unwrap_or("").contains(&format!("Created “{title}”.")),
        "#messages: {messages};\n{}",
        browser.describe().await
    );
    // The form resets in `hx-on::after-request`, which runs once the swap is done.
    browser
        .wait(
            "the form reset",
            "return document.querySelector('#new-note input[name=title]').value === '';",
            json!([]),
        )
        .await;
    let content = browser
        .js("return document.querySelector('#new-note textarea[name=content]').value;", json!([]))
        .await;
    assert_eq!(content, json!(""), "content not reset");
    // The POST, then the list's refetch that the create's live event triggers; that one
    // waits for the POST's swap (`hx-sync`), so the new row is listed once, not twice.
    let headers = browser
        .wait("two htmx requests", "return window.__csrfHeaders.length === 2;", json!([]))
        .await;
    assert_eq!(headers, json!(true));
    let listed = browser
        .js(
            "return [...document.querySelectorAll('#note-list li[id^=\"note-\"] a.title')]
                 .filter((a) => a.textContent.trim() === arguments[0]).length;",
            json!([title]),
        )
        .await;
    assert_eq!(listed, json!(1), "the new note's rows");
    // Tokens are masked anew for every use, so the header is compared with the layout's
    // `hx-headers`, not with the form field.
    let headers = browser.js("return window.__csrfHeaders;", json!([])).await;
    let hx_headers = browser
        .js(
            "return JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];",
            json!([]),
        )
        .await;
    assert!(
        hx_headers.as_str().is_some_and(|t| !t.is_empty()),
        "no X-CSRF-Token in the body's hx-headers: {hx_headers}"
    );
    assert_eq!(headers, json!([hx_headers, hx_headers]), "X-CSRF-Token of htmx's requests");
    let errors = browser.js("return window.__htmxErrors;", json!([])).await;
    assert_eq!(errors, json!([]), "htmx errors");
    eprintln!("browser: created {row} in place");
}

#[tokio::test]
async fn browser_inline_create_shows_validation_errors_in_place() {
    let _timing = Timing::start("inline validation");
    let dir = tempdir();
    let server = serve(dir.path());
    let browser = signed_in_browser(&server).await;

    browser.goto(&server.url("/notes")).await;
    browser.instrument().await;
    open_quick_note(&browser).await;
    // The browser itself would refuse an empty required field; let the server judge.
    browser
        .js(
            "document.querySelector('#new-note input[name=title]').removeAttribute('required');",
            json!([]),
        )
        .await;
    browser.type_into("#new-note textarea[name=content]", "kept after the error").await;
    browser.click("#new-note button[type=submit]").await;

    // 422 with HX-Retarget: #new-note and HX-Reswap: outerHTML: the form is replaced.
    browser
        .wait(
            "the validation error in the form",
            "const e = document.querySelector('#new-note .errors'); \
             return e && e.innerText.includes('Title is required.');",
            json!([]),
        )
        .await;
    browser.assert_same_document("the invalid inline create").await;
    assert_eq!(
        browser.js(&format!("return {ROW_COUNT};"), json!([])).await,
        json!(0),
        "a row was added to #note-list"
    );
    let state = browser
        .js(
            "const f = document.querySelector('#new-note');
             return { forms: document.querySelectorAll('#new-note').length,
                      invalid: f.querySelector('input[name=title]').getAttribute('aria-invalid'),
                      content: f.querySelector('textarea[name=content]').value,
                      open: document.querySelector('details.inline-create').open };",
            json!([]),
        )
        .await;
    assert_eq!(state["forms"], json!(1), "the form was not replaced in place: {state}");
    assert_eq!(state["invalid"], json!("true"), "title not marked invalid: {state}");
    assert_eq!(state["content"], json!("kept after the error"), "entered content lost: {state}");
    assert_eq!(state["open"], json!(true), "the Quick note section closed: {state}");
    let errors = browser.js("return window.__htmxErrors;", json!([])).await;
    assert_eq!(errors, json!([]), "htmx errors (422 is configured to swap, not to fail)");
}

#[tokio::test]
async fn browser_infinite_scroll_loads_every_page() {
    let _timing = Timing::start("infinite scroll");
    let dir = tempdir();
    generate_notes(dir.path(), 45);
    let server = serve(dir.path());
    let browser = signed_in_browser(&server).await;

    browser.goto(&server.url("/notes")).await;
    browser.instrument().await;
    assert_eq!(
        browser.js(&format!("return {ROW_COUNT};"), json!([])).await,
        json!(20),
        "rows on the first page"
    );
    let below = browser
        .js(
            "return document.querySelector('li.sentinel').getBoundingClientRect().top \
             > window.innerHeight;",
            json!([]),
        )
        .await;
    assert_eq!(
        below,
        json!(true),
        "the sentinel is visible without scrolling, the test cannot tell scrolling loaded the rows"
    );

    browser.js("document.querySelector('li.sentinel').scrollIntoView();", json!([])).await;
    browser
        .wait(
            "40 rows and a new sentinel",
            &format!("return {ROW_COUNT} === 40 && !!document.querySelector('li.sentinel')"),
            json!([]),
        )
        .await;

    browser.js("document.querySelector('li.sentinel').scrollIntoView();", json!([])).await;
    browser
        .wait(
            "45 rows and no sentinel",
            &format!("return {ROW_COUNT} === 45 && !document.querySelector('li.sentinel')"),
            json!([]),
        )
        .await;

    browser.assert_same_document("infinite scroll").await;
    let ids = browser
        .js(
            "return [...document.querySelectorAll('#note-list li[id^=\"note-\"]')]\
             .map((li) => li.id);",
            json!([]),
        )
        .await;
    let ids: Vec<&str> = ids.as_array().expect("ids").iter().map(|v| v.as_str().unwrap()).collect();
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 45, "duplicate rows: {ids:?}");
    let errors = browser.js("return window.__htmxErrors;", json!([])).await;
    assert_eq!(errors, json!([]), "htmx errors");
}

#[tokio::test]
async fn browser_boosted_edit_and_delete_show_flash_messages() {
    let _timing = Timing::start("boosted edit and delete");
    let dir = tempdir();
    let server = serve(dir.path());
    let id = create_note(&client(), &server, "Draft title", "Some content").await;
    let browser = signed_in_browser(&server).await;

    browser.goto(&server.url(&format!("/notes/{id}"))).await;
    browser.instrument().await;
    browser.click(&format!("a[href=\"/notes/{id}/edit\"]")).await;
    browser
        .wait(
            "the edit form",
            "return location.pathname === arguments[0] \
             && !!document.querySelector('#note-form input[name=title]');",
            json!([format!("/notes/{id}/edit")]),
        )
        .await;
    browser.assert_same_document("the boosted Edit link").await;

    let title = "Final title";
    browser.type_into("#note-form input[name=title]", title).await;
    browser.click("#note-form button[type=submit]").await;
    browser
        .wait(
            "the detail page with the new title and the flash message",
            "const h1 = document.querySelector('article h1');
             return location.pathname === arguments[0] && h1 && h1.innerText === arguments[1]
                 && document.querySelector('#messages').innerText.includes('Saved your changes.');",
            json!([format!("/notes/{id}"), title]),
        )
        .await;
    browser.assert_same_document("the boosted edit form (303 to the detail page)").await;
    assert_eq!(
        browser.js("return document.title;", json!([])).await,
        json!(format!("{title} · Burrow Notes")),
        "document title"
    );

    // hx-confirm asks with window.confirm(); accept it.
    browser.js("window.confirm = () => true;", json!([])).await;
    browser.click(&format!("form[action=\"/notes/{id}/delete\"] button[type=submit]")).await;
    browser
        .wait(
            "the list with the deletion message",
            "return location.pathname === '/notes' && !!document.querySelector('#note-list')
                 && document.querySelector('#messages').innerText.includes(arguments[0]);",
            json!([format!("Deleted “{title}”.")]),
        )
        .await;
    browser.assert_same_document("the boosted delete form (303 to /notes)").await;
    let source = browser.source().await;
    assert!(
        !source.contains(&format!("id=\"note-{id}\"")),
        "the deleted note is still listed:\n{}",
        short(&source)
    );
    let errors = browser.js("return window.__htmxErrors;", json!([])).await;
    assert_eq!(errors, json!([]), "htmx errors");
}

#[tokio::test]
async fn browser_screenshot_of_the_list_with_a_flash_message() {
    let _timing = Timing::start("screenshot");
    let dir = tempdir();
    let server = serve(dir.path());
    let http = client();
    for (title, content) in [
        ("Backups", "Use sqlite3 .backup or Litestream; never cp a live database file."),
        ("Deploying", "Copy the binary to the server and run it."),
        ("Reading", "The SQLite documentation on WAL mode is short and worth reading."),
    ] {
        create_note(&http, &server, title, content).await;
    }
    let browser = signed_in_browser(&server).await;

    browser.goto(&server.url("/notes")).await;
    browser.instrument().await;
    open_quick_note(&browser).await;
    browser.type_into("#new-note input[name=title]", "Shopping list").await;
    browser
        .type_into("#new-note textarea[name=content]", "Coffee beans, oat milk, bread, tomatoes.")
        .await;
    browser.click("#new-note button[type=submit]").await;
    browser
        .wait(
            "the new note and its flash message",
            &format!(
                "return {ROW_COUNT} === 4 && document.querySelector('#messages').innerText\
                 .includes('Created “Shopping list”.')"
            ),
            json!([]),
        )
        .await;
    assert!(browser.text("#messages").await.contains("Created “Shopping list”."));
    // Fold the Quick note form away, so the picture shows the notes.
    browser.click("details.inline-create > summary").await;
    browser
        .wait(
            "the Quick note form to close",
            "return !document.querySelector('details.inline-create').open;",
            json!([]),
        )
        .await;

    let png = browser.screenshot().await;
    let (width, height) = png_size(&png);
    let dir = target_dir().join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    let path = dir.join("notes.png");
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!(
        "browser: screenshot of /notes ({width}x{height}, {} bytes): {}",
        png.len(),
        path.display()
    );
    assert!(std::fs::metadata(&path).expect("screenshot written").len() > 0);
    assert!(width >= 800 && height > 0, "screenshot is {width}x{height}");
}

#[tokio::test]
async fn browser_phone_width_keeps_buttons_on_one_line() {
    let _timing = Timing::start("phone width");
    let dir = tempdir();
    let server = serve(dir.path());
    create_note(&client(), &server, "Phone", "A note, so the list is not empty.").await;
    let browser = signed_in_browser(&server).await;
    // An iPhone 12 to 15 is 390 CSS pixels wide.
    browser.set_window_size(390, 844).await;

    browser.goto(&server.url("/notes")).await;
    let layout = browser
        .js(
            "const one_line = (el) => {
                 const style = getComputedStyle(el);
                 const text = el.getBoundingClientRect().height
                     - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom)
                     - parseFloat(style.borderTopWidth) - parseFloat(style.borderBottomWidth);
                 return { text, line: parseFloat(style.lineHeight), rects: el.getClientRects().length };
             };
             return {
                 width: window.innerWidth,
                 scroll_width: document.documentElement.scrollWidth,
                 button: one_line(document.querySelector('.toolbar a.button[href=\"/notes/new\"]')),
                 nav: one_line(document.querySelector('.site-nav a[href=\"/notes/new\"]')),
             };",
            json!([]),
        )
        .await;
    let width = layout["width"].as_f64().expect("innerWidth");
    assert!(width <= 390.0, "the viewport is {width} px wide, not a phone's: {layout}");
    assert!(
        layout["scroll_width"].as_f64().is_some_and(|w| w <= width),
        "the page scrolls sideways: {layout}"
    );
    for what in ["button", "nav"] {
        let (text, line) = (layout[what]["text"].as_f64(), layout[what]["line"].as_f64());
        let (Some(text), Some(line)) = (text, line) else {
            panic!("no sizes for the New note {what}: {layout}");
        };
        // One line of text, within rounding; two lines would be twice the line height.
        assert!((text - line).abs() < 1.0, "the New note {what} wraps: {layout}");
        assert_eq!(layout[what]["rects"], 1, "the New note {what} is split: {layout}");
    }
}

/// Passkeys end to end in a real browser: the first account registered with a passkey (an
/// admin), signed out, signed in again with the passkey alone (no username typed), on a
/// server whose base URL is `http://localhost:PORT` (passkeys need a domain, not an IP).
#[tokio::test]
async fn browser_registers_a_passkey_and_signs_in_with_it() {
    let _timing = Timing::start("passkeys");
    let dir = tempdir();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let server = Launch::new(dir.path())
        .args(["--port", &port.to_string(), "--base-url", &base, "--database-dsn"])
        .arg(db_path(dir.path()))
        .start();
    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;

    browser.goto(&format!("{base}/auth/register")).await;
    browser.type_into("#auth-username", "Alice").await;
    browser.type_into("#auth-display-name", "Alice Liddell").await;
    browser.click("form[data-passkey-register] button").await;
    // Registered and signed in, the recovery codes are shown, once.
    let codes = "return location.pathname === '/auth/recovery-codes/' \
        ? [...document.querySelectorAll('ul.recovery-codes code')].map(c => c.textContent) : null;";
    let codes = browser.wait("the recovery codes after registering", codes, json!([])).await;
    let codes = codes.as_array().unwrap();
    assert_eq!(codes.len(), 8, "{codes:?}");
    assert!(codes.iter().all(|c| c.as_str().unwrap().len() == 14), "{codes:?}");
    let page = browser.text("main").await;
    assert!(page.contains("Welcome, Alice Liddell! Your passkey is registered."), "{page}");
    browser.click("main a.button").await;
    let signed_in =
        "return location.pathname === '/' && document.body.innerText.includes('Sign out');";
    browser.wait("the home page, signed in after registering", signed_in, json!([])).await;
    let credentials = browser.authenticator_credentials(&authenticator).await;
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(credentials[0]["isResidentCredential"], true, "a discoverable passkey");

    // Signed out, the login page offers the passkey by autofill (conditional mediation),
    // and the virtual authenticator, like a person picking it, answers at once.
    browser.click(".user-area button").await;
    let again = "return location.pathname === '/' \
        && document.body.innerText.includes('Signed in as Alice Liddell.') ? 'yes' : '';";
    browser.wait("signed in again by autofill after signing out", again, json!([])).await;

    // A browser without autofill for passkeys: the button does it.
    browser
        .post(
            "/goog/cdp/execute",
            json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": "PublicKeyCredential.isConditionalMediationAvailable = \
                                       async () => false;" },
            }),
        )
        .await;
    browser.goto(&format!("{base}/")).await;
    browser.click(".user-area button").await;
    browser
        .wait(
            "the login page after signing out",
            "return location.pathname === '/auth/login' \
             && document.body.innerText.includes('You are signed out.');",
            json!([]),
        )
        .await;
    browser.goto(&format!("{base}/auth/login?next=/notes")).await;
    browser.click("[data-passkey-login]").await;
    let signed_in_notes = "return location.pathname === '/notes' \
        && document.body.innerText.includes('Signed in as Alice Liddell.') \
        && document.body.innerText.includes('Sign out');";
    browser.wait("the notes page, signed in with the button", signed_in_notes, json!([])).await;
    let credentials = browser.authenticator_credentials(&authenticator).await;
    let count = credentials[0]["signCount"].as_u64().unwrap_or(0);
    assert!(count >= 2, "{credentials:?}");

    // A clone of the authenticator (its key copied, its counter behind) is refused.
    let mut clone = credentials[0].clone();
    let credential_id = clone["credentialId"].as_str().unwrap().to_string();
    let path = format!("/webauthn/authenticator/{authenticator}/credentials/{credential_id}");
    browser.command(reqwest::Method::DELETE, &path, None).await;
    clone["signCount"] = json!(1);
    browser.post(&format!("/webauthn/authenticator/{authenticator}/credential"), clone).await;
    browser.click(".user-area button").await;
    browser
        .wait(
            "the login page after signing out again",
            "return location.pathname === '/auth/login';",
            json!([]),
        )
        .await;
    browser.goto(&format!("{base}/auth/login")).await;
    browser.click("[data-passkey-login]").await;
    let refused = "const box = document.querySelector('[data-passkey-status]'); \
        return box && !box.hidden ? box.textContent : '';";
    let refused = browser.wait("the cloned passkey refused", refused, json!([])).await;
    assert!(refused.as_str().unwrap().contains("not accepted"), "{refused}");
    let whoami = browser.text(".user-area").await;
    assert!(whoami.contains("Sign in"), "still signed out: {whoami}");
    // For the reason that matters, in the audit log.
    let failed = server.wait_for_log("the failed sign-in", |l| l.contains("sign_in_failed"));
    assert!(failed.contains("compromised"), "{failed}");

    // The first account is the admin.
    let list = Launch::new(dir.path())
        .arg("--database-dsn")
        .arg(db_path(dir.path()))
        .args(["users", "list"])
        .run();
    assert!(
        list.stdout.lines().any(|l| l.split_whitespace().take(3).eq(["1", "alice", "admin"])),
        "{list:?}"
    );
}

/// How an operator lets someone in on a headless host: `server users create` and
/// `server users login-link`, the link opened in a browser, a passkey added on the
/// account page, then signing in with it; a second passkey added and the first deleted;
/// recovery codes made, one used to sign in (once only); a second account registered,
/// which is not an admin.
#[tokio::test]
async fn browser_signs_in_with_a_link_and_adds_a_passkey() {
    let _timing = Timing::start("login link and passkey");
    let dir = tempdir();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let cli = |args: &[&str]| {
        let out = Launch::new(dir.path())
            .args(["--base-url", &base, "--database-dsn"])
            .arg(db_path(dir.path()))
            .args(args)
            .run();
        assert_eq!(out.code(), Some(0), "{args:?}: {out:?}");
        out.stdout
    };
    cli(&["users", "create", "ops", "--display-name", "Operator"]);
    let printed = cli(&["users", "login-link", "ops"]);
    let link = printed.lines().find(|l| l.starts_with(&base)).expect("a link on the base URL");
    let _server = Launch::new(dir.path())
        .args(["--port", &port.to_string(), "--base-url", &base, "--database-dsn"])
        .arg(db_path(dir.path()))
        .start();
    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;

    browser.goto(link).await;
    browser.click("main form button").await;
    let keys = "return location.pathname === '/auth/credentials/' \
        && document.body.innerText.includes('no passkey yet');";
    browser.wait("the passkeys page after the link", keys, json!([])).await;
    browser.click("[data-passkey-add]").await;
    let added = "return document.body.innerText.includes('Passkey added.') \
        && document.querySelectorAll('table.credentials tbody tr').length === 1;";
    browser.wait("the new passkey in the list", added, json!([])).await;
    assert_eq!(browser.authenticator_credentials(&authenticator).await.len(), 1);

    // The link is spent; the passkey signs in (autofill answers on the login page).
    browser.click(".user-area button").await;
    let back = "return location.pathname === '/' \
        && document.body.innerText.includes('Signed in as Operator.');";
    browser.wait("signed in with the added passkey", back, json!([])).await;
    browser.goto(link).await;
    let spent = browser.text("main").await;
    assert!(spent.contains("invalid, already used or expired"), "{spent}");

    // A second passkey (a new device: this authenticator forgets the first, which the
    // server keeps), then the first one deleted; the last one has no delete button.
    browser.remove_authenticator_credentials(&authenticator).await;
    browser.goto(&format!("{base}/auth/credentials/")).await;
    browser.click("[data-passkey-add]").await;
    let two = "return document.querySelectorAll('table.credentials tbody tr').length === 2;";
    browser.wait("two passkeys in the list", two, json!([])).await;
    browser.click("table.credentials tbody tr:first-child form[action$='/delete'] button").await;
    let one = "return document.body.innerText.includes('your only passkey') \
        && document.querySelectorAll('table.credentials tbody tr').length === 1;";
    browser.wait("one passkey left, without a delete button", one, json!([])).await;

    // Recovery codes, made on the account's page and shown once; the device lost, a code
    // signs in, once.
    browser.goto(&format!("{base}/auth/recovery-codes/")).await;
    browser.click("main form button").await;
    let codes = "const c = [...document.querySelectorAll('ul.recovery-codes code')]; \
        return c.length === 8 ? c.map(e => e.textContent) : null;";
    let codes = browser.wait("8 new recovery codes", codes, json!([])).await;
    let code = codes[3].as_str().unwrap().to_string();
    browser.remove_authenticator_credentials(&authenticator).await;
    browser.click(".user-area button").await;
    let out = "return location.pathname === '/auth/login';";
    browser.wait("the login page, signed out", out, json!([])).await;
    recover(&browser, &base, "ops", &code.to_uppercase()).await;
    let left = "return location.pathname === '/auth/recovery-codes/' \
        && document.querySelector('main').innerText.includes('7 unused');";
    browser.wait("signed in with a recovery code, 7 left", left, json!([])).await;
    browser.goto(&format!("{base}/")).await;
    browser.click(".user-area button").await;
    browser.wait("signed out again", out, json!([])).await;
    recover(&browser, &base, "ops", &code).await;
    let refused = "return document.body.innerText.includes('do not match an unused code');";
    browser.wait("the used code refused", refused, json!([])).await;

    // Someone else registers: an account of role user (the operator's came first).
    browser.goto(&format!("{base}/auth/register")).await;
    browser.type_into("#auth-username", "second").await;
    browser.click("form[data-passkey-register] button").await;
    let registered = "return location.pathname === '/auth/recovery-codes/';";
    browser.wait("the second account registered", registered, json!([])).await;
    let list = cli(&["users", "list"]);
    let roles: Vec<Vec<&str>> =
        list.lines().skip(1).map(|l| l.split_whitespace().take(3).collect()).collect();
    assert!(roles.contains(&vec!["1", "ops", "admin"]), "{list}");
    assert!(roles.contains(&vec!["2", "second", "user"]), "{list}");
}

/// Signs in on the recovery page with `code` (the test then waits for the outcome).
async fn recover(browser: &Browser, base: &str, username: &str, code: &str) {
    browser.goto(&format!("{base}/auth/recovery")).await;
    browser.type_into("#recovery-username", username).await;
    browser.type_into("#recovery-code", code).await;
    browser.click("main form button").await;
}

/// Invite-only registration: an admin made from the shell, an invitation from `server
/// create-invite`, followed in the browser: the account gets the invite's email and the
/// `user` role, and the invitation is spent.
#[tokio::test]
async fn browser_registers_with_an_invitation_on_an_invite_only_server() {
    let _timing = Timing::start("invitation");
    let sink = SmtpSink::start(Security::None);
    let dir = tempdir();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let cli = |args: &[&str]| {
        let out = Launch::new(dir.path())
            .args(["--base-url", &base, "--auth-invite-only"])
            .args(sink.server_args())
            .arg("--database-dsn")
            .arg(db_path(dir.path()))
            .args(args)
            .run();
        assert_eq!(out.code(), Some(0), "{args:?}: {out:?}");
        out.stdout
    };
    cli(&["users", "create", "admin"]);
    let printed = cli(&["create-invite", "Newbie@Example.org"]);
    let printed_url =
        printed.lines().find(|l| l.contains("/auth/register?invite=")).expect("a URL");
    // Mailed too (mail is on): the test follows the link of the received mail.
    assert!(printed.contains("Mailed to newbie@example.org."), "{printed}");
    let mail = sink.wait_for(1).remove(0);
    assert_eq!(mail.rcpt_tos, ["newbie@example.org"]);
    let invite = &mail.link(&format!("{base}/auth/register?invite=")).expect("a link");
    assert_eq!(invite, printed_url);
    let _server = Launch::new(dir.path())
        .args(["--port", &port.to_string(), "--base-url", &base, "--auth-invite-only"])
        .args(sink.server_args())
        .arg("--database-dsn")
        .arg(db_path(dir.path()))
        .start();
    let browser = Browser::start().await;
    browser.add_virtual_authenticator().await;

    browser.goto(&format!("{base}/auth/register")).await;
    assert!(browser.text("main").await.contains("by invitation only"));
    browser.goto(invite).await;
    assert!(browser.text("main").await.contains("Invitation for newbie@example.org"));
    browser.type_into("#auth-username", "newbie").await;
    browser.click("form[data-passkey-register] button").await;
    let codes = "return location.pathname === '/auth/recovery-codes/';";
    browser.wait("the recovery codes after registering", codes, json!([])).await;

    // Spent: another visitor finds no valid invitation behind the URL.
    let again = client().get(invite).send().await.unwrap().text().await.unwrap();
    assert!(again.contains("no valid invitation"), "{again}");
    let list = cli(&["users", "list"]);
    let newbie = list.lines().find(|l| l.contains("newbie")).expect("newbie listed");
    let fields: Vec<&str> = newbie.split_whitespace().collect();
    assert_eq!(fields[1..5], ["newbie", "user", "yes", "newbie@example.org"], "{list}");
}

/// Email verification end to end, with a real SMTP server (aiosmtpd, STARTTLS with a test
/// CA and a password): a registration lands on "verify your email address", the link in
/// the received mail signs in and shows the recovery codes; a passkey sign-in before
/// verifying is refused and sent to the same page, with a new mail whose link signs in.
#[tokio::test]
async fn browser_verifies_an_email_address_with_the_link_of_a_received_mail() {
    let _timing = Timing::start("verification");
    let sink = SmtpSink::start(Security::Starttls { password: Some("mail secret") });
    let dir = tempdir();
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "mail secret\n").unwrap();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let server = Launch::new(dir.path())
        .args(["--port", &port.to_string(), "--base-url", &base, "--auth-require-verification"])
        .args(sink.server_args())
        .arg(format!("--smtp-password-file={}", password.display()))
        .arg("--database-dsn")
        .arg(db_path(dir.path()))
        .start();
    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;
    let link_of = |mail: &burrow_test::smtp::Received| {
        assert!(mail.tls && mail.auth.as_deref() == Some(burrow_test::smtp::USER), "{mail:?}");
        mail.link(&format!("{base}/auth/verify-email?token=")).expect("a verification link")
    };

    browser.goto(&format!("{base}/auth/register")).await;
    browser.type_into("#auth-username", "ann").await;
    browser.type_into("#auth-email", "ann@example.org").await;
    browser.click("form[data-passkey-register] button").await;
    let pending = "return location.pathname === '/auth/verify-pending' \
        && document.querySelector('main').innerText.includes('ann@example.org');";
    browser.wait("the verify-pending page after registering", pending, json!([])).await;
    let mail = sink.wait_for(1).remove(0);
    assert_eq!(mail.rcpt_tos, ["ann@example.org"]);
    browser.goto(&link_of(&mail)).await;
    let codes = "return location.pathname === '/auth/recovery-codes/' \
        && document.querySelectorAll('ul.recovery-codes code').length === 8;";
    browser.wait("the recovery codes after verifying", codes, json!([])).await;
    assert!(browser.text("main").await.contains("Your email address is verified. Welcome, ann!"));

    // Bob registers in the same browser, with a passkey of his own, and tries to sign in
    // before verifying: refused, sent to the page, and mailed a new link.
    browser.remove_authenticator_credentials(&authenticator).await;
    browser.goto(&format!("{base}/")).await;
    browser.click(".user-area button").await;
    let out = "return !!document.querySelector('.user-area a[href=\"/auth/login\"]');";
    browser.wait("signed out", out, json!([])).await;
    browser.goto(&format!("{base}/auth/register")).await;
    browser.type_into("#auth-username", "bob").await;
    browser.type_into("#auth-email", "bob@example.org").await;
    browser.click("form[data-passkey-register] button").await;
    let pending = "return location.pathname === '/auth/verify-pending' \
        && document.querySelector('main').innerText.includes('bob@example.org');";
    browser.wait("bob's verify-pending page", pending, json!([])).await;
    sink.wait_for(2);
    // The login page's autofill answers with Bob's passkey at once.
    browser.goto(&format!("{base}/auth/login")).await;
    browser.wait("the refused sign-in, sent to verify", pending, json!([])).await;
    let mails = sink.wait_for(3);
    assert!(mails[1..].iter().all(|m| m.rcpt_tos == ["bob@example.org"]), "{mails:?}");
    browser.goto(&link_of(&mails[2])).await;
    let signed_in = "return document.body.innerText.includes('Welcome, bob!') \
        && document.body.innerText.includes('Sign out');";
    browser.wait("bob signed in by the link", signed_in, json!([])).await;
    let log = server.log().join("\n");
    assert!(!log.contains("mail secret") && !log.contains("token="), "{log}");
}

/// A visitor who picks German with the footer's switcher registers in German: the pages,
/// the texts passkeys.js shows (the server's JSON errors included) and the verification
/// mail are German, and German is stored as the account's language.
#[tokio::test]
async fn browser_registers_in_german_and_gets_a_german_mail() {
    let _timing = Timing::start("german registration");
    let sink = SmtpSink::start(Security::None);
    let dir = tempdir();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let launch = Launch::new(dir.path()).arg("--database-dsn").arg(db_path(dir.path()));
    let server = launch
        .clone()
        .args(["--port", &port.to_string(), "--base-url", &base, "--auth-require-verification"])
        .args(sink.server_args())
        .start();
    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;

    browser.goto(&format!("{base}/auth/register")).await;
    browser.js("document.querySelector('#language-switch').value = 'de';", json!([])).await;
    browser.click(".language-switch button").await;
    // The switcher's form is boosted: htmx swaps the body in (`<html lang>` stays).
    let german = "return location.pathname === '/auth/register' \
        && document.querySelector('h1').innerText === 'Konto anlegen';";
    browser.wait("the register page in German", german, json!([])).await;
    let cancelled = "return document.querySelector('[data-passkey-status]').dataset.cancelled;";
    let cancelled = browser.js(cancelled, json!([])).await;
    assert_eq!(cancelled, "Die Passkey-Anfrage wurde abgebrochen oder ist abgelaufen.");
    browser.type_into("#auth-username", "ann").await;
    browser.type_into("#auth-email", "ann@example.org").await;
    browser.click("form[data-passkey-register] button").await;
    let pending = "return location.pathname === '/auth/verify-pending' \
        && document.querySelector('main').innerText.includes('Link an ann@example.org');";
    browser.wait("the German verify-pending page", pending, json!([])).await;

    let mail = sink.wait_for(1).remove(0);
    assert_eq!(mail.subject, "Bestätigen Sie Ihre E-Mail-Adresse für Burrow Notes", "{mail:?}");
    assert!(mail.text.starts_with("Hallo ann,"), "{}", mail.text);
    assert!(mail.html.contains(">Meine E-Mail-Adresse bestätigen</a>"), "{}", mail.html);
    let users = launch.clone().args(["users", "list"]).run();
    let ann = users.stdout.lines().find(|l| l.contains(" ann ")).unwrap_or_default();
    assert!(ann.trim_end().ends_with(" de"), "ann's language: {users:?}");

    let link = mail.link(&format!("{base}/auth/verify-email?token=")).expect("a link");
    browser.goto(&link).await;
    let codes = "return location.pathname === '/auth/recovery-codes/' \
        && document.querySelectorAll('ul.recovery-codes code').length === 8;";
    browser.wait("the recovery codes after verifying", codes, json!([])).await;
    let main = browser.text("main").await;
    assert!(main.contains("Ihre E-Mail-Adresse ist bestätigt. Willkommen, ann!"), "{main}");

    // The server's refusal, as passkeys.js shows it: in German too. (Without its passkey,
    // the login page's autofill cannot sign ann in again at once.)
    browser.remove_authenticator_credentials(&authenticator).await;
    browser.click(".user-area button").await;
    let out = "return !!document.querySelector('.user-area a[href=\"/auth/login\"]');";
    browser.wait("signed out", out, json!([])).await;
    browser.goto(&format!("{base}/auth/register")).await;
    browser.type_into("#auth-username", "ann").await;
    browser.type_into("#auth-email", "other@example.org").await;
    browser.click("form[data-passkey-register] button").await;
    let taken = "const box = document.querySelector('[data-passkey-status]'); \
        return !box.hidden && box.innerText;";
    let shown = browser.wait("the refusal in the status box", taken, json!([])).await;
    assert_eq!(shown, "Dieser Benutzername oder diese E-Mail-Adresse ist schon vergeben.");
    drop(server);
}

/// A passkey ceremony is not lost to a SIGHUP hand-over: registration begun on the old
/// process (its challenge kept in the database) is finished on the new one, after the old
/// one has exited, and the account gets its recovery codes. The authenticator's answer is
/// held back (by wrapping `navigator.credentials.create`) until the hand-over is over.
#[tokio::test]
async fn browser_finishes_a_passkey_registration_begun_before_a_sighup() {
    use crate::support::procs::{Cleanup, read_pid_file, stop, wait_for_successor, wait_gone};

    let _timing = Timing::start("passkey across a SIGHUP");
    let dir = tempdir();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let pid_file = dir.path().join("server.pid");
    let server = Launch::new(dir.path())
        .args(["--port", &port.to_string(), "--base-url", &base, "--database-dsn"])
        .arg(db_path(dir.path()))
        .arg("--pid-file")
        .arg(&pid_file)
        .args(["--detach", "false"])
        .start();
    let _cleanup = Cleanup::new(dir.path());
    let old = read_pid_file(&pid_file).expect("PID file after ready");
    let browser = Browser::start().await;
    browser.add_virtual_authenticator().await;

    browser.goto(&format!("{base}/auth/register")).await;
    let hold = "const create = navigator.credentials.create.bind(navigator.credentials);
        navigator.credentials.create = async (options) => {
            window.__asked = true;
            while (!window.__go) await new Promise((r) => setTimeout(r, 20));
            return create(options);
        };";
    browser.js(hold, json!([])).await;
    browser.type_into("#auth-username", "Carol").await;
    browser.click("form[data-passkey-register] button").await;
    // The old process answered /auth/register/begin; the authenticator is being asked.
    browser.wait("the registration begun", "return window.__asked === true;", json!([])).await;

    assert!(crate::support::signal(old, "HUP"), "kill -HUP {old}");
    let new = wait_for_successor(&pid_file, port, old);
    wait_gone(old);
    browser.js("window.__go = true;", json!([])).await;

    let codes = "return location.pathname === '/auth/recovery-codes/' \
        ? [...document.querySelectorAll('ul.recovery-codes code')].map(c => c.textContent) : null;";
    let codes = browser.wait("the recovery codes, from the new process", codes, json!([])).await;
    assert_eq!(codes.as_array().map(Vec::len), Some(8), "{codes}");
    let page = browser.text("main").await;
    assert!(page.contains("Your passkey is registered."), "{page}");
    // The finish request reached the new process: the old one was gone before it was sent.
    let finished =
        server.log().iter().any(|l| l.contains("/auth/register/finish") && l.contains("200"));
    assert!(
        finished,
        "no successful /auth/register/finish in the log:\n{}",
        server.log().join("\n")
    );
    stop(new);
}

/// Adds `username` with `notes` generated notes to the database in `dir` (CLI commands).
fn user_with_notes(dir: &Path, username: &str, notes: usize) {
    let launch = Launch::new(dir).arg("--database-dsn").arg(db_path(dir));
    let created = launch.clone().args(["users", "create", username]).run();
    assert_eq!(created.code(), Some(0), "{created:?}");
    let count = notes.to_string();
    let out = launch.args(["generate-notes", "--user", username, "--count", &count]).run();
    assert_eq!(out.code(), Some(0), "generate-notes: {out:?}");
}

/// JavaScript: the rows of the admin's list.
const ADMIN_ROWS: &str = "document.querySelectorAll('table.admin-table tbody tr td.select').length";

#[tokio::test]
async fn browser_admin_lists_edits_deletes_and_exports_as_staff() {
    let _timing = Timing::start("admin");
    let dir = tempdir();
    // The tester (first account: an admin) with 25 notes; Carol and Dave with 2 and 3.
    generate_notes(dir.path(), 25);
    user_with_notes(dir.path(), "carol", 2);
    user_with_notes(dir.path(), "dave", 3);
    let server = serve(dir.path());
    let browser = signed_in_browser(&server).await;

    // The list: 20 of 30 on the first page; paging, sorting and filtering are boosted links.
    browser.goto(&server.url("/admin/notes/")).await;
    browser.instrument().await;
    let page = |rows: usize, of: &str| {
        format!(
            "return {ADMIN_ROWS} === {rows} && document.querySelector('h1 small').innerText === '{of}';"
        )
    };
    browser.wait("20 of 30 notes", &page(20, "30"), json!([])).await;
    browser.click("nav.pagination a[rel=next]").await;
    browser.wait("the last 10", &page(10, "30"), json!([])).await;
    browser.click("th a[href*='sort=title']").await;
    browser
        .wait(
            "sorted by title, ascending",
            "const th = document.querySelector('th[aria-sort]');
             return th && th.getAttribute('aria-sort') === 'ascending' && location.search === '?sort=title';",
            json!([]),
        )
        .await;
    let titles = "return [...document.querySelectorAll('table.admin-table tbody td:nth-child(2)')].map(td => td.innerText);";
    let ascending = browser.js(titles, json!([])).await;
    browser.click("th[aria-sort] a").await;
    browser
        .wait(
            "sorted by title, descending",
            "return document.querySelector('th[aria-sort]')?.getAttribute('aria-sort') === 'descending';",
            json!([]),
        )
        .await;
    let descending = browser.js(titles, json!([])).await;
    let order = |titles: &Value| -> Vec<String> {
        titles.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
    };
    let (up, down) = (order(&ascending), order(&descending));
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "ascending: {up:?}");
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "descending: {down:?}");
    assert!(down[0] >= up[up.len() - 1], "the other end of the same list");
    browser.click(".admin-filters a[href*='user_id=']:not(.active)").await;
    browser
        .wait(
            "one author's notes",
            "const active = document.querySelector('.admin-filters a.active');
             return location.search.includes('user_id=') && active && active.innerText !== 'All'
                 && document.querySelectorAll('table.admin-table tbody td.select').length < 20;",
            json!([]),
        )
        .await;
    browser.assert_same_document("boosted paging, sorting and filtering").await;

    // Search: a word of one note's title.
    let first_title = ascending[0].as_str().unwrap().to_string();
    let word = first_title.split_whitespace().max_by_key(|w| w.len()).unwrap().to_string();
    browser.goto(&server.url("/admin/notes/")).await;
    browser.type_into("#admin-q", &word).await;
    browser.click(".admin-search button").await;
    browser
        .wait(
            "the search's results",
            "return location.search.startsWith('?q=') && [...document.querySelectorAll('table.admin-table tbody td:nth-child(2)')]
                 .some(td => td.innerText === arguments[0]);",
            json!([first_title]),
        )
        .await;

    // Create: the app's rules answer inline (422), then "save and continue".
    browser.goto(&server.url("/admin/notes/new")).await;
    browser.instrument().await;
    browser.click("form.admin-form button[name=_continue]").await;
    browser
        .wait(
            "the title's error",
            "return document.querySelector('#title-error')?.innerText === 'Title is required.';",
            json!([]),
        )
        .await;
    browser.type_into("#title", "Made in the admin").await;
    browser.type_into("#content", "first version").await;
    browser.click("form.admin-form button[name=_continue]").await;
    browser
        .wait(
            "the new note's page with the flash message",
            "return /^\\/admin\\/notes\\/\\d+$/.test(location.pathname)
                 && document.querySelector('h1').innerText === 'Made in the admin'
                 && document.querySelector('#messages').innerText.includes('Created note');",
            json!([]),
        )
        .await;

    // Conflict: another tab saves first (a fetch with this page's form); this one's save is
    // refused with a message and the values typed here.
    browser
        .js(
            "const data = new FormData(document.querySelector('form.admin-form'));
             data.set('content', 'saved in another tab');
             return fetch(location.pathname, {method: 'POST', body: new URLSearchParams(data)}).then(r => r.status);",
            json!([]),
        )
        .await;
    browser.type_into("#content", "second version").await;
    browser.click("form.admin-form button[name=_save]").await;
    browser
        .wait(
            "the conflict message",
            "return document.querySelector('.errors')?.innerText.includes('changed by someone else')
                 && document.querySelector('#content').value.trim() === 'second version';",
            json!([]),
        )
        .await;
    // Saving again overwrites knowingly; the history shows both changes.
    browser.click("form.admin-form button[name=_continue]").await;
    browser
        .wait(
            "saved, with two changes in the history",
            "return document.querySelector('#messages').innerText.includes('Saved note')
                 && document.querySelectorAll('.admin-history li').length === 3;",
            json!([]),
        )
        .await;

    // Bulk delete of two users, with the notes that go with them counted first.
    browser.goto(&server.url("/admin/users/?sort=username")).await;
    browser.instrument().await;
    for name in ["carol", "dave"] {
        let checkbox = browser
            .js(
                "const row = [...document.querySelectorAll('table.admin-table tbody tr')]
                     .find(tr => tr.innerText.includes(arguments[0]));
                 return row.querySelector('input[name=ids]').value;",
                json!([name]),
            )
            .await;
        browser.click(&format!("input[name=ids][value='{}']", checkbox.as_str().unwrap())).await;
    }
    browser.js("document.querySelector('#admin-action').value = 'delete';", json!([])).await;
    browser.click(".admin-actions button").await;
    let effects = browser
        .wait(
            "the confirmation with the cascade",
            "const effects = document.querySelector('.admin-effects');
             return document.querySelectorAll('.admin-objects li').length === 2 && effects && effects.innerText;",
            json!([]),
        )
        .await;
    assert!(effects.as_str().unwrap().contains("5 notes rows (by user_id)"), "{effects}");
    browser.click(".card form button[type=submit]").await;
    browser
        .wait(
            "the users list without them",
            "return document.querySelector('#messages').innerText.includes('Deleted 2 users.')
                 && !document.querySelector('table.admin-table').innerText.includes('carol');",
            json!([]),
        )
        .await;

    // Exports of the whole (sorted) set, opened and parsed as a program would.
    let exported = browser
        .js(
            "return Promise.all([
                 fetch('/admin/notes/export.csv?sort=title').then(r => r.text()),
                 fetch('/admin/notes/export.json?sort=title').then(r => r.json()),
             ]).then(([csv, json]) => [csv.trim().split('\\r\\n'), json]);",
            json!([]),
        )
        .await;
    let lines = exported[0].as_array().unwrap();
    let rows = exported[1].as_array().unwrap();
    assert_eq!(lines.len(), 27, "a header and 26 notes: {lines:?}");
    assert!(lines[0].as_str().unwrap().starts_with("id,title,content,"));
    assert_eq!(rows.len(), 26);
    let sorted: Vec<&str> = rows.iter().map(|r| r["title"].as_str().unwrap()).collect();
    let mut expected = sorted.clone();
    expected.sort();
    assert_eq!(sorted, expected, "the export keeps the list's order");
    let errors = browser.js("return window.__htmxErrors;", json!([])).await;
    assert_eq!(errors, json!([]), "htmx errors");
}
