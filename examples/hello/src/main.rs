//! The smallest Burrow app: one route.
//!
//! `cargo run -p hello` serves "Hello from Burrow!" at http://localhost:8080/.

use burrow::prelude::*;

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
    // "+hello" tells this build apart from the notes server in /healthz/live (the restart
    // tests replace one binary with the other).
    Server::new("hello", concat!(env!("CARGO_PKG_VERSION"), "+hello")).app(Hello).run()
}
