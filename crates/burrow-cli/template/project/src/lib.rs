//! {{Title}}: a Burrow project. Each app is one folder under `src/` owning its routes,
//! migrations, templates and static files; `burrow generate app NAME` adds one.

// burrow: modules (`burrow generate app` adds its `mod` line here)
mod {{crate}};

/// The server the binary runs; the tests build it in-process.
pub fn server() -> burrow::Server {
    burrow::Server::new("{{name}}", env!("CARGO_PKG_VERSION"))
        .about("{{Title}}: a Burrow app")
        // The theme (layout, error pages; the site's name in its header), signed session
        // cookies, a CSRF check on every form, and flash messages shown on the next page.
        .defaults("{{Title}}")
        // burrow: apps (`burrow generate app` adds its `.app(…)` line here)
        .app({{crate}}::{{Name}})
}
