//! What a browser must send for an unsafe request to pass the CSRF check: the cookies of a
//! loaded form and its token; and reading cookies and tokens out of answers.

use super::launch::Launch;
use super::raw::{RawRequest, raw_get};

/// What a browser holds after loading a form: its cookies (among them the `_csrf` cookie)
/// and the form's CSRF token, which every POST, PUT, PATCH and DELETE must carry.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// `name=value; name=value`, for a `Cookie` header.
    pub cookie: String,
    /// The `csrf_token` field of the form.
    pub token: String,
}

/// The account [`Credentials::sign_in`] signs in as.
pub const TESTER: &str = "tester";

impl Credentials {
    /// A browser signed in on the server at `port`, whose database `launch` names (notes
    /// belong to their author): the account [`TESTER`] (made with `server users create`
    /// if missing), signed in by a `server users login-link` opened and confirmed as a
    /// browser does, then the new-note form loaded for its CSRF token.
    pub fn sign_in(launch: &Launch, port: u16) -> Credentials {
        Credentials::sign_in_as(launch, port, TESTER)
    }

    /// [`Credentials::sign_in`] as `username`.
    pub fn sign_in_as(launch: &Launch, port: u16, username: &str) -> Credentials {
        let path = login_link(launch, username);
        let token = path.split_once("?token=").expect("a token").1.to_string();
        let page = Credentials::fetch_from(port, &path);
        let body = format!("token={token}&csrf_token={}", page.token);
        let done = RawRequest::post_form(port, "/auth/link", body)
            .header("Cookie", &page.cookie)
            .send()
            .expect("POST /auth/link");
        assert_eq!(done.status, 303, "signing in with the link: {}", done.text());
        // The session cookie the sign-in set, with the (rotated) CSRF cookie.
        let cookie = merge_cookies(&page.cookie, &done.headers);
        let form = RawRequest::get(port, "/notes/new").header("Cookie", &cookie).send();
        let form = form.expect("GET /notes/new");
        assert_eq!(form.status, 200, "GET /notes/new, signed in: {}", form.text());
        let cookie = merge_cookies(&cookie, &form.headers);
        Credentials { cookie, token: csrf_token(&form.text()).unwrap_or_default() }
    }

    /// The cookies and CSRF token of the form at `path`, loaded as a browser would, on a
    /// new connection, without signing in.
    pub fn fetch_from(port: u16, path: &str) -> Credentials {
        let res = raw_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let html = res.text();
        assert_eq!(res.status, 200, "GET {path}: {html}");
        let cookie = merge_cookies("", &res.headers);
        Credentials { cookie, token: csrf_token(&html).unwrap_or_default() }
    }

    /// The `Cookie` header value with `pair` (`name=value`) in place of the cookie of that
    /// name (e.g. a session cookie the server rewrote).
    pub fn cookie_with(&self, pair: &str) -> String {
        let name = pair.split('=').next().unwrap_or("");
        let mut kept: Vec<&str> = (self.cookie.split("; "))
            .filter(|c| !c.is_empty() && c.split('=').next() != Some(name))
            .collect();
        kept.push(pair);
        kept.join("; ")
    }

    /// The headers that carry these credentials (`Cookie`, `X-CSRF-Token`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if !self.cookie.is_empty() {
            headers.push(("Cookie", self.cookie.clone()));
        }
        if !self.token.is_empty() {
            headers.push(("X-CSRF-Token", self.token.clone()));
        }
        headers
    }

    /// Adds these credentials' headers to a request.
    pub fn attach(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        request
    }
}

/// A single-use sign-in link's path (`/auth/link?token=…`) for `username`, from the CLI on
/// the database `launch` names (`users create` first if there is no such account).
pub fn login_link(launch: &Launch, username: &str) -> String {
    // The server's program, arguments and environment, without a wrapper that prepares
    // its start (e.g. planting files).
    let launch = launch.clone().unwrapped();
    let created = launch.clone().args(["users", "create", username]).run();
    assert!(
        created.code() == Some(0) || created.stderr.contains("taken"),
        "users create {username}: {created:?}"
    );
    let link = launch.clone().args(["users", "login-link", username]).run();
    assert_eq!(link.code(), Some(0), "users login-link {username}: {link:?}");
    let url = link.stdout.lines().find(|l| l.contains("/auth/link?token=")).expect("a link");
    url[url.find("/auth/link").expect("the path")..].trim().to_string()
}

/// `cookies` (`a=1; b=2`) with those `headers` set (a later value of a name wins).
fn merge_cookies(cookies: &str, headers: &[(String, String)]) -> String {
    let mut jar: Vec<(String, String)> = (cookies.split("; "))
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for (_, value) in headers.iter().filter(|(n, _)| n == "set-cookie") {
        if let Some((name, value)) = cookie_set_by(value) {
            jar.retain(|(n, _)| n != name);
            jar.push((name.to_string(), value.to_string()));
        }
    }
    jar.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

/// The value of the first `<input type="hidden" name="csrf_token" value="…">` of a page.
pub fn csrf_token(html: &str) -> Option<String> {
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    html.find(FIELD).map(|at| html[at + FIELD.len()..].chars().take_while(|&c| c != '"').collect())
}

/// The cookie name and value a `Set-Cookie` header value sets (its attributes dropped).
pub fn cookie_set_by(set_cookie: &str) -> Option<(&str, &str)> {
    set_cookie.split(';').next()?.trim().split_once('=')
}

/// The value the `Set-Cookie` header values `set_cookies` give cookie `name`.
pub fn set_cookie_value<'a>(
    set_cookies: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<String> {
    set_cookies
        .into_iter()
        .filter_map(cookie_set_by)
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}
