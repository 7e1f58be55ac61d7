//! The smallest Burrow app: one route.
//!
//! `cargo run -p hello` serves "Hello from Burrow!" at http://localhost:8080/.

use burrow::axum::{Router, routing::get};
use burrow::{App, AppContext, Server};

struct Hello;

impl App for Hello {
    fn name(&self) -> &'static str {
        "hello"
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new().route("/", get(|| async { "Hello from Burrow!" }))
    }
}

fn main() -> std::process::ExitCode {
    Server::new("hello", env!("CARGO_PKG_VERSION")).app(Hello).run()
}
