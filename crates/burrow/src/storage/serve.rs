//! Stored files as responses: `/media/{sha256}` for public ones, [`file_response`] for
//! the app routes that serve private ones.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Access, Opened, Storage, is_sha256};
use crate::error::Error;
use crate::sniff;

/// Public files never change under their name.
pub(crate) const PUBLIC_CACHE: &str = "public, max-age=31536000, immutable";
/// Private files: neither shared caches nor the browser's cache after sign-out.
pub(crate) const PRIVATE_CACHE: &str = "private, no-store";

/// `GET /media/{sha256}`: a public file. Any other path under `/media/` (the folder
/// itself, a listing, a traversal, a private file's hash) is a 404.
pub(crate) fn routes(storage: Storage) -> Router {
    Router::new().route(
        "/media/{name}",
        get(move |axum::extract::Path(name): axum::extract::Path<String>, request: Request| {
            let storage = storage.clone();
            async move { media(&storage, &name, request.headers()).await }
        }),
    )
}

async fn media(storage: &Storage, name: &str, headers: &HeaderMap) -> Result<Response, Error> {
    if !is_sha256(name) {
        return Err(Error::not_found());
    }
    if etag_matches(headers, name) && storage.exists(Access::Public, name).await? {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag(name));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(PUBLIC_CACHE));
        return Ok(response);
    }
    let opened = storage.open(Access::Public, name).await?.ok_or_else(Error::not_found)?;
    let extension = opened.content_type.and_then(sniff::extension);
    let file_name = match extension {
        Some(extension) => format!("{name}.{extension}"),
        None => name.to_string(),
    };
    Ok(file_response(opened, name, &file_name, PUBLIC_CACHE))
}

fn etag(sha256: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex digits")
}

fn etag_matches(headers: &HeaderMap, sha256: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(|tag| tag.trim().trim_start_matches("W/")).any(|tag| {
        tag == "*" || tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(sha256)
    })
}

/// The response for a stored file: its sniffed type (else `application/octet-stream`),
/// `X-Content-Type-Options: nosniff`, a `Content-Disposition` (inline for images that run
/// nothing, attachment for everything else), `cache`, its length and its hash as ETag.
pub(crate) fn file_response(
    opened: Opened,
    sha256: &str,
    file_name: &str,
    cache: &'static str,
) -> Response {
    let content_type = opened.content_type.unwrap_or("application/octet-stream");
    let disposition = if sniff::is_inline_image(content_type) {
        Disposition::Inline
    } else {
        Disposition::Attachment
    };
    let mut response = opened.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(opened.size));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(disposition, file_name));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::ETAG, etag(sha256));
    // Even a file a browser would render as a page (shown inline by mistake) runs nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    response
}

/// Whether a browser shows a file or saves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Inline,
    Attachment,
}

/// `Content-Disposition` for a file name from anywhere (RFC 6266): a plain ASCII
/// `filename="…"` for old clients (quotes, backslashes, controls and anything beyond
/// ASCII replaced by `_`), and the exact name as `filename*=UTF-8''…`, percent-encoded.
/// A path in the name is dropped: only its last segment is a file name.
pub fn content_disposition(disposition: Disposition, file_name: &str) -> HeaderValue {
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    let name = match name.trim() {
        "" | "." | ".." => "download".to_string(),
        trimmed => trimmed.to_string(),
    };
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    HeaderValue::from_str(&format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .expect("printable ASCII only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_escaped_for_both_kinds_of_clients() {
        let header = |name| content_disposition(Disposition::Attachment, name);
        assert_eq!(
            header("report 2024.pdf"),
            "attachment; filename=\"report 2024.pdf\"; filename*=UTF-8''report%202024.pdf"
        );
        assert_eq!(
            header("naïve \"quote\"\r\n.txt"),
            "attachment; filename=\"na_ve _quote_.txt\"; \
             filename*=UTF-8''na%C3%AFve%20%22quote%22.txt"
        );
        assert_eq!(
            content_disposition(Disposition::Inline, "../../etc/passwd"),
            "inline; filename=\"passwd\"; filename*=UTF-8''passwd"
        );
        assert_eq!(header(".."), "attachment; filename=\"download\"; filename*=UTF-8''download");
        assert_eq!(
            header("C:\\x\\a;b.png"),
            "attachment; filename=\"a;b.png\"; filename*=UTF-8''a%3Bb.png"
        );
    }

    #[test]
    fn etags_match_quoted_weak_or_any() {
        let sha = "ab".repeat(32);
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            etag_matches(&headers, &sha)
        };
        assert!(with(&format!("\"{sha}\"")));
        assert!(with(&format!("\"x\", W/\"{sha}\"")));
        assert!(with("*"));
        assert!(!with("\"x\""));
        assert!(!etag_matches(&HeaderMap::new(), &sha));
    }
}
