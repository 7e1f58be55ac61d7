//! The files `burrow new` and `burrow generate app` write: the folders under
//! `crates/burrow-cli/template/`, compiled in, with `{{placeholder}}`s in their text and
//! paths replaced.
//!
//! `template/project/` is a project without its app; `template/app/` is one app, written
//! under `src/<app>/`. Two names change on the way, so that the template folder is not
//! itself taken for something: `Cargo.toml.tmpl` (a `Cargo.toml` would make the folder look
//! like a package to cargo) and `gitignore` (a `.gitignore` would apply to this repository).

use std::path::{Path, PathBuf};

use include_dir::{Dir, DirEntry, include_dir};

use crate::names::Names;

static PROJECT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/template/project");
static APP: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/template/app");

/// One file to write: its path relative to the project root, and its text.
pub type FileOut = (PathBuf, String);

/// `(placeholder, value)` pairs; a placeholder is written `{{key}}` in the templates.
type Vars<'a> = Vec<(&'static str, &'a str)>;

/// Every file of `dir`, at any depth.
fn files<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(sub) => files(sub, out),
            DirEntry::File(file) => out.push(file),
        }
    }
}

/// `text` with every `{{key}}` of `vars` replaced.
fn fill(text: &str, vars: &Vars) -> String {
    vars.iter()
        .fold(text.to_string(), |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

/// The files of a template folder, rendered, under `prefix`.
fn render(dir: &Dir<'static>, prefix: &Path, vars: &Vars) -> Vec<FileOut> {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.iter()
        .map(|file| {
            let path = fill(&file.path().to_string_lossy(), vars);
            let path = match path.as_str() {
                "Cargo.toml.tmpl" => "Cargo.toml".to_string(),
                "gitignore" => ".gitignore".to_string(),
                _ => path,
            };
            let text = file.contents_utf8().expect("templates are UTF-8");
            (prefix.join(path), fill(text, vars))
        })
        .collect()
}

/// The files of one app named `app`, serving `url_path` (`/` or `/blog/`), relative to the
/// project root.
pub fn app_files(app: &Names, url_path: &str) -> Vec<FileOut> {
    let vars = vec![
        ("app", app.ident.as_str()),
        ("App", app.camel.as_str()),
        ("app_title", app.title.as_str()),
        ("path", url_path),
    ];
    render(&APP, &Path::new("src").join(&app.ident), &vars)
}

/// The files of a new project: the project, and its first app (named after it) at `/`.
/// `burrow` and `burrow_test` are the dependencies' sources as TOML keys (`path = "…"` or
/// `version = "…"`).
pub fn project_files(project: &Names, burrow: &str, burrow_test: &str) -> Vec<FileOut> {
    let vars = vec![
        ("name", project.name.as_str()),
        ("crate", project.ident.as_str()),
        ("Name", project.camel.as_str()),
        ("Title", project.title.as_str()),
        ("burrow", burrow),
        ("burrow_test", burrow_test),
    ];
    let mut out = render(&PROJECT, Path::new(""), &vars);
    out.extend(app_files(project, "/"));
    out
}

/// The lines `burrow generate app` adds to `src/lib.rs`.
pub fn registration(app: &Names) -> (String, String) {
    (format!("mod {};", app.ident), format!(".app({}::{})", app.ident, app.camel))
}

/// `lib_rs` with the app registered at the markers the `new` template puts there: its `mod`
/// line among those after `// burrow: modules` (in order, as rustfmt sorts them), its
/// `.app(…)` line after the last one following `// burrow: apps`. `None` when a marker is
/// missing.
pub fn register(lib_rs: &str, app: &Names) -> Option<String> {
    let (module, call) = registration(app);
    let mut lines: Vec<String> = lib_rs.lines().map(str::to_string).collect();
    let marker = |lines: &[String], text: &str| {
        lines.iter().position(|l| l.trim_start().starts_with(&format!("// burrow: {text}")))
    };

    let at = marker(&lines, "modules")? + 1;
    let mods = lines[at..].iter().take_while(|l| l.starts_with("mod ")).count();
    let before = lines[at..at + mods].iter().take_while(|l| l.as_str() < module.as_str()).count();
    lines.insert(at + before, module);

    let at = marker(&lines, "apps")? + 1;
    let indent = lines[at - 1].len() - lines[at - 1].trim_start().len();
    let apps = lines[at..].iter().take_while(|l| l.trim_start().starts_with(".app(")).count();
    lines.insert(at + apps, format!("{}{call}", " ".repeat(indent)));

    let mut out = lines.join("\n");
    if lib_rs.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `{{word}}` left in a rendered file: a placeholder the code does not fill.
    /// Jinja's own `{{ … }}` are written with spaces, so they never match.
    fn unfilled(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("{{") {
            rest = &rest[at + 2..];
            let word: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !word.is_empty() && rest[word.len()..].starts_with("}}") {
                found.push(word);
            }
        }
        found
    }

    #[test]
    fn every_placeholder_is_filled() {
        let project = Names::project("my-shop").unwrap();
        let mut out = project_files(&project, "version = \"0.1\"", "version = \"0.1\"");
        out.extend(app_files(&Names::app("blog").unwrap(), "/blog/"));
        for (path, text) in &out {
            let path = path.to_string_lossy();
            assert!(unfilled(&path).is_empty() && !path.contains("{{"), "{path}");
            assert!(unfilled(text).is_empty(), "{path}: {:?}", unfilled(text));
        }
        let paths: Vec<_> = out.iter().map(|(p, _)| p.to_string_lossy().into_owned()).collect();
        for expected in [
            "Cargo.toml",
            ".gitignore",
            "src/lib.rs",
            "src/my_shop/mod.rs",
            "src/my_shop/templates/my_shop/index.html",
            "src/my_shop/migrations/0001_my_shop.sqlite.up.sql",
            "src/blog/migrations/0001_blog.postgres.up.sql",
            "deploy/systemd/my-shop.service",
        ] {
            assert!(paths.iter().any(|p| p == expected), "{expected} in {paths:?}");
        }
    }

    #[test]
    fn registering_an_app_at_the_markers() {
        let project = Names::project("shop").unwrap();
        let lib = project_files(&project, "version = \"0.1\"", "version = \"0.1\"")
            .into_iter()
            .find(|(p, _)| p == Path::new("src/lib.rs"))
            .unwrap()
            .1;
        let lib = register(&lib, &Names::app("blog").unwrap()).unwrap();
        let lib = register(&lib, &Names::app("zoo").unwrap()).unwrap();
        assert!(lib.contains("mod blog;\nmod shop;\nmod zoo;\n"), "{lib}");
        assert!(
            lib.contains(".app(shop::Shop)\n        .app(blog::Blog)\n        .app(zoo::Zoo)\n}")
        );
        assert_eq!(register("mod x;\n", &Names::app("blog").unwrap()), None);
    }
}
