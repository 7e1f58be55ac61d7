//! The home page, and what the site changes of the theme: the brand in the layout and a
//! stylesheet for the notes pages.

use burrow::AppFiles;
use burrow::axum::{Router, routing::get};
use burrow::minijinja::context;
use burrow::{App, AppContext, Error, Html, NavItem, Render};

static FILES: AppFiles = burrow::app_files!("src/pages");

pub struct Pages;

impl App for Pages {
    fn name(&self) -> &'static str {
        "pages"
    }

    /// Its layout.html replaces the theme's, so it must come after the theme.
    fn dependencies(&self) -> &'static [&'static str] {
        &["theme"]
    }

    fn files(&self) -> Option<&'static AppFiles> {
        Some(&FILES)
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
