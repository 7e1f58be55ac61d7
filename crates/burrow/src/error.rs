//! Errors in handlers, and the one renderer every error response goes through.
//!
//! Handlers return [`Error`]; routing produces 404 and 405; middleware produces 413 and
//! panics become 500. All of them leave the router as a bare status and are turned into
//! an HTML error page (template `error.html`, which apps may override) or, when the
//! client asks for JSON, `{"error": …, "code": …}`. Responses a handler rendered itself
//! (e.g. a 422 form) carry a [`Handled`] marker and pass untouched.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use minijinja::context;

use crate::db::DbError;
use crate::http::request_id::RequestId;
use crate::template::{RequestInfo, Templates, one_line};

/// Marks a response whose body the handler rendered itself.
#[derive(Clone, Copy, Debug)]
pub struct Handled;

const NOT_FOUND: &str = "The page you asked for does not exist.";
const SERVER_ERROR: &str = "Something went wrong on our side.";
const BUSY: &str = "The server is too busy to answer this request. Try again in a moment.";
const TOO_LARGE: &str = "The request body is larger than this server accepts.";

/// The public message of an error response, for the error renderer.
#[derive(Clone, Debug)]
struct PublicMessage(String);

/// An error a handler returns: a status and a message safe to show to the client.
/// Details of 5xx errors are logged, never shown.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    message: String,
    detail: Option<String>,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error { status, message: message.into(), detail: None }
    }

    pub fn not_found() -> Error {
        Error::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(StatusCode::FORBIDDEN, message)
    }

    /// A request body that could not be read: 413 when it went over `--max-body-size` (an
    /// `http_body_util::LengthLimitError` in the error's source chain: a chunked body is cut
    /// off while it is read, not refused from its headers), 400 for anything else (e.g. the
    /// client went away mid-body).
    pub fn unreadable_body(error: &(dyn std::error::Error + 'static)) -> Error {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if e.is::<http_body_util::LengthLimitError>() {
                return Error::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
            }
            cause = e.source();
        }
        Error::bad_request("The request body could not be read.")
    }

    /// A 500 whose `detail` is logged with the request id but not shown.
    pub fn internal(detail: impl Into<String>) -> Error {
        Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: SERVER_ERROR.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::NotFound => Error::not_found(),
            // Too slow, or cut short by a shutdown: the server is busy, not broken.
            DbError::Timeout(_) | DbError::Interrupted | DbError::Closed => {
                tracing::warn!("database: {e}");
                Error::new(StatusCode::SERVICE_UNAVAILABLE, BUSY)
            }
            other => Error::internal(format!("database: {other}")),
        }
    }
}

impl From<minijinja::Error> for Error {
    fn from(e: minijinja::Error) -> Error {
        Error::internal(format!("template: {}", one_line(&e)))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.detail {
            tracing::error!(status = self.status.as_u16(), "{detail}");
        }
        let mut res = self.status.into_response();
        res.extensions_mut().insert(PublicMessage(self.message));
        res
    }
}

/// Middleware: renders every unhandled error response (status ≥ 400).
pub(crate) async fn render_errors(request: Request, next: Next) -> Response {
    let summary = Summary::of(&request);
    let res = next.run(request).await;
    if res.status().as_u16() < 400 || res.extensions().get::<Handled>().is_some() {
        return res;
    }
    let (info, templates) = summary.into_info();
    let status = res.status();
    // Keep what the original response said besides its body (Allow on 405, Retry-After,
    // WWW-Authenticate, htmx headers…).
    let mut headers = res.headers().clone();
    for name in
        [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING, header::ETAG]
    {
        headers.remove(name);
    }
    let message = message_of(res).await.unwrap_or_else(|| default_message(status));
    let mut rendered = error_response(status, &message, &info, templates.as_ref());
    for (name, value) in headers.iter() {
        if !rendered.headers().contains_key(name) {
            rendered.headers_mut().append(name.clone(), value.clone());
        }
    }
    rendered
}

/// Builds the error page or JSON body for `status`.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    info: &RequestInfo,
    templates: Option<&Templates>,
) -> Response {
    let code = status.as_u16();
    let title = status.canonical_reason().unwrap_or("Error");
    let request_id = info.request_id().unwrap_or_default();
    let mut res = if wants_json(&info.headers) {
        axum::Json(serde_json::json!({ "error": message, "code": code, "request_id": request_id }))
            .into_response()
    } else {
        let ctx = context! { code => code, title => title, message => message };
        let html = templates
            .and_then(|t| match t.render("error.html", ctx, info, false) {
                Ok(html) => Some(html),
                Err(e) => {
                    tracing::error!("rendering error.html: {}", one_line(&e));
                    None
                }
            })
            .unwrap_or_else(|| fallback_page(code, title, message));
        let mut res = html.into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        res
    };
    *res.status_mut() = status;
    res.extensions_mut().insert(Handled);
    res
}

/// What the error renderer needs of the request, taken before the request is consumed.
/// Every request passes here, so only cheap clones are taken; the [`RequestInfo`] (which
/// allocates) is built only for an error response.
struct Summary {
    method: Method,
    uri: Uri,
    accept: Option<HeaderValue>,
    host: Option<HeaderValue>,
    request_id: Option<RequestId>,
    templates: Option<Templates>,
}

impl Summary {
    fn of(request: &Request) -> Summary {
        Summary {
            method: request.method().clone(),
            uri: request.uri().clone(),
            accept: request.headers().get(header::ACCEPT).cloned(),
            host: request.headers().get(header::HOST).cloned(),
            request_id: request.extensions().get::<RequestId>().cloned(),
            templates: request.extensions().get::<Templates>().cloned(),
        }
    }

    fn into_info(self) -> (RequestInfo, Option<Templates>) {
        let mut headers = HeaderMap::new();
        for (name, value) in [(header::ACCEPT, self.accept), (header::HOST, self.host)] {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        let mut extensions = Extensions::new();
        if let Some(id) = self.request_id {
            extensions.insert(id);
        }
        (RequestInfo { method: self.method, uri: self.uri, headers, extensions }, self.templates)
    }
}

/// The message to show: the handler's public message, or the short plain-text reason
/// that axum and tower-http put in 4xx bodies (e.g. a form that failed to parse).
async fn message_of(res: Response) -> Option<String> {
    if let Some(PublicMessage(m)) = res.extensions().get::<PublicMessage>() {
        return Some(m.clone());
    }
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !res.status().is_client_error() || !plain {
        return None;
    }
    let body: Body = res.into_body();
    let bytes = http_body_util::Limited::new(body, 1024).collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn default_message(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => NOT_FOUND.into(),
        StatusCode::METHOD_NOT_ALLOWED => "This page does not accept that method.".into(),
        StatusCode::PAYLOAD_TOO_LARGE => TOO_LARGE.into(),
        s if s.is_server_error() => SERVER_ERROR.into(),
        s => s.canonical_reason().unwrap_or("Error").into(),
    }
}

/// True when the client prefers JSON over HTML.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let json = accept.find("application/json").or_else(|| accept.find("+json"));
    let html = accept.find("text/html");
    match (json, html) {
        (Some(j), Some(h)) => j < h,
        (Some(_), None) => true,
        _ => false,
    }
}

fn fallback_page(code: u16, title: &str, message: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
         <body><h1>{code} {title}</h1><p>{}</p></body></html>",
        esc(message),
        title = esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_chosen_only_when_preferred() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(wants_json(&h("application/json")));
        assert!(wants_json(&h("application/problem+json")));
        assert!(!wants_json(&h("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")));
        assert!(!wants_json(&h("*/*")));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
