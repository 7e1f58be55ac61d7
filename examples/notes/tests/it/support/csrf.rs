//! What a browser must send for an unsafe request to pass the CSRF check: the cookies of a
//! loaded form and its token; and reading cookies and tokens out of answers.

use super::raw::raw_get;

/// What a browser holds after loading a form: its cookies (among them the `_csrf` cookie)
/// and the form's CSRF token, which every POST, PUT, PATCH and DELETE must carry.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// `name=value; name=value`, for a `Cookie` header.
    pub cookie: String,
    /// The `csrf_token` field of the form.
    pub token: String,
}

impl Credentials {
    /// Loads `GET /notes/new` (the new-note form) as a browser would, on a new connection.
    pub fn fetch(port: u16) -> Credentials {
        let res = raw_get(port, "/notes/new").expect("GET /notes/new");
        let html = res.text();
        assert_eq!(res.status, 200, "GET /notes/new: {html}");
        let set_cookies = res.headers.iter().filter(|(n, _)| n == "set-cookie");
        let cookie = set_cookies
            .filter_map(|(_, v)| cookie_set_by(v))
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        Credentials { cookie, token: csrf_token(&html).unwrap_or_default() }
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
