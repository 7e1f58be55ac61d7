//! Files compiled into the binary: an app's `migrations/`, `templates/` and `static/`
//! folders, embedded with [`embed_dir!`](crate::embed_dir) and walked here.

pub use include_dir::{Dir, File};

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

/// Every file of an embedded directory, recursively, with `/`-separated paths.
pub(crate) fn files(dir: &'static Dir<'static>) -> Vec<(String, &'static File<'static>)> {
    let mut out: Vec<_> =
        dir.files().filter_map(|f| Some((f.path().to_str()?.replace('\\', "/"), f))).collect();
    for sub in dir.dirs() {
        out.extend(files(sub));
    }
    out
}
