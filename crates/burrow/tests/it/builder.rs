//! An app declared with `AppBuilder` and `app_files!`: its folders (here without a
//! `static/`), the `Db` and `Paginator` extractors, `Conn::query_page`, and the
//! `setting()` template function, which never hands a secret to a template.

use burrow::axum::routing::{get, post};
use burrow::db::params;
use burrow::minijinja::context;
use burrow::{
    AnySetting, App, AppBuilder, AppFiles, Db, Html, Page, Paginator, Render, Result, Server,
    Setting, app_files,
};

use crate::{Site, get as fetch, send};

static FILES: AppFiles = app_files!("tests/it/builder_app");

const HEADING: Setting<String> = Setting::new("blog.heading").default("Posts");
const API_KEY: Setting<String> = Setting::new("blog.api_key").default("s3cr3t-value").secret();
static SETTINGS: [&dyn AnySetting; 2] = [&HEADING, &API_KEY];

#[derive(serde::Serialize, burrow::db::FromRow)]
struct Post {
    title: String,
}

async fn list(db: Db, pages: Paginator, render: Render) -> Result<Html> {
    let pages = pages.with_per_page(2);
    let sql = "SELECT title FROM posts ORDER BY id";
    let page: Page<Post> = db.read(move |c| c.query_page(sql, &[], pages)).await?;
    render.page("posts.html", context! { page })
}

async fn add(db: Db, body: String) -> Result<&'static str> {
    db.write(move |c| c.execute("INSERT INTO posts (title) VALUES (?)", params![body])).await?;
    Ok("added")
}

fn server() -> Server {
    let page = |name: &'static str| move |r: Render| async move { r.page(name, context! {}) };
    let blog = AppBuilder::new("blog").files(&FILES).settings(&SETTINGS).routes(
        burrow::axum::Router::new()
            .route("/posts", get(list))
            .route("/posts/add", post(add))
            .route("/leak", get(page("leak.html")))
            .route("/undeclared", get(page("undeclared.html"))),
    );
    Server::new("server", "1.0").app(blog)
}

#[tokio::test]
async fn a_declared_app_brings_its_folders_and_reaches_the_database_without_state() {
    let files = &FILES;
    assert!(files.migrations().is_some() && files.templates().is_some());
    assert!(files.static_files().is_none(), "no static/ folder, so none is embedded");
    assert!(files.source().ends_with("tests/it/builder_app"), "{}", files.source().display());
    assert_eq!(AppBuilder::new("blog").files(files).name(), "blog");

    let site = Site::new();
    let booted = site.build(server(), &["--blog-heading", "Our posts"]).expect("starts");
    for title in ["one", "two", "three"] {
        let add = burrow::axum::http::Request::post("/posts/add")
            .header("sec-fetch-site", "same-origin")
            .body(title.into())
            .unwrap();
        let reply = send(&booted.stack, add).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let first = fetch(&booted.stack, "/posts").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("<h1>Our posts</h1>"), "{}", first.body);
    assert!(first.body.contains("<li>one</li><li>two</li></ul>"), "{}", first.body);
    assert!(first.body.contains("page 1, next 2</p>"), "{}", first.body);
    let second = fetch(&booted.stack, "/posts?page=2").await;
    assert!(second.body.contains("<li>three</li></ul>"), "{}", second.body);
    assert!(second.body.contains("page 2, prev 1</p>"), "{}", second.body);
    let bad = fetch(&booted.stack, "/posts?page=-1").await;
    assert!(bad.body.contains("page 1, next 2</p>"), "a bad page is page 1: {}", bad.body);
    booted.shutdown().await;
}

#[tokio::test]
async fn templates_get_declared_settings_but_never_secret_ones() {
    let site = Site::new();
    let booted = site.build(server(), &[]).expect("starts");
    for path in ["/leak", "/undeclared"] {
        let reply = fetch(&booted.stack, path).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.body);
        assert!(!reply.body.contains("s3cr3t-value"), "{path}: {}", reply.body);
    }
    booted.shutdown().await;
}

/// `--dev` on a copy of the app's folder (`--dev-source-root`, so the repository's files
/// are not edited): templates come from disk, an edit is served without a restart, a
/// syntax error is shown until fixed, and the reload routes exist.
#[tokio::test]
async fn dev_mode_reads_the_app_folder_and_rebuilds_it_on_change() {
    let site = Site::new();
    let root = site.dir.path().join("copy");
    let templates = root.join("tests/it/builder_app/templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(FILES.source().join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
    }
    let root_arg = root.to_str().unwrap();
    let booted = site.build(server(), &["--dev", "--dev-source-root", root_arg]).expect("starts");
    assert_eq!(fetch(&booted.stack, "/__burrow/reload.js").await.status, 200);
    assert!(fetch(&booted.stack, "/posts").await.body.contains("<h1>Posts</h1>"));

    let posts = templates.join("posts.html");
    let original = std::fs::read_to_string(&posts).unwrap();
    std::fs::write(&posts, original.replace("<h1>", "<h1 class=\"edited\">")).unwrap();
    let edited = wait_for(&booted.stack, |r| r.body.contains("<h1 class=\"edited\">")).await;
    assert_eq!(edited.status, 200, "{}", edited.body);

    std::fs::write(&posts, format!("{{% for %}}{original}")).unwrap();
    let broken = wait_for(&booted.stack, |r| r.status == 500).await;
    assert!(broken.body.contains("posts.html") && broken.body.contains("syntax error"));
    std::fs::write(&posts, &original).unwrap();
    let fixed = wait_for(&booted.stack, |r| r.status == 200).await;
    assert!(fixed.body.contains("<h1>Posts</h1>"), "{}", fixed.body);
    booted.shutdown().await;

    // Without --dev: the embedded copy, and no reload routes.
    let site = Site::new();
    let booted = site.build(server(), &[]).expect("starts");
    assert_eq!(fetch(&booted.stack, "/__burrow/reload.js").await.status, 404);
    assert_eq!(fetch(&booted.stack, "/__burrow/reload").await.status, 404);
    booted.shutdown().await;
}

/// GETs /posts until `done`; panics after 10 s (the watcher looks every 200 ms).
async fn wait_for(stack: &burrow::Stack, done: impl Fn(&crate::Reply) -> bool) -> crate::Reply {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = fetch(stack, "/posts").await;
        if done(&reply) {
            return reply;
        }
        assert!(std::time::Instant::now() < deadline, "still {}: {}", reply.status, reply.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
