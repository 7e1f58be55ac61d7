//! `--dev`: the pieces installed only in development (docs/guide/development.md).
//!
//! - A watcher thread polls the app source folders every [`POLL`] and calls back when a
//!   file was added, removed or changed (polling mtimes: portable, no dependency, and a
//!   few folders of a few files cost nothing).
//! - `/__burrow/reload` is a server-sent event stream that sends `reload` after each
//!   change; `/__burrow/reload.js` is the script that listens to it and reloads the page.
//!   A script file rather than inline code, so a `script-src 'self'` CSP allows it.
//! - Every HTML response gets `<script src="/__burrow/reload.js">` before `</body>`.
//! - Each request is logged on one readable line with its duration.
//!
//! Nothing here is installed without `--dev`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use http_body_util::BodyExt;

use super::errors::Summary;
use crate::live::{Event, Hub, Sse};

/// How often the watched folders are looked at: an edit shows within this (plus a rebuild).
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// The reload stream's path.
pub(crate) const RELOAD_PATH: &str = "/__burrow/reload";
const SCRIPT_PATH: &str = "/__burrow/reload.js";
const SCRIPT_TAG: &str = "<script src=\"/__burrow/reload.js\" defer></script>";

/// Reconnects after a restart (the stream ends when the server drains) and reloads once
/// the server answers again, so a rebuilt binary shows too.
const SCRIPT: &str = r#"// Burrow --dev: reload the page when a template or static file changes.
(() => {
  let lost = false;
  const source = new EventSource("/__burrow/reload");
  source.addEventListener("reload", () => location.reload());
  source.addEventListener("open", () => { if (lost) location.reload(); });
  source.addEventListener("error", () => { lost = true; });
})();
"#;

/// The reload streams' topic, on a hub of their own (never sent to other processes).
const RELOAD_TOPIC: &str = "reload";

/// Tells the reload streams about changes.
#[derive(Clone, Default)]
pub(crate) struct Reloads(Hub);

impl Reloads {
    /// Tells every open page to reload.
    pub(crate) fn notify(&self) {
        self.0.deliver(RELOAD_TOPIC, &Event::new("reload"));
    }
}

/// Starts the watcher thread: `on_change` runs after files under `folders` changed (each
/// poll that sees a change calls it once). The thread ends when `on_change` returns false.
pub(crate) fn watch_folders(
    folders: Vec<PathBuf>,
    mut on_change: impl FnMut() -> bool + Send + 'static,
) {
    // Taken here, not in the thread: a thread that starts late (a busy machine) would take
    // an edit made meanwhile as its starting point and never see it as a change.
    let mut last = snapshot(&folders);
    let spawned = std::thread::Builder::new().name("burrow-dev-watch".into()).spawn(move || {
        loop {
            std::thread::sleep(POLL);
            let now = snapshot(&folders);
            if now != last {
                last = now;
                if !on_change() {
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("--dev: cannot watch the source folders ({e}); edits need a restart");
    }
}

/// Every file under the folders with its size and modification time, in a stable order.
fn snapshot(folders: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&entry.path(), out);
            } else {
                out.push((entry.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    for folder in folders {
        walk(folder, &mut out);
    }
    out.sort();
    out
}

/// `/__burrow/reload` and `/__burrow/reload.js`. The reload stream is an event stream
/// like apps' ([`crate::live`]): it ends when the server starts draining (it would
/// otherwise hold a restart or shutdown for the whole drain timeout), and the script then
/// reconnects to the new process.
pub(crate) fn routes(reloads: Reloads) -> Router {
    Router::new()
        .route(
            RELOAD_PATH,
            get(move |sse: Sse| {
                let reloads = reloads.clone();
                async move { sse.stream_of(reloads.0.subscribe(vec![RELOAD_TOPIC.into()])) }
            }),
        )
        .route(
            SCRIPT_PATH,
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    SCRIPT,
                )
            }),
        )
}

/// Adds the reload script to an HTML page (error pages included, so fixing a
/// broken template reloads the page that showed the error).
pub(crate) async fn inject_script(response: Response) -> Response {
    let html = (response.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if !html || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await else {
        return Response::from_parts(parts, Body::empty());
    };
    let page = collected.to_bytes();
    let text = String::from_utf8_lossy(&page);
    let with_script = match text.rfind("</body>") {
        Some(at) => format!("{}{SCRIPT_TAG}{}", &text[..at], &text[at..]),
        // A fragment (htmx) is not a page: the page it lands in already has the script.
        None => return Response::from_parts(parts, Body::from(page)),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(with_script))
}

/// One readable line per request, `GET /notes → 200 in 3.1 ms`, instead of the access
/// log's fields.
pub(crate) fn log_request(request: &Summary, response: &Response, start: Instant) {
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: crate::logging::ACCESS_TARGET,
        request_id = request.request_id(),
        // The path only: query strings may carry tokens.
        "{} {} → {} in {ms:.1} ms",
        request.method,
        request.uri.path(),
        response.status().as_u16()
    );
}
