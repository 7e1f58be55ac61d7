//! Small apps exercising every hook.

use std::sync::Arc;
use std::sync::Mutex;

use burrow::axum::extract::{Request, State};
use burrow::axum::middleware::{Next, from_fn};
use burrow::axum::response::Response;
use burrow::axum::routing::get;
use burrow::axum::{Extension, Router};
use burrow::db::params;
use burrow::minijinja::context;
use burrow::{
    AnySetting, App, AppContext, ClientIp, Config, ConfigError, Db, Dir, Error, Html, NavItem,
    PeerAddr, Render, RequestContext, RequestId, RequestInfo, Setting,
};

static TEMPLATES_A: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_a");
static TEMPLATES_B: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_b");
static TEMPLATES_BAD: Dir<'static> =
    burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_bad");
static STATIC_A: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/static_a");
static MIGRATIONS_OK: Dir<'static> =
    burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/migrations_ok");
static MIGRATIONS_BAD: Dir<'static> =
    burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/migrations_bad");

/// Which middleware ran, outermost first.
#[derive(Clone, Default)]
struct Trail(Vec<&'static str>);

async fn mark(name: &'static str, mut request: Request, next: Next) -> Response {
    let mut trail = request.extensions().get::<Trail>().cloned().unwrap_or_default();
    trail.0.push(name);
    request.extensions_mut().insert(trail);
    next.run(request).await
}

/// Routes, templates, static files, migrations, nav, request context, middleware.
pub struct A;

impl App for A {
    fn name(&self) -> &'static str {
        "a"
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS_OK)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES_A)
    }

    fn static_files(&self) -> Option<&'static Dir<'static>> {
        Some(&STATIC_A)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![NavItem::new("Pages", "/page").order(2), NavItem::new("Home", "/").order(1)]
    }

    fn request_context(&self, request: &RequestInfo, context: &mut RequestContext) {
        let agent = request
            .headers
            .get("x-who")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nobody")
            .to_string();
        context.function("who", move || agent.clone());
    }

    fn routes(&self, ctx: &AppContext) -> Router {
        Router::new()
            .route(
                "/page",
                get(|render: Render| async move {
                    render.page("page.html", context! { message => "<hi>" })
                }),
            )
            .route(
                "/only-a",
                get(|render: Render| async move { render.page("only_a.html", context! {}) }),
            )
            .route("/panic", get(panics))
            .route("/fails", get(fails))
            // A page other sites of the same origin may frame: its own X-Frame-Options wins
            // over the server-wide DENY.
            .route(
                "/framable",
                get(|| async {
                    ([(burrow::axum::http::header::X_FRAME_OPTIONS, "SAMEORIGIN")], "framable")
                }),
            )
            .route("/id", get(|id: RequestId| async move { id.as_str().to_string() }))
            // Over gzip's threshold of 1 KiB.
            .route(
                "/big",
                get(|| async { burrow::axum::response::Html("<p>big</p>\n".repeat(200)) }),
            )
            .route(
                "/peer",
                get(|peer: Option<PeerAddr>, ClientIp(ip): ClientIp| async move {
                    format!("{:?} {ip:?}", peer.map(|PeerAddr(addr)| addr.to_string()))
                }),
            )
            .route("/items", get(items))
            .route(
                "/trail",
                get(|Extension(trail): Extension<Trail>| async move { trail.0.join(",") }),
            )
            .route(
                "/teapot",
                get(|| async {
                    Err::<Html, _>(Error::new(
                        burrow::axum::http::StatusCode::IM_A_TEAPOT,
                        "short and stout",
                    ))
                }),
            )
            .with_state(ctx.db.clone())
    }

    fn middleware(&self, router: Router, _ctx: &AppContext) -> Router {
        router.layer(from_fn(|r, n| mark("a", r, n)))
    }
}

async fn panics() -> &'static str {
    panic!("boom at {}", 42)
}

/// An internal error with a cause: logged, never shown.
async fn fails() -> burrow::Result<String> {
    Ok(std::fs::read_to_string("/no/such/dir/settings.toml")?)
}

async fn items(State(db): State<Db>) -> Result<String, Error> {
    let names: Vec<(String,)> =
        db.read(|c| c.query("SELECT name FROM items ORDER BY id", params![])).await?;
    Ok(names.into_iter().map(|(n,)| n).collect::<Vec<_>>().join(","))
}

/// `--b-ready` / `B_READY` / `b.ready`.
pub const B_READY: Setting<bool> =
    Setting::new("b.ready").default("true").help("Whether app b reports ready");

/// Depends on A, overrides A's `page.html`, has a setting and a readiness hook.
pub struct B {
    pub ready: bool,
}

impl Default for B {
    fn default() -> Self {
        B::new()
    }
}

impl B {
    pub fn new() -> B {
        B { ready: true }
    }
}

impl App for B {
    fn name(&self) -> &'static str {
        "b"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["a"]
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&B_READY]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        self.ready = config.get(&B_READY)?;
        Ok(())
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES_B)
    }

    fn middleware(&self, router: Router, _ctx: &AppContext) -> Router {
        router.layer(from_fn(|r, n| mark("b", r, n)))
    }

    async fn ready(&self, _ctx: &AppContext) -> Result<(), String> {
        if self.ready { Ok(()) } else { Err("b is switched off (--b-ready false)".into()) }
    }
}

/// An app whose second migration fails.
pub struct Broken;

impl App for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS_BAD)
    }
}

/// An app with migrations and a template that does not compile.
pub struct BadTemplate;

impl App for BadTemplate {
    fn name(&self) -> &'static str {
        "bad_template"
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS_OK)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES_BAD)
    }
}

/// An app with a name and dependencies chosen by the test, recording its shutdown.
pub struct Named(pub &'static str, pub &'static [&'static str], pub Arc<Mutex<Vec<&'static str>>>);

impl Named {
    pub fn new(name: &'static str, deps: &'static [&'static str]) -> Named {
        Named(name, deps, Arc::default())
    }
}

impl App for Named {
    fn name(&self) -> &'static str {
        self.0
    }

    fn dependencies(&self) -> &'static [&'static str] {
        self.1
    }

    async fn shutdown(&self, _ctx: &AppContext) {
        self.2.lock().unwrap().push(self.0);
    }
}
