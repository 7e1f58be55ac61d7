//! The `admin` app: `/admin/` for staff, with a page set for every table an app registers
//! with [`App::admin`](crate::App::admin) (see [`burrow::admin`](crate::admin) for the
//! declarations).
//!
//! - `/admin/`: the dashboard, every app's models with their row counts and the latest
//!   changes; a sidebar grouped by app on every admin page.
//! - `/admin/{slug}/`: the list, with search (`?q=`), filters, sorting (`?sort=`), pages,
//!   bulk actions on selected rows, and links to export the whole selection as CSV or
//!   JSON (`export.csv`, `export.json`).
//! - `/admin/{slug}/new`, `/admin/{slug}/{id}`: create and edit with the app's form rules,
//!   "save and continue editing", read-only fields, the object's history; a save of an
//!   object that changed since it was opened is refused (409) rather than overwriting.
//! - `/admin/{slug}/{id}/delete`: a confirmation listing the rows that go with it.
//!
//! Every page needs a staff user (anonymous visitors go to the login page, other users
//! get the 403 page); every change is written to the admin log in its own transaction.
//!
//! ```no_run
//! use burrow::contrib::admin::AdminApp;
//! use burrow::contrib::auth::Auth;
//!
//! burrow::Server::new("server", "1.0").defaults("My site").app(Auth::new()).app(AdminApp).run();
//! ```

mod export;
mod log;
mod query;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use include_dir::Dir;

use crate::admin::{AdminSite, ModelAdmin};
use crate::app::App;
use crate::context::AppContext;
use crate::contrib::auth::User;
use crate::db::Db;
use crate::template::NavItem;

static MIGRATIONS: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/admin/migrations");
pub(crate) static TRANSLATIONS: Dir<'static> =
    crate::embed_dir!("$CARGO_MANIFEST_DIR/src/contrib/admin/translations");
static TEMPLATES: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/admin/templates");
static STATIC: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/admin/static");

/// Serves `/admin/`; needs the auth app (staff users) before it.
pub struct AdminApp;

impl App for AdminApp {
    fn name(&self) -> &'static str {
        "admin"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["theme", "session", "csrf", "messages", "auth"]
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn translations(&self) -> Option<&'static Dir<'static>> {
        Some(&TRANSLATIONS)
    }

    fn static_files(&self) -> Option<&'static Dir<'static>> {
        Some(&STATIC)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![NavItem::new("Admin", "/admin/").order(90).staff()]
    }

    fn routes(&self, ctx: &AppContext) -> Router {
        let site = Site(ctx.admin.clone(), ctx.clone());
        Router::new()
            .route("/admin/", get(views::dashboard))
            .route("/admin", get(|| async { axum::response::Redirect::permanent("/admin/") }))
            .route("/admin/{slug}/", get(views::list))
            .route("/admin/{slug}/new", get(views::new_page).post(views::create))
            .route("/admin/{slug}/bulk", post(views::bulk))
            .route("/admin/{slug}/export.csv", get(export::csv))
            .route("/admin/{slug}/export.json", get(export::json))
            .route("/admin/{slug}/{id}", get(views::edit_page).post(views::update))
            .route("/admin/{slug}/{id}/delete", get(views::delete_page).post(views::delete))
            .route("/admin/{slug}/{id}/actions/{action}", post(views::row_action))
            .with_state(site)
    }
}

/// The registered models and the server's context, the handlers' state.
#[derive(Clone)]
pub(crate) struct Site(Arc<AdminSite>, AppContext);

impl Site {
    fn model(&self, slug: &str) -> Result<&ModelAdmin, crate::Error> {
        self.0.models.iter().find(|m| m.slug == slug).ok_or_else(crate::Error::not_found)
    }

    /// The server's database: the admin log's.
    fn main_db(&self) -> &Db {
        &self.1.db
    }

    /// The database of `model`'s table.
    fn db(&self, model: &ModelAdmin) -> Db {
        model.database.map_or_else(|| self.1.db.clone(), |db_of| db_of(&self.1))
    }

    /// Where changes to `model` are logged by `user`.
    fn log(&self, model: &ModelAdmin, user: &Arc<User>) -> log::Sink {
        let separate = model.database.map(|_| self.1.db.clone());
        log::Sink::new(user.clone(), separate)
    }
}
