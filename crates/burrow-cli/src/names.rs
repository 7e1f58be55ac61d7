//! Checking the names `burrow new` and `burrow generate app` are given, and the forms the
//! templates need (`my-shop` → crate `my_shop`, type `MyShop`, title `My Shop`).

/// Rust's keywords, strict and reserved (2024 edition): none can name a crate or module.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Crate names that would clash with what a project uses: the standard crates, its two
/// dependencies (a `mod burrow;` would hide the crate), and the names cargo forbids for a
/// binary (they are folders of `target/`).
const RESERVED_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "burrow",
    "serde",
    "deps",
    "examples",
    "build",
    "incremental",
];

/// Names an app's `mod.rs` uses unqualified: an app type of the same name would hide them.
const USED_IN_APP: &[&str] = &[
    "App",
    "AppContext",
    "AppFiles",
    "Db",
    "Form",
    "FormResult",
    "FromRow",
    "Html",
    "IntoResponse",
    "Item",
    "ItemForm",
    "Messages",
    "NavItem",
    "Page",
    "Paginator",
    "Redirect",
    "Render",
    "Response",
    "Result",
    "Router",
    "Serialize",
    "Valid",
];

/// The forms of one project or app name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// As given: the package and binary name (`my-shop`).
    pub name: String,
    /// The Rust identifier: crate, module, table prefix (`my_shop`).
    pub ident: String,
    /// The app's type (`MyShop`).
    pub camel: String,
    /// The heading and site name (`My Shop`).
    pub title: String,
}

impl Names {
    fn of(name: &str) -> Names {
        let ident = name.replace('-', "_");
        let words: Vec<String> = ident
            .split('_')
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase());
                first.into_iter().chain(chars).collect()
            })
            .collect();
        Names { name: name.to_string(), ident, camel: words.concat(), title: words.join(" ") }
    }

    /// A project name: a crate name in lowercase (`-` allowed), whose first app is named
    /// after it too. The error says what is wrong, to follow "'NAME' is not a valid project
    /// name: ".
    pub fn project(name: &str) -> Result<Names, String> {
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) || !name.chars().all(allowed) {
            return Err(
                "use lowercase ASCII letters, digits, '-' and '_', starting with a letter".into()
            );
        }
        if name.len() > 64 {
            return Err("use at most 64 characters".into());
        }
        let names = Names::of(name);
        names.check_ident()?;
        Ok(names)
    }

    /// An app name: a lowercase Rust identifier (no `-`: it names a module).
    pub fn app(name: &str) -> Result<Names, String> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) || !name.chars().all(allowed) {
            return Err(
                "use lowercase ASCII letters, digits and '_', starting with a letter".into()
            );
        }
        if name.len() > 64 {
            return Err("use at most 64 characters".into());
        }
        let names = Names::of(name);
        names.check_ident()?;
        Ok(names)
    }

    fn check_ident(&self) -> Result<(), String> {
        if KEYWORDS.contains(&self.ident.as_str()) {
            return Err("it is a Rust keyword".into());
        }
        if RESERVED_CRATES.contains(&self.ident.as_str()) {
            return Err("it is reserved (a standard crate, a dependency or a target folder)".into());
        }
        if USED_IN_APP.contains(&self.camel.as_str()) {
            return Err(format!("its type, {}, would hide a name the app's code uses", self.camel));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Names;

    #[test]
    fn forms_of_a_name() {
        let names = Names::project("my-shop2").unwrap();
        assert_eq!(names.name, "my-shop2");
        assert_eq!(names.ident, "my_shop2");
        assert_eq!(names.camel, "MyShop2");
        assert_eq!(names.title, "My Shop2");
        assert_eq!(Names::app("blog").unwrap().camel, "Blog");
    }

    #[test]
    fn bad_names() {
        for bad in ["", "1shop", "My", "my shop", "my.shop", "fn", "gen", "std", "burrow", "deps"] {
            assert!(Names::project(bad).is_err(), "{bad}");
        }
        for bad in ["my-blog", "Blog", "self", "item", "router", "_x", &"a".repeat(65)] {
            assert!(Names::app(bad).is_err(), "{bad}");
        }
        assert!(Names::project("my-shop_2").is_ok());
    }
}
