//! The site frame: layout, home page, stylesheet, and an error page in the site's style.

use burrow::Dir;
use burrow::axum::{Router, routing::get};
use burrow::minijinja::context;
use burrow::{App, AppContext, Error, Html, NavItem, Render};

static TEMPLATES: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/src/pages/templates");
static STATIC: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/src/pages/static");

pub struct Pages;

impl App for Pages {
    fn name(&self) -> &'static str {
        "pages"
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn static_files(&self) -> Option<&'static Dir<'static>> {
        Some(&STATIC)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![NavItem::new("Home", "/").order(0)]
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new().route("/", get(home))
    }
}

async fn home(render: Render) -> Result<Html, Error> {
    render.page("home.html", context! {})
}
