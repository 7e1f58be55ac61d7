//! HTTP through reqwest: the client every test uses, GETs, creating a note through the
//! form, and reading HTML answers.

use super::csrf::Credentials;
use super::server::Server;

/// An HTTP client that does not follow redirects (303s stay visible) and keeps no
/// connections alive across a server restart.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("build the HTTP client")
}

pub fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().expect("ASCII header").to_string())
}

/// GETs `path` signed in ([`Server::credentials`]) and returns status and body.
pub async fn get(client: &reqwest::Client, server: &Server, path: &str) -> (u16, String) {
    let request = client.get(server.url(path)).header("Cookie", server.credentials().cookie);
    status_and_body(request, path).await
}

/// GETs `path` as htmx does (`HX-Request: true`), signed in.
pub async fn get_htmx(client: &reqwest::Client, server: &Server, path: &str) -> (u16, String) {
    let request = client.get(server.url(path)).header("HX-Request", "true");
    status_and_body(request.header("Cookie", server.credentials().cookie), path).await
}

async fn status_and_body(request: reqwest::RequestBuilder, path: &str) -> (u16, String) {
    let res = request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Posts the note form, with the cookies and CSRF token of a freshly loaded form, and
/// returns the new note's id, from `Location: /notes/{id}`.
pub async fn create_note(
    client: &reqwest::Client,
    server: &Server,
    title: &str,
    content: &str,
) -> i64 {
    let credentials = server.credentials();
    try_create_note(client, server.port, &credentials, title, content)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `POST /notes` with `credentials`: the new note's id, from `303 Location: /notes/{id}`,
/// or a description of what came instead.
pub async fn try_create_note(
    client: &reqwest::Client,
    port: u16,
    credentials: &Credentials,
    title: &str,
    content: &str,
) -> Result<i64, String> {
    let request = client
        .post(format!("http://127.0.0.1:{port}/notes"))
        .form(&[("title", title), ("content", content)]);
    let res = credentials
        .attach(request)
        .send()
        .await
        .map_err(|e| format!("POST /notes {title:?}: {e}"))?;
    let status = res.status().as_u16();
    let location = header(&res, "location");
    let body = if status == 303 { String::new() } else { res.text().await.unwrap_or_default() };
    created_note_id(title, status, location.as_deref(), &body)
}

/// The id an answer to `POST /notes` (of a note titled `title`) names in
/// `303 Location: /notes/{id}`, or a description of the answer.
pub fn created_note_id(
    title: &str,
    status: u16,
    location: Option<&str>,
    body: &str,
) -> Result<i64, String> {
    if status != 303 {
        return Err(format!("POST /notes {title:?}: expected 303, got {status}:\n{}", short(body)));
    }
    let location = location.unwrap_or("");
    location
        .strip_prefix("/notes/")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("POST /notes {title:?}: Location {location:?} is not /notes/{{id}}"))
}

/// The ids of the `id="note-{id}"` elements in an HTML answer, in document order.
pub fn note_ids(html: &str) -> Vec<i64> {
    const MARK: &str = "id=\"note-";
    let mut ids = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && rest[digits.len()..].starts_with('"') {
            ids.push(digits.parse().expect("note id"));
        }
    }
    ids
}

/// Percent-encodes a query-string value (the client has no query builder).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// At most the first 4000 characters of `text`, for assertion messages.
pub fn short(text: &str) -> &str {
    match text.char_indices().nth(4000) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
