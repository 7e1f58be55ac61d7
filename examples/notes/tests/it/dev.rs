//! `--dev` (docs/guide/development.md): the real binary reading the notes app's folders
//! from a copy in the test's directory (`--dev-source-root`, so the repository's files are
//! never edited), templates and static files reloaded on change, the reload event stream,
//! a broken template shown and recovered from, keys kept across runs, the loopback-only
//! rule, and production without any of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::failure::Failure;
use crate::support::{Launch, Server, client, get, header, mode, tempdir, try_create_note};

/// The notes example's `src/` (apps `notes` and `pages`, with templates and static files).
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Deadline for anything that should happen within a second or so (no timing asserts:
/// only so that a failure does not hang).
const PATIENCE: Duration = Duration::from_secs(10);

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the source") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A copy of the notes sources in `dir/src`, and a `--dev` launch reading them.
fn dev_launch(dir: &Path) -> Launch {
    copy_tree(Path::new(SOURCE), &dir.join("src"));
    Launch::serve(dir).args(["--dev", "--dev-source-root"]).arg(dir)
}

fn home_template(dir: &Path) -> PathBuf {
    dir.join("src/pages/templates/home.html")
}

/// Replaces `from` with `to` in `path` (panics if `from` is not there).
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// GETs `path` until `done(status, body)`; the time it took, or a panic after PATIENCE.
async fn until(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    what: &str,
    done: impl Fn(u16, &str) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = get(http, server, path).await;
        if done(status, &body) {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "{what}: still {status} after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads the reload stream into a channel, one chunk at a time; the channel closes when
/// the stream ends.
async fn open_reload_stream(
    http: &reqwest::Client,
    server: &Server,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let mut res = http.get(server.url("/__burrow/reload")).send().await.expect("reload stream");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type").as_deref(), Some("text/event-stream"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = res.chunk().await {
            if tx.send(String::from_utf8_lossy(&chunk).into_owned()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a chunk containing `what`; `None` when the stream ended first.
async fn next_containing(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    what: &str,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(chunk)) if chunk.contains(what) => return Some(chunk),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(_) => panic!("no {what:?} on the reload stream within {PATIENCE:?}"),
        }
    }
}

#[tokio::test]
async fn templates_and_static_files_reload_without_a_restart() {
    let dir = tempdir();
    let mut server = dev_launch(dir.path()).start();
    let http = client();

    // The page carries the reload script, and its static URLs are the unhashed ones.
    let (status, page) = get(&http, &server, "/").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<script src="/__burrow/reload.js" defer></script></body>"#));
    assert!(page.contains("/static/css/app.css"), "unhashed stylesheet URL: {page}");
    let (status, script) = get(&http, &server, "/__burrow/reload.js").await;
    assert!(status == 200 && script.contains("EventSource"), "{status} {script}");
    let mut events = open_reload_stream(&http, &server).await;

    // (a) + (b): an edited template is served without a restart, and the stream says so.
    // The latency is from the write to the first response with the new content.
    let template = home_template(dir.path());
    let mut latencies = Vec::new();
    // The first edit replaces the heading's catalog text, the next ones the marker before.
    let mut previous = "{{ t(\"pages-hero\") }}".to_string();
    for n in 0..9 {
        let marker = format!("Edited heading {n}");
        // Spread the edits over the watcher's 200 ms poll, as saves in an editor are,
        // rather than each landing just after a poll (the previous edit was just seen).
        tokio::time::sleep(Duration::from_millis(n * 23)).await;
        edit(&template, &previous, &marker);
        let took =
            until(&http, &server, "/", "edited template", |s, b| s == 200 && b.contains(&marker))
                .await;
        latencies.push(took);
        next_containing(&mut events, "event: reload").await.expect("a reload event");
        previous = marker;
    }
    latencies.sort();
    let ms: Vec<String> =
        latencies.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0)).collect();
    println!(
        "--dev template reload latency (write → new content served): median {:.0} ms, \
         min {} ms, max {} ms over {} edits [{}]",
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        ms[0],
        ms[ms.len() - 1],
        ms.len(),
        ms.join(", ")
    );

    // (c) A syntax error: logged once naming the template and line, shown on the error
    // page; the fix recovers without a restart.
    let from = server.log_len();
    edit(&template, &previous, &format!("{{% if %}}{previous}"));
    until(&http, &server, "/", "broken template", |s, b| {
        s == 500 && b.contains("home.html") && b.contains("syntax error")
    })
    .await;
    let (_, line) = server.wait_for_log_after(from, "naming the broken template", |l| {
        l.contains("--dev: template home.html") && l.contains("syntax error")
    });
    assert!(line.contains("home.html:"), "the line names the line number: {line}");
    edit(&template, "{% if %}", "");
    until(&http, &server, "/", "fixed template", |s, b| s == 200 && b.contains(&previous)).await;

    // (d) A stylesheet is served fresh on every request, never cached.
    let css = dir.path().join("src/pages/static/css/app.css");
    let mut text = std::fs::read_to_string(&css).expect("read the stylesheet");
    text.push_str("\n/* dev-test-marker */\n");
    std::fs::write(&css, text).expect("write the stylesheet");
    let res = http.get(server.url("/static/css/app.css")).send().await.expect("GET css");
    assert_eq!(res.status().as_u16(), 200);
    let cache = header(&res, "cache-control").unwrap_or_default();
    assert!(cache.contains("no-cache"), "Cache-Control: {cache}");
    assert!(res.text().await.expect("css").contains("dev-test-marker"), "fresh stylesheet");
    next_containing(&mut events, "event: reload").await.expect("a reload after the css edit");
    for bad in ["/static/../Cargo.toml", "/static/%2e%2e/Cargo.toml", "/static/.hidden"] {
        let (status, _) = get(&http, &server, bad).await;
        assert_eq!(status, 404, "{bad}");
    }

    // Request timing: one readable line per request.
    server
        .wait_for_log("a dev request line", |l| l.contains("GET / → 200 in ") && l.contains(" ms"));

    // The stream ends when the server drains, so it does not hold the shutdown.
    let stop = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let ended =
        tokio::time::timeout(PATIENCE, async { while events.recv().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the reload stream did not end with the server");
    println!(
        "--dev: SIGTERM with a reload stream open: exited in {:.2} s",
        stop.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn dev_mode_binds_loopback_only_unless_forced() {
    let dir = tempdir();
    let launch = dev_launch(dir.path());
    let out = launch.clone().args(["--host", "0.0.0.0"]).run();
    Failure::of(&out)
        .mentions(&["--dev", "from flag --dev", "--dev-allow-public"])
        .no_database(dir.path())
        .check();
    let out = Launch::serve(dir.path()).env("BURROW_DEV", "1").args(["--host", ""]).run();
    Failure::of(&out)
        .mentions(&["--dev", "BURROW_DEV", "every interface"])
        .no_database(dir.path())
        .check();
    assert!(!dir.path().join(".burrow-dev-keys").exists(), "nothing written before the refusal");

    // `server check` names it among what would go wrong in production.
    let out = launch.clone().arg("check").run();
    assert!(out.stdout.contains("--dev is on (from flag --dev)"), "{out:?}");

    let mut server = launch.args(["--host", "0.0.0.0", "--dev-allow-public"]).start_ready();
    server.wait_for_log("listening", |l| l.contains("listening on http://0.0.0.0:"));
    assert!(server.terminate().success());
}

#[tokio::test]
async fn generated_keys_survive_a_restart_in_a_private_file() {
    let dir = tempdir();
    let launch = dev_launch(dir.path()).without_keys();
    let http = client();
    let mut first = launch.start();
    let credentials = first.credentials();
    assert!(first.terminate().success());

    let keys = dir.path().join(".burrow-dev-keys");
    assert_eq!(mode(&keys) & 0o777, 0o600, "the keys file is private");
    let text = std::fs::read_to_string(&keys).expect("read the keys file");
    let mut second = launch.start();
    second
        .wait_for_log("the kept-keys warning", |l| l.contains("kept in .burrow-dev-keys by --dev"));
    let id = try_create_note(&http, second.port, &credentials, "Kept", "across runs").await;
    assert!(id.is_ok(), "a form loaded before the restart still posts: {id:?}");
    let log = [first.log(), second.log()].concat().join("\n");
    for line in text.lines() {
        let hex = line.split_once(' ').expect("name hex").1;
        assert!(!log.contains(hex), "a key in the log");
    }
    assert!(second.terminate().success());
}

#[tokio::test]
async fn production_has_no_reload_endpoint_script_or_keys_file() {
    let dir = tempdir();
    let mut server = Launch::serve(dir.path()).without_keys().start();
    let http = client();
    let (status, _) = get(&http, &server, "/__burrow/reload").await;
    assert_eq!(status, 404);
    let (status, _) = get(&http, &server, "/__burrow/reload.js").await;
    assert_eq!(status, 404);
    let (_, page) = get(&http, &server, "/").await;
    assert!(!page.contains("__burrow"), "no reload script in production");
    assert!(!page.contains("/static/css/app.css\""), "hashed static URLs in production");
    assert!(server.log().iter().all(|l| !l.contains("--dev")));
    assert!(server.terminate().success());
    assert!(!dir.path().join(".burrow-dev-keys").exists());
}
