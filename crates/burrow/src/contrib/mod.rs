//! Contrib apps shipped with the framework, registered like any other app:
//!
//! ```no_run
//! use burrow::contrib::{csrf::Csrf, messages::FlashMessages, session::Sessions, theme::Theme};
//! # struct Notes;
//! # impl burrow::App for Notes { fn name(&self) -> &'static str { "notes" } }
//! burrow::Server::new("server", "1.0")
//!     .app(Theme::new("Notes"))
//!     .app(Sessions::new())
//!     .app(Csrf::new())
//!     .app(FlashMessages)
//!     .app(Notes)
//!     .run();
//! ```

pub mod admin;
pub mod auth;
pub mod csrf;
pub mod jobs;
pub mod messages;
pub mod securecookie;
pub mod session;
pub mod theme;

/// Every contrib app's message catalogs, for the test that finds missing translations.
#[cfg(test)]
pub(crate) fn translations() -> Vec<crate::i18n::Source> {
    vec![
        ("theme", &theme::TRANSLATIONS),
        ("admin", &admin::TRANSLATIONS),
        ("jobs", &jobs::TRANSLATIONS),
        ("auth", &auth::TRANSLATIONS),
    ]
}
