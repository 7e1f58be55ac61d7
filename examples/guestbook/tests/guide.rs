//! The tutorial cannot rot: every ```rust block in docs/guide/tutorial.md and the guide's
//! README.md (and every ```toml, ```sql, ```jinja and ```css block) must be a verbatim
//! excerpt of a file of this app, the tutorial's finished app.
//!
//! The guide's concept pages (apps.md, database.md, …) are not excerpts: their Rust blocks
//! are doctests of burrow (`mod guide` in crates/burrow/src/lib.rs), compiled and run by
//! `cargo test -p burrow --doc`.

use std::fs;
use std::path::{Path, PathBuf};

/// The pages whose blocks are excerpts of this app.
const PAGES: &[&str] = &["tutorial.md", "README.md"];

/// The languages whose blocks are excerpts; ```sh and plain blocks are not checked.
const CHECKED: &[&str] = &["rust", "toml", "sql", "jinja", "css"];

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { found.extend(files(&path)) } else { found.push(path) }
    }
    found
}

/// The fenced blocks of a Markdown text in `CHECKED` languages: (language, line, text).
fn blocks(markdown: &str) -> Vec<(String, usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_string(), n + 1, String::new())),
            (Some(_), Some("")) => blocks.push(open.take().unwrap()),
            (Some((_, _, text)), _) => text.extend([line, "\n"]),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a block is not closed");
    blocks.retain(|(lang, _, _)| CHECKED.contains(&lang.as_str()));
    blocks
}

#[test]
fn every_code_block_of_the_guide_is_from_the_guestbook() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources: Vec<(PathBuf, String)> = ["Cargo.toml", "src", "tests"]
        .iter()
        .flat_map(|p| if app.join(p).is_dir() { files(&app.join(p)) } else { vec![app.join(p)] })
        .map(|path| (path.clone(), fs::read_to_string(&path).unwrap()))
        .collect();
    let guide = app.join("../../docs/guide");
    let mut checked = 0;
    let mut stale = Vec::new();
    for page in PAGES.iter().map(|name| guide.join(name)) {
        let markdown = fs::read_to_string(&page).unwrap();
        for (lang, line, text) in blocks(&markdown) {
            checked += 1;
            let text = text.trim();
            if !sources.iter().any(|(_, source)| source.contains(text)) {
                let first = text.lines().next().unwrap_or("");
                stale.push(format!("{}:{line} ```{lang}: {first}", page.display()));
            }
        }
    }
    assert!(stale.is_empty(), "not in examples/guestbook:\n{}", stale.join("\n"));
    assert!(checked >= 10, "only {checked} blocks found in {}", guide.display());
}
