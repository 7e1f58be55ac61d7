//! Framework tests: real apps built with `Server::build` on a real SQLite file in a temp
//! dir, requests through the whole middleware stack (the same `Stack` the accept loop
//! serves). The notes example's tests drive the real binary over sockets.

mod apps;
mod auth;
mod builder;
mod client;
mod db;
mod forms;
mod http;
mod live;
mod mail;
mod rows;
mod sessions;
mod startup;
mod theme;

use burrow::Stack;
use burrow::axum::body::Body;
use burrow::axum::http::{HeaderMap, Request, StatusCode};
use burrow::{Booted, Server, StartError};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A temp dir holding `app.db`, and the arguments that point the server at it.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    pub fn new() -> Site {
        Site { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("app.db")
    }

    /// `server --database-dsn DIR/app.db EXTRA…`
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args =
            vec!["server".to_string(), "--database-dsn".into(), self.db().display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn build(&self, server: Server, extra: &[&str]) -> Result<Booted, StartError> {
        server.build(self.args(extra))
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

pub async fn send(stack: &Stack, request: Request<Body>) -> Reply {
    let res = stack.clone().oneshot(request).await.expect("stack is infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

pub async fn get(stack: &Stack, path: &str) -> Reply {
    send(stack, Request::get(path).body(Body::empty()).unwrap()).await
}
