//! `burrow new` and `burrow generate app` end to end, with the real `burrow` binary: the
//! files, the errors, then the generated project built, tested and serving its page.
//!
//! The project is built against this workspace's compiled dependencies: the same target
//! folder, profile, `--target` and RUSTFLAGS as this test, this workspace's Cargo.lock,
//! offline, and the same features (see `ask_for_the_workspace_features`). Only the project
//! itself, and burrow with its proc-macro crate (a path dependency outside the workspace
//! gets another build hash), are compiled again, which keeps this test to about a minute
//! instead of a build of ~300 crates. The project's crates go through clippy on the way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const BURROW: &str = env!("CARGO_BIN_EXE_burrow");

/// `burrow ARGS` run in `dir`.
fn burrow(dir: &Path, args: &[&str]) -> Output {
    Command::new(BURROW).args(args).current_dir(dir).output().unwrap()
}

/// Asserts `out` is a usage error: exit code 2 and one line on stderr containing `naming`.
fn assert_refused(out: &Output, naming: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("burrow: error: ") && stderr.contains(naming), "{stderr}");
}

/// Every file under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn mistakes_are_one_line_exit_2_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    for bad in ["1shop", "My-Shop", "my.shop", "fn", "burrow"] {
        assert_refused(
            &burrow(dir, &["new", bad]),
            &format!("'{bad}' is not a valid project name"),
        );
    }
    let out = burrow(dir, &["new", "shop", "--burrow-path", "/nonexistent/burrow"]);
    assert_refused(&out, "/nonexistent/burrow");
    assert_eq!(tree(dir), Vec::<String>::new(), "nothing written");

    std::fs::create_dir_all(dir.join("taken")).unwrap();
    std::fs::write(dir.join("taken/notes.txt"), "mine").unwrap();
    assert_refused(&burrow(dir, &["new", "taken"]), "taken already exists and is not empty");
    let out = burrow(dir, &["new", "shop", "--path", "taken"]);
    assert_refused(&out, "taken already exists and is not empty");
    assert_eq!(tree(dir), ["taken/notes.txt"]);

    let out = burrow(dir, &["generate", "app", "blog"]);
    assert_refused(&out, "not in a project: no Cargo.toml in");
    assert_eq!(tree(dir), ["taken/notes.txt"]);

    // An empty folder is fine for `new`.
    std::fs::create_dir(dir.join("empty")).unwrap();
    let out = burrow(dir, &["new", "shop", "--path", "empty"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let project = dir.join("empty");
    let before = tree(&project);
    let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    // The first app is named after the project, so its folder is taken.
    assert_refused(&burrow(&project, &["generate", "app", "shop"]), "src/shop already exists");
    assert_refused(&burrow(&project, &["generate", "app", "my-blog"]), "'my-blog'");
    assert_refused(&burrow(&project, &["generate", "app", "self"]), "'self'");
    assert_eq!(tree(&project), before);
    assert_eq!(std::fs::read_to_string(project.join("src/lib.rs")).unwrap(), lib);
}

#[test]
fn generate_app_without_markers_says_what_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path();
    std::fs::write(project.join("Cargo.toml"), "[package]\nname = \"own\"\n").unwrap();
    std::fs::create_dir(project.join("src")).unwrap();
    std::fs::write(project.join("src/lib.rs"), "pub fn server() {}\n").unwrap();
    let out = burrow(&project.join("src"), &["generate", "app", "blog"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mod blog;") && stdout.contains(".app(blog::Blog)"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(project.join("src/lib.rs")).unwrap(),
        "pub fn server() {}\n"
    );
    assert!(project.join("src/blog/mod.rs").is_file());
}

/// How this test was built, for building the generated project the same way: the target
/// folder, and cargo's arguments for the profile and `--target`. The test runs from
/// `<target>/<profile>/deps/` or `<target>/<triple>/<profile>/deps/`.
fn this_build() -> (PathBuf, Vec<String>) {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let mut args = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => vec![],
        "release" => vec!["--release".to_string()],
        other => vec!["--profile".to_string(), other.to_string()],
    };
    let above = profile_dir.parent().unwrap();
    // `<target>/<triple>/<profile>` with `--target`: the folder above the profile is named
    // like a triple (`x86_64-unknown-linux-gnu`) and sits in a target folder, which cargo
    // marks with CACHEDIR.TAG. (Cargo writes that file into per-triple folders too, so it
    // alone does not tell them apart.)
    let name = above.file_name().unwrap().to_string_lossy().to_string();
    let in_target = above.parent().is_some_and(|p| p.join("CACHEDIR.TAG").exists());
    let target_dir = if name.split('-').count() >= 3 && in_target {
        args.extend(["--target".to_string(), name]);
        above.parent().unwrap().to_path_buf()
    } else {
        above.to_path_buf()
    };
    (target_dir, args)
}

/// Whether cargo set `var` for this test process (it describes this package). Build scripts
/// such as ring's watch some of these (`rerun-if-env-changed=CARGO_PKG_NAME`, …) as cargo
/// sees them, so the inner cargo must not inherit them: the workspace was built from a shell
/// without them, and ring and its dependents would be built again.
fn set_for_this_test(var: &str) -> bool {
    const SET: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    SET.contains(&var) || var.starts_with("CARGO_PKG_") || var.starts_with("CARGO_BIN_EXE_")
}

/// Adds the registry dependencies this workspace's crates compile for the target (every
/// member's dependencies and dev-dependencies, except a proc-macro crate's, which are
/// compiled for the host), as the workspace's Cargo.toml declares them, to the project's
/// dev-dependencies. Cargo compiles a crate once per feature set, and a crate's features
/// are those its dependents ask for, together: the workspace's tests (reqwest, criterion,
/// …) turn on features of serde, tower, hyper-util and others that the project alone would
/// not, so the project would get builds of its own of most of its dependency tree. Asking
/// for the same, it finds them compiled. Only the test does this: the shipped Cargo.toml
/// stays as written.
fn ask_for_the_workspace_features(project: &Path, workspace: &Path) {
    let root = std::fs::read_to_string(workspace.join("Cargo.toml")).unwrap();
    let members = root.lines().find_map(|l| l.strip_prefix("members = [")).unwrap();
    // Each dependency a member takes from the workspace, with the features the member adds
    // (`axum = { workspace = true, features = ["tokio"] }` in bench/bare): cargo unifies
    // those too, and a project that missed one would compile axum and its dependents again.
    let mut used: Vec<(String, Vec<String>)> = Vec::new();
    for member in members.trim_end_matches(']').split(',') {
        let manifest = workspace.join(member.trim().trim_matches('"')).join("Cargo.toml");
        let manifest = std::fs::read_to_string(manifest).unwrap();
        if manifest.contains("proc-macro = true") {
            continue;
        }
        for line in manifest.lines() {
            let (name, features) = if let Some(name) = line.strip_suffix(".workspace = true") {
                (name, Vec::new())
            } else if let Some((name, rest)) = line.split_once(" = { workspace = true") {
                (name, quoted_features(rest))
            } else {
                continue;
            };
            match used.iter_mut().find(|(n, _)| n == name) {
                Some((_, all)) => all.extend(features),
                None => used.push((name.to_string(), features)),
            }
        }
    }
    let declared = root.split("[workspace.dependencies]\n").nth(1).unwrap();
    let mut lines =
        vec!["# tests/new.rs: what the workspace compiles, for its features".to_string()];
    for line in declared.lines().take_while(|l| !l.starts_with('[')) {
        let name = line.split(" = ").next().unwrap();
        let Some((_, added)) = used.iter().find(|(n, _)| n == name) else { continue };
        if line.contains("path = ") {
            continue;
        }
        let added: String = added.iter().map(|f| format!("\"{f}\", ")).collect();
        let line = if added.is_empty() {
            line.to_string()
        } else if line.contains("features = [") {
            line.replacen("features = [", &format!("features = [{added}"), 1)
        } else if let Some(table) = line.strip_suffix(" }") {
            format!("{table}, features = [{added}] }}")
        } else {
            let version = line.split_once(" = ").unwrap().1;
            format!("{name} = {{ version = {version}, features = [{added}] }}")
        };
        lines.push(line);
    }
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let manifest = manifest
        .replace("[dev-dependencies]\n", &format!("[dev-dependencies]\n{}\n", lines.join("\n")));
    std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
}

/// The quoted names in the first `features = [...]` of a manifest line.
fn quoted_features(line: &str) -> Vec<String> {
    let Some((_, list)) = line.split_once("features = [") else { return Vec::new() };
    let list = list.split(']').next().unwrap();
    list.split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .filter(|f| !f.is_empty())
        .collect()
}

/// `cargo ARGS` in `project`, sharing this workspace's target folder; panics with cargo's
/// output when it fails.
fn cargo(project: &Path, target_dir: &Path, args: &[String]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    // The project's own crates compiled through clippy with `-D warnings`, as `cargo clippy`
    // does it (its driver as the workspace wrapper): lints checked without a second build
    // of the dependencies in check mode. clippy-driver sits beside cargo in a toolchain.
    let clippy = Path::new(&cargo).with_file_name("clippy-driver");
    if clippy.is_file() {
        command
            .env("RUSTC_WORKSPACE_WRAPPER", clippy)
            .env("CLIPPY_ARGS", "-D__CLIPPY_HACKERY__warnings");
    } else {
        eprintln!("no clippy-driver beside {cargo}: the project's lints are not checked");
    }
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(set_for_this_test) {
            command.env_remove(var);
        }
    }
    let out = command
        .args(args)
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `GET path` on 127.0.0.1:`port`: the status and the body (HTTP/1.0: the body ends with
/// the connection).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_string())
}

#[test]
fn a_new_project_builds_passes_its_tests_and_serves_its_page() {
    let (name, title) = ("hello-burrow", "Hello Burrow");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let burrow_dir = workspace.join("crates/burrow");
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join(name);
    let start = Instant::now();

    // The project, with the default dependency: the burrow crate beside this one.
    let out = burrow(tmp.path(), &["new", name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cargo run") && stdout.contains("cargo test"), "{stdout}");
    let files = tree(&project);
    for expected in [
        ".gitignore",
        "Cargo.toml",
        "Dockerfile",
        "README.md",
        "deploy/systemd/hello-burrow-forking.service",
        "deploy/systemd/hello-burrow.service",
        "deploy/systemd/hello-burrow.socket",
        "rustfmt.toml",
        "src/hello_burrow/migrations/0001_hello_burrow.postgres.up.sql",
        "src/hello_burrow/migrations/0001_hello_burrow.sqlite.up.sql",
        "src/hello_burrow/mod.rs",
        "src/hello_burrow/static/hello_burrow/style.css",
        "src/hello_burrow/templates/hello_burrow/index.html",
        "src/lib.rs",
        "src/main.rs",
        "tests/app.rs",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected} not in {files:?}");
    }
    let read = |path: &str| std::fs::read_to_string(project.join(path)).unwrap();
    let dependency = format!("burrow = {{ path = \"{}\" }}", burrow_dir.display());
    assert!(read("Cargo.toml").contains(&dependency), "{}", read("Cargo.toml"));
    assert!(read("tests/app.rs").contains("use burrow_test::Client;"));
    assert!(read("Dockerfile").contains("cp target/x86_64-unknown-linux-gnu/release/hello-burrow"));
    assert!(read("deploy/systemd/hello-burrow.service").contains("/usr/local/bin/hello-burrow "));
    for ignored in ["target/", "data/", "*.db", "*.db-wal", "*.db-shm", ".burrow-dev-keys"] {
        assert!(read(".gitignore").lines().any(|l| l == ignored), "{ignored}");
    }
    let readme = read("README.md");
    assert!(readme.contains("cargo run ") && readme.contains("cargo test "), "{readme}");

    // An app, from a folder inside the project.
    let out = burrow(&project.join("src"), &["generate", "app", "blog"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in [
        "src/blog/mod.rs",
        "src/blog/templates/blog/index.html",
        "src/blog/static/blog/style.css",
        "src/blog/migrations/0001_blog.sqlite.up.sql",
        "src/blog/migrations/0001_blog.postgres.up.sql",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }
    let lib = read("src/lib.rs");
    assert!(lib.contains("mod blog;\nmod hello_burrow;\n"), "{lib}");
    assert!(lib.contains(".app(hello_burrow::HelloBurrow)\n        .app(blog::Blog)\n"), "{lib}");

    // The files are formatted as written.
    let (target_dir, build_args) = this_build();
    cargo(&project, &target_dir, &["fmt".into(), "--check".into()]);

    // The workspace's lock file and features: the same builds as the compiled dependencies.
    ask_for_the_workspace_features(&project, &workspace);
    std::fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let built = Instant::now();
    let mut args = vec!["test".to_string(), "--offline".to_string()];
    args.extend(build_args.iter().cloned());
    let out = cargo(&project, &target_dir, &args);
    let tested = Instant::now();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let compiled: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");

    // The binary `cargo test` built, serving the two apps.
    let profile_dir = match build_args.iter().position(|a| a == "--target") {
        Some(at) => target_dir.join(&build_args[at + 1]),
        None => target_dir.clone(),
    };
    let profile =
        if build_args.first().is_some_and(|a| a == "--release") { "release" } else { "debug" };
    let db = tmp.path().join("app.db");
    let mut server = Command::new(profile_dir.join(profile).join(name))
        .args(["--port", "0", "--database-dsn"])
        .arg(&db)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines().map(Result::unwrap);
    let mark = "listening on http://127.0.0.1:";
    let line = lines.by_ref().find(|l| l.contains(mark)).expect(mark);
    let port: u16 = line[line.find(mark).unwrap() + mark.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    lines.by_ref().find(|l| l.contains(" ready ")).expect("ready");
    std::thread::spawn(move || lines.for_each(drop));
    let (status, home) = get(port, "/");
    let served = Instant::now();
    let (blog_status, blog) = get(port, "/blog/");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status, 200, "{home}");
    assert!(home.contains(&format!("<h1>{title}</h1>")), "{home}");
    assert_eq!(blog_status, 200, "{blog}");
    assert!(blog.contains("<h1>Blog</h1>"), "{blog}");

    eprintln!(
        "burrow new → served page: {:.1} s (build and tests {:.1} s, of which cargo test \
         compiled {} crates: {})",
        (served - start).as_secs_f64(),
        (tested - built).as_secs_f64(),
        compiled.len(),
        compiled.join(", ")
    );
    // The point of sharing the target folder: only the project and burrow's own crates
    // (path dependencies outside this workspace, which cargo hashes apart) compile, not
    // their ~300 dependencies again.
    let expected = [name, "burrow", "burrow-macros", "burrow-test"];
    let others: Vec<&&str> = compiled.iter().filter(|c| !expected.contains(c)).collect();
    assert!(others.is_empty(), "compiled again, check the features and the lock: {others:?}");
}
