//! Static files: every app's embedded assets under `/static/`, with content-hashed URLs.
//!
//! `static_url("css/app.css")` in a template gives `/static/css/app.1a2b3c4d5e6f.css`;
//! that URL is cached forever (`immutable`), and a changed file gets a new URL. The
//! unhashed path is served too, revalidated by ETag. A later app's file overrides an
//! earlier app's file of the same path. A `favicon.ico` at the top of a static folder is
//! also served at `/favicon.ico`.
//!
//! With `--dev`, the folders of apps with source folders are read from disk on every
//! request instead: `static_url` gives the unhashed URL, answered with `no-cache`, so an
//! edit shows on the next load.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::Dir;
use minijinja::value::Value;

use crate::error::Error;
use crate::template::TemplateEnv;

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

/// The collected static files of all apps.
#[derive(Clone, Default)]
pub(crate) struct StaticFiles {
    /// hashed path → asset
    hashed: Arc<HashMap<String, Arc<Asset>>>,
    /// logical path → (hashed path, asset)
    logical: Arc<HashMap<String, (String, Arc<Asset>)>>,
    /// `--dev` only: every folder in order (core first), looked up on each request.
    dev: Option<Arc<Vec<StaticDir>>>,
}

/// Where a folder of static files is, in `--dev`.
pub(crate) enum StaticDir {
    Embedded(&'static Dir<'static>),
    Disk(PathBuf),
}

const FAVICON: &str = "favicon.ico";

static CORE_STATIC: Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/static");

impl StaticFiles {
    /// The core's files, then each folder's in order (a later folder's file overrides an
    /// earlier one's of the same path).
    pub(crate) fn collect(dirs: &[&'static Dir<'static>]) -> StaticFiles {
        let mut files: HashMap<String, &'static [u8]> = HashMap::new();
        walk(&CORE_STATIC, &mut files);
        for dir in dirs {
            walk(dir, &mut files);
        }
        let mut hashed = HashMap::new();
        let mut logical = HashMap::new();
        for (path, body) in files {
            let digest = ring::digest::digest(&ring::digest::SHA256, body);
            let hash: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
            let hashed_path = match path.rsplit_once('.') {
                Some((stem, ext)) if !stem.ends_with('/') && !stem.is_empty() => {
                    format!("{stem}.{hash}.{ext}")
                }
                _ => format!("{path}.{hash}"),
            };
            let asset = Arc::new(Asset {
                body,
                content_type: content_type(&path),
                etag: HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex is a valid header"),
            });
            hashed.insert(hashed_path.clone(), asset.clone());
            logical.insert(path, (hashed_path, asset));
        }
        StaticFiles { hashed: Arc::new(hashed), logical: Arc::new(logical), dev: None }
    }

    /// `--dev`: the core's files, then each folder's, looked up in reverse order (a later
    /// folder's file wins) when a URL is made or a file is asked for.
    pub(crate) fn dev(dirs: Vec<StaticDir>) -> StaticFiles {
        let mut all = vec![StaticDir::Embedded(&CORE_STATIC)];
        all.extend(dirs);
        StaticFiles { dev: Some(Arc::new(all)), ..StaticFiles::default() }
    }

    /// `--dev`: the file's current content, or `None`. Only plain relative paths are looked
    /// up on disk: no `..`, no absolute path, nothing hidden.
    fn dev_lookup(dirs: &[StaticDir], path: &str) -> Option<Cow<'static, [u8]>> {
        let path = path.trim_start_matches('/');
        let relative = std::path::Path::new(path);
        let plain = relative.components().all(|c| {
            matches!(c, std::path::Component::Normal(part)
                if !part.to_string_lossy().starts_with('.'))
        });
        if path.is_empty() || !plain {
            return None;
        }
        dirs.iter().rev().find_map(|dir| match dir {
            StaticDir::Embedded(dir) => dir.get_file(path).map(|f| Cow::Borrowed(f.contents())),
            StaticDir::Disk(root) => std::fs::read(root.join(relative)).ok().map(Cow::Owned),
        })
    }

    fn dev_serve(dirs: &[StaticDir], path: &str) -> Response {
        let Some(body) = StaticFiles::dev_lookup(dirs, path) else {
            return Error::not_found().into_response();
        };
        let mut res = body.into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
        res
    }

    /// The content-hashed URL of a logical path, e.g. `/static/css/app.1a2b3c4d5e6f.css`.
    pub(crate) fn url(&self, path: &str) -> Option<String> {
        if let Some(dirs) = &self.dev {
            let path = path.trim_start_matches('/');
            return StaticFiles::dev_lookup(dirs, path).map(|_| format!("/static/{path}"));
        }
        self.logical
            .get(path.trim_start_matches('/'))
            .map(|(hashed, _)| format!("/static/{hashed}"))
    }

    /// Adds `static_url(path)` to templates; an unknown path is a template error, so a
    /// typo shows up on the first render instead of as a broken link.
    pub(crate) fn register(&self, env: &mut TemplateEnv) {
        let files = self.clone();
        env.add_function("static_url", move |path: String| -> Result<Value, minijinja::Error> {
            files.url(&path).map(Value::from_safe_string).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("static_url: no static file '{path}'"),
                )
            })
        });
    }

    pub(crate) fn routes(&self) -> Router {
        let files = self.clone();
        let mut router = Router::new().route(
            "/static/{*path}",
            get(move |Path(path): Path<String>, request: Request| async move {
                files.serve(&path, &request)
            }),
        );
        // Browsers ask for /favicon.ico whatever the page links to (and for responses that
        // are not pages at all), so a `favicon.ico` at the top of a static folder is served
        // there too, revalidated like any unhashed path.
        if self.logical.contains_key(FAVICON) || self.dev.is_some() {
            let files = self.clone();
            router = router.route(
                "/favicon.ico",
                get(move |request: Request| async move { files.serve(FAVICON, &request) }),
            );
        }
        router
    }

    fn serve(&self, path: &str, request: &Request) -> Response {
        if let Some(dirs) = &self.dev {
            return StaticFiles::dev_serve(dirs, path);
        }
        let (asset, cache) = if let Some(asset) = self.hashed.get(path) {
            (asset, "public, max-age=31536000, immutable")
        } else if let Some((_, asset)) = self.logical.get(path) {
            (asset, "no-cache")
        } else {
            return Error::not_found().into_response();
        };
        let mut res = if request.headers().get(header::IF_NONE_MATCH) == Some(&asset.etag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut res = asset.body.into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            res
        };
        res.headers_mut().insert(header::ETAG, asset.etag.clone());
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        res
    }
}

fn walk(dir: &'static Dir<'static>, out: &mut HashMap<String, &'static [u8]>) {
    let files = crate::embed::files(dir).into_iter();
    out.extend(files.map(|(path, file)| (path.into_owned(), file.contents())));
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
