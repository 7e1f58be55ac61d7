//! The error renderer: every error response of the core stack (status ≥ 400 without
//! the [`Handled`] marker) becomes the error page (template `error.html`, which apps may
//! override) or, when the client prefers JSON, `{"error": …, "code": …, "request_id": …}`.
//! The message is the handler's [`Error`](crate::Error) message, the short plain-text
//! reason axum or tower-http gave, or a default for the status. The cause of a 5xx (an
//! [`Error`](crate::Error)'s detail, a panic's message) is logged here, with the request id.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use minijinja::context;

use crate::error::{
    Handled, LogDetail, NOT_FOUND, PublicMessage, SERVER_ERROR, TOO_LARGE, one_line,
};
use crate::i18n::Locale;
use crate::request::RequestId;
use crate::template::{BeforeRenders, ErrorPageExtensions, RequestInfo, Templates};

/// Whether [`render`] has anything to do: a cause to log, or an error page to make. The
/// core layer calls `render` only then, so most responses never enter it.
pub(crate) fn needs_render(res: &Response) -> bool {
    res.extensions().get::<LogDetail>().is_some() || wants_page(res)
}

/// An error response (status ≥ 400) whose handler did not make its own page.
fn wants_page(res: &Response) -> bool {
    res.status().as_u16() >= 400 && res.extensions().get::<Handled>().is_none()
}

/// Logs the cause a response carries and renders it as the error page if it is an
/// unhandled error response of the request that `summary` describes.
pub(crate) async fn render(
    summary: &Summary,
    templates: Option<&Templates>,
    res: Response,
) -> Response {
    if let Some(LogDetail(detail)) = res.extensions().get::<LogDetail>() {
        // Here rather than where the error was made: the request id ties the line to the
        // access log line and to the id the client was shown.
        let (status, request_id) = (res.status().as_u16(), summary.request_id());
        if status == 500 {
            tracing::error!(status, request_id, "{detail}");
        } else {
            tracing::warn!(status, request_id, "{detail}");
        }
    }
    if !wants_page(&res) {
        return res;
    }
    let mut info = summary.info();
    if let Some(ErrorPageExtensions(extra)) = res.extensions().get::<ErrorPageExtensions>().cloned()
    {
        if let Some(BeforeRenders(before)) = extra.get::<BeforeRenders>() {
            before.before_render().await;
        }
        info.extensions.extend(extra);
    }
    let info = std::sync::Arc::new(info);
    let status = res.status();
    // Keep what the original response said besides its body (Allow on 405, Retry-After,
    // WWW-Authenticate, htmx headers…).
    let mut headers = res.headers().clone();
    for name in
        [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING, header::ETAG]
    {
        headers.remove(name);
    }
    let locale = templates.map(|t| t.i18n().negotiate(&info.headers));
    let message = match message_of(res).await {
        Some(PublicMessage(text, Some(translation))) => match &locale {
            Some(locale) => {
                let args: Vec<(&str, &dyn std::fmt::Display)> = translation
                    .args
                    .iter()
                    .map(|(n, v)| (*n, v as &dyn std::fmt::Display))
                    .collect();
                locale.get(&translation.key, &args).unwrap_or(text)
            }
            None => text,
        },
        Some(PublicMessage(text, None)) => text,
        None => default_message(status, locale.as_ref()),
    };
    let mut rendered = error_response(status, &message, &info, templates, locale.as_ref());
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
    info: &std::sync::Arc<RequestInfo>,
    templates: Option<&Templates>,
    locale: Option<&Locale>,
) -> Response {
    let code = status.as_u16();
    let english = status.canonical_reason().unwrap_or("Error");
    let title = locale.and_then(|l| l.get(&format!("error-title-{code}"), &[]));
    let title = title.as_deref().unwrap_or(english);
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

/// What the error renderer and the access log need of the request, taken before the
/// request is consumed. Every request passes here, so only cheap clones are taken; the
/// [`RequestInfo`] (which allocates) is built only for an error response.
pub(crate) struct Summary {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    accept: Option<HeaderValue>,
    host: Option<HeaderValue>,
    /// The page's language: the switcher's cookie or `Accept-Language`.
    accept_language: Option<HeaderValue>,
    cookie: Option<HeaderValue>,
    pub(crate) request_id: Option<RequestId>,
    /// The client's address ([`ClientIp`]).
    pub(crate) client: Option<std::net::IpAddr>,
    /// The TCP peer, when it is not the client (a trusted proxy).
    pub(crate) proxy: Option<std::net::IpAddr>,
}

impl Summary {
    /// The summary of a request as the core layer left it (tests of routers without it).
    #[cfg(test)]
    pub(crate) fn of(request: &Request) -> Summary {
        let extensions = request.extensions();
        let crate::ClientIp(client) = crate::ClientIp::of(extensions);
        let peer = crate::PeerAddr::of(extensions).map(|a| a.ip().to_canonical());
        Summary::with(request, |_| RequestId::of(extensions).cloned(), client, peer)
    }

    /// The summary of a request whose client and peer the caller knows (the core layer,
    /// which has just worked them out: lookups less). `request_id` makes the id from the
    /// request's `X-Request-Id`, found in the same pass over the headers.
    pub(crate) fn with(
        request: &Request,
        request_id: impl FnOnce(Option<&HeaderValue>) -> Option<RequestId>,
        client: Option<std::net::IpAddr>,
        peer: Option<std::net::IpAddr>,
    ) -> Summary {
        // One pass over the headers instead of a hashed lookup for each of the five: this
        // runs for every request, and requests carry few headers.
        let (mut accept, mut host, mut accept_language, mut cookie) = (None, None, None, None);
        let mut given_id = None;
        for (name, value) in request.headers() {
            let slot = if name == header::ACCEPT {
                &mut accept
            } else if name == header::HOST {
                &mut host
            } else if name == header::ACCEPT_LANGUAGE {
                &mut accept_language
            } else if name == header::COOKIE {
                &mut cookie
            } else {
                if name == super::request_id::HEADER && given_id.is_none() {
                    given_id = Some(value);
                }
                continue;
            };
            // The first value, as `HeaderMap::get` gives it.
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        let request_id = request_id(given_id);
        Summary {
            method: request.method().clone(),
            uri: request.uri().clone(),
            accept,
            host,
            accept_language,
            cookie,
            request_id,
            client,
            proxy: peer.filter(|peer| Some(*peer) != client),
        }
    }

    pub(crate) fn request_id(&self) -> &str {
        self.request_id.as_ref().map_or("", |id| id.as_str())
    }

    fn info(&self) -> RequestInfo {
        let mut headers = HeaderMap::new();
        let kept = [
            (header::ACCEPT, &self.accept),
            (header::HOST, &self.host),
            (header::ACCEPT_LANGUAGE, &self.accept_language),
            (header::COOKIE, &self.cookie),
        ];
        for (name, value) in kept {
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
        let mut extensions = Extensions::new();
        if let Some(id) = &self.request_id {
            extensions.insert(id.clone());
        }
        RequestInfo { method: self.method.clone(), uri: self.uri.clone(), headers, extensions }
    }
}

/// The message to show: the handler's public message, or the short plain-text reason
/// that axum and tower-http put in 4xx bodies (e.g. a form that failed to parse).
async fn message_of(res: Response) -> Option<PublicMessage> {
    if let Some(message) = res.extensions().get::<PublicMessage>() {
        return Some(message.clone());
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
    (!text.is_empty()).then_some(PublicMessage(text, None))
}

/// The message of an error response that carries none, in the page's language.
fn default_message(status: StatusCode, locale: Option<&Locale>) -> String {
    let (english, key) = match status {
        StatusCode::NOT_FOUND => (NOT_FOUND, "error-not-found"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("This page does not accept that method.", "error-method")
        }
        StatusCode::PAYLOAD_TOO_LARGE => (TOO_LARGE, "error-too-large"),
        s if s.is_server_error() => (SERVER_ERROR, "error-server"),
        s => return s.canonical_reason().unwrap_or("Error").into(),
    };
    locale.and_then(|l| l.get(key, &[])).unwrap_or_else(|| english.into())
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
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{code} {title}</title></head>\
         <body><h1>{code} {title}</h1><p>{}</p></body></html>",
        esc(message),
        title = esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_keeps_the_first_value_of_each_header_it_needs() {
        let request = axum::http::Request::get("/x?q=1")
            .header(header::ACCEPT, "application/json")
            .header("x-other", "1")
            .header(header::ACCEPT, "text/html")
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .header(header::HOST, "example.com")
            .body(Body::empty())
            .unwrap();
        let summary = Summary::of(&request);
        assert_eq!(summary.accept.as_ref().unwrap(), "application/json");
        assert_eq!(summary.cookie.as_ref().unwrap(), "a=1");
        assert_eq!(summary.host.as_ref().unwrap(), "example.com");
        assert_eq!(summary.accept_language, None);
        assert_eq!(summary.uri, "/x?q=1");
    }

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
