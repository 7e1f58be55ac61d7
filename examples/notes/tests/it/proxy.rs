//! Behind a reverse proxy, and rate limits, through the real binary: forwarding headers
//! (`X-Forwarded-For`/`-Proto`/`-Host`, `Forwarded`, `X-Real-IP`) are believed only from
//! `--trusted-proxies` (the tests' client is 127.0.0.1, trusted or not), which decides
//! the client IP in the access log and the rate limits, the `Secure`/`__Host-` cookies and
//! the CSRF origin check; `--rate-limit` and the auth app's limits answer 429 with
//! `Retry-After` (a page, or JSON for JSON clients) and let the client in again later.
//! docs/guide/deployment.md ("Behind a reverse proxy") and docs/guide/rate-limits.md.

use std::time::Duration;

use crate::support::failure::Failure;
use crate::support::{Launch, Server, client, cookie_set_by, csrf_token, header, tempdir};

/// A GET with `headers`; status, `Set-Cookie` values and body.
async fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::of(request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))).await
}

/// A POST of `/auth/logout` (a form any visitor may send, answered 303 once the CSRF check
/// passes) with `headers`.
async fn logout_with(server: &Server, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().post(server.url("/auth/logout")).form(&[("x", "y")]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::of(request.send().await.expect("POST /auth/logout")).await
}

struct Answer {
    status: u16,
    set_cookies: Vec<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    async fn of(res: reqwest::Response) -> Answer {
        let set_cookies = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ASCII cookie").to_string())
            .collect();
        let retry_after = header(&res, "retry-after");
        let content_type = header(&res, "content-type");
        Answer {
            status: res.status().as_u16(),
            set_cookies,
            retry_after,
            content_type,
            body: res.text().await.expect("body"),
        }
    }

    /// The whole `Set-Cookie` value of the cookie `name`.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .find(|c| cookie_set_by(c).map(|p| p.0) == Some(name))
    }

    /// `name=value` of the cookie `name`, for a `Cookie` header.
    fn cookie_pair(&self, name: &str) -> String {
        let set =
            self.cookie(name).unwrap_or_else(|| panic!("no {name} cookie: {:?}", self.set_cookies));
        set.split(';').next().unwrap().to_string()
    }
}

/// The access log line of the request for `path` (each test asks for its paths once).
fn access_line(server: &Server, path: &str) -> String {
    let field = format!("path=\"{path}\"");
    server.wait_for_log(&format!("for {path}"), |l| {
        l.contains("request method=") && l.contains(&field)
    })
}

fn start(args: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(args).start();
    (server, dir)
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // 127.0.0.1 is not among the trusted proxies.
    let (server, _dir) = start(&[
        "--client-ip-mode",
        "x-forwarded-for",
        "--trusted-proxies",
        "10.0.0.0/8",
        "--rate-limit",
        "4/1m",
    ]);
    // Claims of a new client address each time, of https and of another host.
    let send = |n: u8, path: &'static str| {
        let ip = format!("203.0.113.{n}");
        let server = &server;
        async move {
            let headers = [
                ("X-Forwarded-For", ip.as_str()),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "example.com"),
            ];
            get_with(server, path, &headers).await
        }
    };
    // 1: the recovery page; the CSRF cookie is an http one (the claimed https is not believed).
    let page = send(1, "/auth/recovery").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page.cookie("_csrf").expect("an http CSRF cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(page.cookie("__Host-_csrf").is_none(), "{:?}", page.set_cookies);
    let line = access_line(&server, "/auth/recovery");
    assert!(line.contains("client=127.0.0.1") && !line.contains("proxy="), "{line}");
    assert!(!line.contains("203.0.113"), "{line}");

    // 2: a form posted from "https://example.com" through the spoofed headers: refused.
    let token = csrf_token(&page.body).expect("a token on the recovery page");
    let cookie = page.cookie_pair("_csrf");
    let refused = logout_with(
        &server,
        &[
            ("X-Forwarded-For", "203.0.113.2"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "example.com"),
            ("Origin", "https://example.com"),
            ("Cookie", &cookie),
            ("X-CSRF-Token", &token),
        ],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // 3, 4: a new "client" each time, but the limit counts the real peer.
    assert_eq!(send(3, "/untrusted-3").await.status, 404);
    assert_eq!(send(4, "/untrusted-4").await.status, 404);
    let limited = send(5, "/untrusted-5").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.retry_after.is_some());
    let line = access_line(&server, "/untrusted-5");
    assert!(line.contains("status=429") && line.contains("client=127.0.0.1"), "{line}");
    // Health checks are never limited.
    assert_eq!(get_with(&server, "/healthz/live", &[]).await.status, 200);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_honoured() {
    let (server, _dir) = start(&[
        "--client-ip-mode",
        "x-forwarded-for",
        "--trusted-proxies",
        "127.0.0.1/32",
        "--rate-limit",
        "3/1m",
    ]);
    let through_proxy = |xff: &'static str, https: bool| {
        let mut headers = vec![("X-Forwarded-For", xff)];
        if https {
            headers.extend([("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "example.com")]);
        }
        headers
    };
    let line = server.wait_for_log("the proxies line", |l| l.contains("trusted proxies"));
    assert!(line.contains("x-forwarded-for") && line.contains("127.0.0.1/32"), "{line}");
    // The client claimed 198.51.100.7; the proxy appended the address it saw.
    let page =
        get_with(&server, "/auth/recovery", &through_proxy("198.51.100.7, 203.0.113.9", true))
            .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page.cookie("__Host-_csrf").expect("an https CSRF cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let line = access_line(&server, "/auth/recovery");
    assert!(line.contains("client=203.0.113.9 proxy=127.0.0.1"), "{line}");

    // The browser at https://example.com posts a form: its origin is this site.
    let token = csrf_token(&page.body).expect("a token");
    let cookie = page.cookie_pair("__Host-_csrf");
    let mut headers = through_proxy("203.0.113.9", true);
    headers.extend([
        ("Origin", "https://example.com"),
        ("Cookie", &cookie),
        ("X-CSRF-Token", &token),
    ]);
    let posted = logout_with(&server, &headers).await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    // Signing out rotates the CSRF secret: the new cookie is an https one too.
    let rotated = posted.cookie("__Host-_csrf").expect("a rotated CSRF cookie");
    assert!(rotated.contains("; Secure"), "{rotated}");
    assert!(posted.set_cookies.iter().all(|c| c.contains("; Secure")), "{:?}", posted.set_cookies);
    // Without the proxy's word on https and the host, the same origin is another site.
    let mut headers = through_proxy("203.0.113.10", false);
    headers.extend([
        ("Origin", "https://example.com"),
        ("Cookie", &cookie),
        ("X-CSRF-Token", &token),
    ]);
    assert_eq!(logout_with(&server, &headers).await.status, 403);
    let plain = get_with(&server, "/auth/recovery", &through_proxy("203.0.113.11", false)).await;
    let cookie = plain.cookie("_csrf").expect("an http CSRF cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");

    // The limit counts the forwarded client: 203.0.113.9 has made two requests.
    assert_eq!(
        get_with(&server, "/trusted-3", &through_proxy("203.0.113.9", false)).await.status,
        404
    );
    let limited = get_with(&server, "/trusted-4", &through_proxy("203.0.113.9", false)).await;
    assert_eq!(limited.status, 429);
    let line = access_line(&server, "/trusted-4");
    assert!(line.contains("status=429") && line.contains("client=203.0.113.9"), "{line}");
    // Others are not limited by it, the proxy's own requests neither.
    assert_eq!(
        get_with(&server, "/trusted-5", &through_proxy("203.0.113.12", false)).await.status,
        404
    );
    assert_eq!(get_with(&server, "/trusted-6", &[]).await.status, 404);
    let line = access_line(&server, "/trusted-6");
    assert!(line.contains("client=127.0.0.1") && !line.contains("proxy="), "{line}");
}

#[tokio::test]
async fn forwarded_and_x_real_ip_modes() {
    let (server, _dir) =
        start(&["--client-ip-mode", "forwarded", "--trusted-proxies", "127.0.0.1"]);
    let forwarded =
        "for=198.51.100.1;proto=http, for=\"[2001:db8::7]:4711\";proto=https;host=example.com";
    let page = get_with(&server, "/auth/recovery", &[("Forwarded", forwarded)]).await;
    assert_eq!(page.status, 200);
    assert!(page.cookie("__Host-_csrf").is_some_and(|c| c.contains("; Secure")));
    let line = access_line(&server, "/auth/recovery");
    assert!(line.contains("client=2001:db8::7 proxy=127.0.0.1"), "{line}");
    // X-Forwarded-* are not read in this mode.
    let other = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")];
    let page = get_with(&server, "/forwarded-2", &other).await;
    assert!(page.set_cookies.iter().all(|c| !c.contains("__Host-")), "{:?}", page.set_cookies);
    let line = access_line(&server, "/forwarded-2");
    assert!(line.contains("client=127.0.0.1") && !line.contains("203.0.113.9"), "{line}");

    let (server, _dir) =
        start(&["--client-ip-mode", "x-real-ip", "--trusted-proxies", "127.0.0.0/8,::1"]);
    get_with(&server, "/real-1", &[("X-Real-IP", "192.0.2.61"), ("X-Forwarded-For", "1.2.3.4")])
        .await;
    let line = access_line(&server, "/real-1");
    assert!(line.contains("client=192.0.2.61 proxy=127.0.0.1"), "{line}");
    get_with(&server, "/real-2", &[("X-Real-IP", "not an address")]).await;
    let line = access_line(&server, "/real-2");
    assert!(line.contains("client=127.0.0.1") && !line.contains("proxy="), "{line}");
}

#[tokio::test]
async fn over_the_rate_limit_429_then_in_again_after_retry_after() {
    let (server, _dir) = start(&["--rate-limit", "3/2s"]);
    for _ in 0..3 {
        assert_eq!(get_with(&server, "/", &[]).await.status, 200);
    }
    let page = get_with(&server, "/", &[]).await;
    assert_eq!(page.status, 429);
    assert!(page.content_type.as_deref().is_some_and(|t| t.starts_with("text/html")));
    assert!(page.body.contains("Too many requests"), "{}", page.body);
    let json = get_with(&server, "/", &[("Accept", "application/json")]).await;
    assert_eq!(json.status, 429);
    let body: serde_json::Value = serde_json::from_str(&json.body).expect("a JSON error");
    assert_eq!(body["code"], 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Too many requests"), "{body}");
    let wait: u64 = json.retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "one request comes back every 2/3 s: {wait}");
    assert_eq!(get_with(&server, "/healthz/ready", &[]).await.status, 200);
    // Waiting as told lets the client in again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get_with(&server, "/", &[]).await.status, 200);
}

/// POSTs a wrong recovery code for `username`; the status.
async fn guess_code(server: &Server, username: &str) -> u16 {
    let page = get_with(server, "/auth/recovery", &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = csrf_token(&page.body).expect("a token");
    let cookie = page.cookie_pair("_csrf");
    let res = client()
        .post(server.url("/auth/recovery"))
        .header("Cookie", cookie)
        .form(&[("username", username), ("code", "aaaa-bbbb-cccc"), ("csrf_token", &token)])
        .send()
        .await
        .expect("POST /auth/recovery");
    res.status().as_u16()
}

#[tokio::test]
async fn the_auth_limits_are_settings() {
    let (server, _dir) =
        start(&["--auth-rate-limit-codes", "2/1m", "--auth-rate-limit-codes-per-account", "off"]);
    assert_eq!(guess_code(&server, "alice").await, 422);
    assert_eq!(guess_code(&server, "bob").await, 422);
    assert_eq!(guess_code(&server, "carol").await, 429);

    // Off: more guesses than the defaults allow (10 per IP, 5 per account).
    let (server, _dir) =
        start(&["--auth-rate-limit-codes", "off", "--auth-rate-limit-codes-per-account", "off"]);
    for attempt in 0..12 {
        assert_eq!(guess_code(&server, "alice").await, 422, "attempt {attempt}");
    }
}

#[test]
fn bad_proxy_and_rate_settings_stop_the_start() {
    for (args, words) in [
        (&["--trusted-proxies", "10.0.0.0/33"][..], &["--trusted-proxies", "CIDR"][..]),
        (&["--trusted-proxies", "10.0.0.1,proxy.internal"], &["--trusted-proxies"]),
        (&["--client-ip-mode", "x-forwarded-for"], &["--client-ip-mode", "--trusted-proxies"]),
        (&["--client-ip-mode", "true-client-ip"], &["--client-ip-mode"]),
        (&["--rate-limit", "lots"], &["--rate-limit", "COUNT/WINDOW"]),
        (&["--auth-rate-limit-codes", "5"], &["--auth-rate-limit-codes"]),
    ] {
        let dir = tempdir();
        let out = Launch::serve(dir.path()).args(args).run();
        Failure::of(&out).mentions(words).no_database(dir.path()).check();
    }
}

#[test]
fn check_warns_when_every_address_is_a_trusted_proxy() {
    let dir = tempdir();
    let check = |trusted: &str| {
        let args = ["check", "--client-ip-mode", "x-forwarded-for", "--trusted-proxies", trusted];
        Launch::serve(dir.path()).args(args).run()
    };
    let out = check("10.0.0.0/8,0.0.0.0/0");
    assert_eq!(out.code(), Some(1), "{out:?}");
    let problems: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("✗ ")).collect();
    assert!(problems.iter().any(|l| l.contains("--trusted-proxies includes 0.0.0.0/0")), "{out:?}");
    let out = check("127.0.0.1/32");
    assert!(!out.stdout.contains("--trusted-proxies"), "{out:?}");
}
