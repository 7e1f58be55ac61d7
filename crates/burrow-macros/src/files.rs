//! `app_files!("src/blog")`: an app's `migrations/`, `templates/`, `static/` and
//! `translations/` folders,
//! compiled in as one `burrow::AppFiles`.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Error, LitStr};

/// The folders an app may have, in the order `AppFiles::__new` takes them.
const FOLDERS: [&str; 4] = ["migrations", "templates", "static", "translations"];

pub fn expand(path: &LitStr) -> Result<TokenStream, Error> {
    let relative = path.value();
    if Path::new(&relative).is_absolute() || relative.contains('$') {
        return Err(Error::new(
            path.span(),
            "app_files! takes a folder relative to the crate's root, e.g. \"src/blog\"",
        ));
    }
    // Cargo sets it for every crate it compiles; the macro runs while the calling crate
    // compiles, so this is that crate's root.
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| Error::new(path.span(), "app_files! needs cargo (CARGO_MANIFEST_DIR)"))?;
    let root: PathBuf = Path::new(&manifest).join(&relative);
    if !root.is_dir() {
        let shown = root.display();
        return Err(Error::new(path.span(), format!("app_files!: no folder {shown}")));
    }
    let root_str = root.to_str().ok_or_else(|| Error::new(path.span(), "not UTF-8"))?;
    let mut statics = Vec::new();
    let mut args = Vec::new();
    for folder in FOLDERS {
        let dir = root.join(folder);
        if dir.is_dir() {
            let name = format_ident!("{}", folder.to_uppercase());
            let dir = dir.to_str().ok_or_else(|| Error::new(path.span(), "not UTF-8"))?;
            statics.push(quote! {
                static #name: include_dir::Dir<'static> = include_dir::include_dir!(#dir);
            });
            args.push(quote! { ::core::option::Option::Some(&#name) });
        } else {
            args.push(quote! { ::core::option::Option::None });
        }
    }
    Ok(quote! {{
        // `include_dir!` names its crate in the code it generates.
        #[allow(unused_imports)]
        use ::burrow::__private::include_dir;
        #(#statics)*
        ::burrow::AppFiles::__new(#root_str, #relative, #(#args),*)
    }})
}
