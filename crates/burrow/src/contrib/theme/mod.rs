//! The default look: a base layout, flash messages, an error page in the site's style, a
//! favicon and a stylesheet of its own (light and dark, phone-sized screens), like Django's
//! admin templates but for the app's own pages.
//!
//! ```no_run
//! use burrow::contrib::theme::Theme;
//! # struct Notes;
//! # impl burrow::App for Notes { fn name(&self) -> &'static str { "notes" } }
//! burrow::Server::new("server", "1.0").app(Theme::new("Notes")).app(Notes).run();
//! ```
//!
//! Pages then `{% extends "layout.html" %}` and fill the `title`, `head`, `content` and
//! `scripts` blocks. Everything is replaceable by name, because a later app's template or
//! static file wins over an earlier one's: an app's `layout.html` (usually extending
//! `theme/base.html` and overriding blocks such as `brand`, `user` or `footer`), its
//! `error.html`, `_messages.html`, `theme/theme.css` or `favicon.ico`. docs/theme.md has
//! the blocks and how to restyle.

use include_dir::Dir;

use crate::app::App;
use crate::template::TemplateEnv;

pub(crate) static TRANSLATIONS: Dir<'static> =
    crate::embed_dir!("$CARGO_MANIFEST_DIR/src/contrib/theme/translations");
static TEMPLATES: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/theme/templates");
static STATIC: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/theme/static");

/// The theme app. Apps whose templates override the theme's should depend on `"theme"`, so
/// they come after it whatever the registration order.
pub struct Theme {
    site_name: &'static str,
}

impl Theme {
    /// `site_name` is shown as the brand, in every page title and in the footer (the
    /// `site_name` template global).
    pub fn new(site_name: &'static str) -> Theme {
        Theme { site_name }
    }
}

impl App for Theme {
    fn name(&self) -> &'static str {
        "theme"
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn static_files(&self) -> Option<&'static Dir<'static>> {
        Some(&STATIC)
    }

    fn translations(&self) -> Option<&'static Dir<'static>> {
        Some(&TRANSLATIONS)
    }

    fn template_env(&self, env: &mut TemplateEnv) {
        env.add_global("site_name", self.site_name);
    }
}
