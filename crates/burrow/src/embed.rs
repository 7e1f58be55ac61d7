//! Files compiled into the binary: an app's `migrations/`, `templates/` and `static/`
//! folders, embedded together with [`app_files!`](crate::app_files) (or one by one with
//! [`embed_dir!`](crate::embed_dir)) and walked here.

use std::borrow::Cow;

pub use include_dir::{Dir, File};

/// An app's folders, compiled in by [`app_files!`](crate::app_files): its
/// `migrations/`, `templates/`, `static/` and `translations/`, each present only if the folder exists. An app
/// hands it over once, in [`App::files`](crate::App::files):
///
/// ```ignore
/// static FILES: AppFiles = app_files!("src/blog");
///
/// impl App for Blog {
///     fn files(&self) -> Option<&'static AppFiles> {
///         Some(&FILES)
///     }
/// }
/// ```
///
/// The folder's path at build time is kept too: `server --dev` reads templates and static
/// files from there, so an edit shows without a rebuild.
#[derive(Debug)]
pub struct AppFiles {
    source: &'static str,
    relative: &'static str,
    migrations: Option<&'static Dir<'static>>,
    templates: Option<&'static Dir<'static>>,
    static_files: Option<&'static Dir<'static>>,
    translations: Option<&'static Dir<'static>>,
}

impl AppFiles {
    #[doc(hidden)]
    pub const fn __new(
        source: &'static str,
        relative: &'static str,
        migrations: Option<&'static Dir<'static>>,
        templates: Option<&'static Dir<'static>>,
        static_files: Option<&'static Dir<'static>>,
        translations: Option<&'static Dir<'static>>,
    ) -> AppFiles {
        AppFiles { source, relative, migrations, templates, static_files, translations }
    }

    /// The folder these files were compiled from (an absolute path on the build machine).
    pub fn source(&self) -> &'static std::path::Path {
        std::path::Path::new(self.source)
    }

    /// The folder as `app_files!` was given it, relative to its crate's root (`src/blog`):
    /// `--dev-source-root` reads it from another checkout.
    pub fn relative(&self) -> &'static str {
        self.relative
    }

    /// `migrations/`: `*.up.sql`, applied in name order.
    pub fn migrations(&self) -> Option<&'static Dir<'static>> {
        self.migrations
    }

    /// `templates/`, named by their path inside it.
    pub fn templates(&self) -> Option<&'static Dir<'static>> {
        self.templates
    }

    /// `static/`, served under `/static/`.
    pub fn static_files(&self) -> Option<&'static Dir<'static>> {
        self.static_files
    }

    /// `translations/`: one message catalog per language (`en.toml`, `de.toml`; see
    /// [`i18n`](crate::i18n)).
    pub fn translations(&self) -> Option<&'static Dir<'static>> {
        self.translations
    }
}

/// Embeds a folder of the calling crate into the binary, for an app's migrations,
/// templates or static files. The path starts with `$CARGO_MANIFEST_DIR` (the calling
/// crate's root):
///
/// ```ignore
/// static TEMPLATES: burrow::Dir<'static> =
///     burrow::embed_dir!("$CARGO_MANIFEST_DIR/src/notes/templates");
/// ```
///
/// The calling crate needs no dependency of its own for this (the `include_dir!` macro
/// it wraps names its crate in the code it generates; this brings that name into scope).
#[macro_export]
macro_rules! embed_dir {
    // `tt`, not `literal`: a `literal` fragment reaches the proc macro wrapped in an
    // invisible group, which it refuses.
    ($path:tt) => {{
        #[allow(unused_imports)]
        use $crate::__private::include_dir;
        include_dir::include_dir!($path)
    }};
}

/// Every file of an embedded directory, recursively, with `/`-separated paths: the
/// embedded path itself where it has no `\\` (a build on Windows writes those).
pub(crate) fn files(
    dir: &'static Dir<'static>,
) -> Vec<(Cow<'static, str>, &'static File<'static>)> {
    let slashed = |path: &'static str| match path.contains('\\') {
        true => Cow::Owned(path.replace('\\', "/")),
        false => Cow::Borrowed(path),
    };
    let mut out: Vec<_> =
        dir.files().filter_map(|f| Some((slashed(f.path().to_str()?), f))).collect();
    for sub in dir.dirs() {
        out.extend(files(sub));
    }
    out
}
