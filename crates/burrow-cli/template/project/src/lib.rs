//! {{Title}}: a Burrow project. Each app is one folder under `src/` owning its routes,
//! migrations, templates and static files; `burrow generate app NAME` adds one.

use burrow::contrib::{csrf::Csrf, messages::FlashMessages, session::Sessions, theme::Theme};

// burrow: modules (`burrow generate app` adds its `mod` line here)
mod {{crate}};

/// The server the binary runs; the tests build it in-process.
pub fn server() -> burrow::Server {
    burrow::Server::new("{{name}}", env!("CARGO_PKG_VERSION"))
        .about("{{Title}}: a Burrow app")
        // The layout and error pages, signed session cookies, a CSRF check on every form,
        // and flash messages shown on the next page.
        .app(Theme::new("{{Title}}"))
        .app(Sessions::new())
        .app(Csrf::new())
        .app(FlashMessages)
        // burrow: apps (`burrow generate app` adds its `.app(…)` line here)
        .app({{crate}}::{{Name}})
}
