//! The theme app on its own (no sessions, CSRF or messages), and replaced by a later app.

use burrow::axum::Router;
use burrow::axum::routing;
use burrow::contrib::theme::Theme;
use burrow::minijinja::context;
use burrow::{App, AppContext, Dir, Error, Html, NavItem, Render, Server};

use crate::apps::{A, B};
use crate::{Site, get};

static TEMPLATES: Dir<'static> =
    burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_themed");

/// One page extending the theme's layout, using the framework's filters.
struct Themed;

impl App for Themed {
    fn name(&self) -> &'static str {
        "themed"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["theme"]
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![NavItem::new("Themed", "/themed"), NavItem::new("Home", "/").order(-1)]
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new().route("/themed", routing::get(page))
    }
}

async fn page(render: Render) -> Result<Html, Error> {
    render.page("themed.html", context! { when => "2026-01-02T03:04:05Z", n => 2 })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_theme_works_without_the_other_contrib_apps() {
    let site = Site::new();
    // Registered before the theme: the dependency puts it after.
    let booted = site
        .build(Server::new("server", "1.2.3").app(Themed).app(Theme::new("Site & Co")), &[])
        .unwrap();
    let page = get(&booted.stack, "/themed").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = page.body.replace("&#x2f;", "/");
    assert!(body.contains("<title>Themed · Site &amp; Co</title>"), "{body}");
    assert!(body.contains("name=\"viewport\""), "{body}");
    assert!(body.contains("<a href=\"/themed\" aria-current=\"page\">Themed</a>"), "{body}");
    assert_eq!(body.matches("aria-current").count(), 1, "{body}");
    assert!(body.contains("Site &amp; Co · v1.2.3"), "footer: {body}");
    assert!(body.contains("<p id=\"filters\">2026-01-02 1,234,567 2 notes</p>"), "{body}");
    assert!(!body.contains("hx-headers"), "no CSRF app, no token header: {body}");
    assert!(body.contains("<div id=\"messages\" class=\"messages\">\n</div>"), "{body}");

    let missing = get(&booted.stack, "/nope").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("<title>404 Not Found · Site &amp; Co</title>"),
        "{}",
        missing.body
    );

    let icon = get(&booted.stack, "/favicon.ico").await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.headers["content-type"], "image/x-icon");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_later_apps_layout_replaces_the_themes() {
    let site = Site::new();
    let server = Server::new("server", "9.9.9").app(Theme::new("Site")).app(B::new()).app(A);
    let booted = site.build(server, &[]).unwrap();
    let page = get(&booted.stack, "/page").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.starts_with("<html><body><nav>"), "A's layout.html wins: {}", page.body);
    assert!(!page.body.contains("theme.css"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_theme_there_is_no_favicon() {
    let site = Site::new();
    let booted = site.build(Server::new("server", "9.9.9").app(B::new()).app(A), &[]).unwrap();
    assert_eq!(get(&booted.stack, "/favicon.ico").await.status, 404);
}
