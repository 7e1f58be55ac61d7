//! The home page, and what the site changes of the theme: the brand in the layout and a
//! stylesheet for the notes pages.

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

    /// Its layout.html replaces the theme's, so it must come after the theme.
    fn dependencies(&self) -> &'static [&'static str] {
        &["theme"]
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
