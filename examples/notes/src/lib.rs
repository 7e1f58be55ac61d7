//! The notes example: a complete Burrow app, built as the `server` binary.
//!
//! Two apps of its own, each one folder owning its routes, templates, static files and
//! migrations, on top of the framework's theme, session, CSRF, flash-message, auth and
//! job-queue apps:
//! - [`Pages`]: the home page, the site's brand in the theme's layout, the notes stylesheet;
//! - [`Notes`]: notes with create, edit, delete, validation, pagination, full-text search,
//!   htmx partials and flash messages, and "Export": a JSON file of the user's notes made by
//!   a background job ([`ExportNotes`]); in the admin (`/admin/notes/`) for staff.

use burrow::contrib::admin::AdminApp;
use burrow::contrib::auth::Auth;
use burrow::contrib::jobs::JobsApp;
use burrow::contrib::{csrf::Csrf, messages::FlashMessages, session::Sessions, theme::Theme};

mod notes;
mod pages;

pub use notes::{ExportNotes, Notes};
pub use pages::Pages;

/// The server the `server` binary runs; tests and benchmarks build it in-process.
pub fn server() -> burrow::Server {
    burrow::Server::new("server", env!("CARGO_PKG_VERSION"))
        .about("Notes: a Burrow example app on an embedded SQLite database")
        .app(Theme::new("Burrow Notes"))
        .app(Pages)
        .app(Sessions::new())
        .app(Csrf::new())
        .app(FlashMessages)
        .app(Auth::new())
        .app(JobsApp::new())
        .app(Notes)
        .app(AdminApp)
}
