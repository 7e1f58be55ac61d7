//! "Export my notes" (examples/notes/src/notes/export.rs): `POST /notes/export` queues a
//! job, the notes page says when the file is ready, and only its owner downloads it. On the
//! real binary, whose job workers do the work, on both engines (`exports_*::sqlite`,
//! `::postgres`); and in-process with `burrow_test::Client`, where no workers run and the
//! test works the queue with `burrow::contrib::jobs::run_due`.

use std::time::{Duration, Instant};

use burrow_test::Client;

use crate::both_engines;
use crate::support::{
    Credentials, Database, Engine, Launch, PATIENCE, client, create_note, header, short, tempdir,
};

/// Notes whose text an export must carry as it is: markup, quotes, line breaks, non-ASCII.
const NOTES: [(&str, &str); 3] = [
    ("Shopping list", "Milk, eggs\nand \"good\" bread"),
    ("<script>alert(1)</script>", "a & b <b>bold</b>"),
    ("Café ☕", "Ünïcödé, tabs\tand 'quotes'"),
];

/// Sends `request` with `me`'s cookies and CSRF token, then keeps the cookies it sets, as a
/// browser does: the export's id and the flash messages travel in the session cookie.
async fn send(me: &mut Credentials, request: reqwest::RequestBuilder) -> reqwest::Response {
    let res = me.attach(request).send().await.expect("a response");
    for set in res.headers().get_all("set-cookie") {
        let pair = set.to_str().expect("ASCII cookie").split(';').next().unwrap_or("");
        if pair.contains('=') {
            me.cookie = me.cookie_with(pair.trim());
        }
    }
    res
}

/// The export id of a download link's path (`/notes/exports/{id}/download`).
fn export_id(path: &str) -> i64 {
    path.strip_prefix("/notes/exports/")
        .and_then(|rest| rest.strip_suffix("/download"))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a download path: {path:?}"))
}

/// The `href` of the notice's download link (`Your export is ready: Download`), if the page
/// has it.
fn ready_link(html: &str) -> Option<String> {
    let notice = &html[html.find("Your export is ready:")?..];
    let href = &notice[notice.find("href=\"")? + "href=\"".len()..];
    Some(href[..href.find('"')?].to_string())
}

/// Checks an export file against the notes `(id, title, content)` it must hold, in order.
fn check_file(json: &serde_json::Value, username: &str, notes: &[(i64, &str, &str)]) {
    assert_eq!(json["username"], username, "{json:#}");
    let exported_at = json["exported_at"].as_str().unwrap_or_default();
    assert!(exported_at.ends_with('Z') && exported_at.len() == 20, "exported_at: {json:#}");
    let got = json["notes"].as_array().unwrap_or_else(|| panic!("no notes array: {json:#}"));
    let got: Vec<(i64, &str, &str)> = got
        .iter()
        .map(|n| {
            for key in ["created_at", "updated_at"] {
                assert!(n[key].as_str().is_some_and(|t| t.ends_with('Z')), "{key}: {n:#}");
            }
            (
                n["id"].as_i64().expect("id"),
                n["title"].as_str().expect("title"),
                n["content"].as_str().expect("content"),
            )
        })
        .collect();
    assert_eq!(got, notes, "the notes of the export");
}

both_engines!(
    exports_are_made_in_the_background_for_their_owner_only,
    |engine: Engine| async move {
        let dir = tempdir();
        let db = Database::new(engine, dir.path());
        let launch = Launch::serve_on(&db, dir.path());
        let server = launch.start();
        let http = client();
        let mut notes = Vec::new();
        for (title, content) in NOTES {
            notes.push((create_note(&http, &server, title, content).await, title, content));
        }

        let mut me = server.credentials();
        let res = send(&mut me, http.post(server.url("/notes/export"))).await;
        assert_eq!(res.status(), 303, "POST /notes/export: {}", res.text().await.unwrap());
        assert_eq!(header(&res, "location").as_deref(), Some("/notes"));

        // The flash message on the first page; the notice once the workers are done, however
        // many pages that takes.
        let deadline = Instant::now() + PATIENCE;
        let mut first = true;
        let link = loop {
            let res = send(&mut me, http.get(server.url("/notes"))).await;
            assert_eq!(res.status(), 200);
            let page = res.text().await.unwrap();
            if first {
                assert!(page.contains("Your export is being prepared."), "{}", short(&page));
                first = false;
            }
            if let Some(link) = ready_link(&page) {
                break link;
            }
            assert!(
                Instant::now() < deadline,
                "no ready export within {PATIENCE:?}: {}",
                short(&page)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let id = export_id(&link);
        let res = send(&mut me, http.get(server.url("/notes"))).await;
        let page = res.text().await.unwrap();
        assert!(ready_link(&page).is_none(), "the notice shows once: {}", short(&page));

        let res = send(&mut me, http.get(server.url(&link))).await;
        assert_eq!(res.status(), 200, "GET {link}");
        assert_eq!(header(&res, "content-type").as_deref(), Some("application/json"));
        assert_eq!(
            header(&res, "content-disposition"),
            Some(format!("attachment; filename=\"notes-export-{id}.json\""))
        );
        let file = res.text().await.unwrap();
        assert!(file.contains("\n  \"notes\": ["), "pretty-printed: {file}");
        check_file(&serde_json::from_str(&file).expect("JSON"), "tester", &notes);

        // The exports page lists it, ready, and no longer polls.
        let res = send(&mut me, http.get(server.url("/notes/exports/"))).await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(page.contains(&format!("id=\"export-{id}\"")), "{}", short(&page));
        assert!(page.contains(&format!("href=\"{link}\"")), "{}", short(&page));
        assert!(!page.contains("hx-trigger"), "polls with nothing pending: {}", short(&page));

        // Nobody else gets it: another user, a missing or malformed id, an anonymous visitor.
        let mut bob = Credentials::sign_in_as(&launch, server.port, "bob");
        let res = send(&mut bob, http.get(server.url(&link))).await;
        assert_eq!(res.status(), 404, "another user's export");
        let page =
            send(&mut bob, http.get(server.url("/notes/exports/"))).await.text().await.unwrap();
        assert!(!page.contains(&format!("export-{id}")), "listed for bob: {}", short(&page));
        for path in
            [format!("/notes/exports/{}/download", id + 1000), "/notes/exports/x/download".into()]
        {
            assert_eq!(
                send(&mut me, http.get(server.url(&path))).await.status(),
                404,
                "GET {path}"
            );
        }
        for path in [link.as_str(), "/notes/exports/"] {
            let res = http.get(server.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 303, "anonymous GET {path}");
            let location = header(&res, "location").unwrap_or_default();
            assert!(location.starts_with("/auth/login?next="), "anonymous GET {path}: {location}");
        }
        let res = http.post(server.url("/notes/export")).send().await.unwrap();
        assert_eq!(res.status(), 403, "an anonymous POST without a CSRF token");
    }
);

/// In-process: the queue is worked by `run_due`, so the test sees the pending state the
/// workers of a real server leave behind in milliseconds.
#[test]
fn an_export_is_pending_until_the_queue_runs_then_announced_once() {
    let client = Client::new(notes::server());
    client.sign_in("ann");
    let mut notes = Vec::new();
    for (title, content) in NOTES {
        let created = client.post("/notes", &[("title", title), ("content", content)]);
        assert_eq!(created.status(), 303, "{created:?}");
        let id = created.location().and_then(|l| l.strip_prefix("/notes/")).unwrap().parse();
        notes.push((id.unwrap(), title, content));
    }

    // The list page's own form asks for it.
    let list = client.get("/notes");
    let form = list.form_fields("form[action='/notes/export']");
    assert_eq!(form.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["csrf_token"]);
    let asked = client.post("/notes/export", &form);
    assert_eq!((asked.status(), asked.location()), (303, Some("/notes")), "{asked:?}");
    let page = asked.follow();
    assert_eq!(page.messages(), ["Your export is being prepared."]);
    assert!(page.select(".export-notice").is_empty(), "pending: no notice yet");

    // Pending: listed, polling, not downloadable, no notice.
    let exports = client.get("/notes/exports/");
    assert_eq!(exports.status(), 200);
    let id: i64 = exports.attr("tr[id^='export-']", "id")[0]["export-".len()..].parse().unwrap();
    assert_eq!(exports.select(&format!("#export-{id} .status")), ["Being prepared…"]);
    assert_eq!(exports.attr("#exports", "hx-trigger"), ["every 2s"]);
    assert_eq!(exports.select("#exports a[href$='/download']"), Vec::<String>::new());
    assert_eq!(exports.select_one("#exports a[href='/notes/exports/']"), "Refresh");
    let download = format!("/notes/exports/{id}/download");
    assert_eq!(client.get(&download).status(), 409, "not ready yet");
    assert!(client.get("/notes").select(".export-notice").is_empty());

    let ran = client.block_on(burrow::contrib::jobs::run_due(client.context()));
    assert!(ran >= 1, "run_due ran {ran} jobs");

    // Any notes page announces it, once, with an unboosted download link.
    let (note, _, _) = notes[0];
    let page = client.get(&format!("/notes/{note}"));
    assert_eq!(page.select_one(".export-notice"), "Your export is ready: Download");
    assert_eq!(page.attr(".export-notice a", "href"), [download.as_str()]);
    assert_eq!(page.attr(".export-notice a", "hx-boost"), ["false"]);
    assert!(client.get("/notes").select(".export-notice").is_empty(), "shown once");

    let file = client.get(&download);
    assert_eq!(file.status(), 200, "{file:?}");
    assert_eq!(file.header("content-type"), Some("application/json"));
    check_file(&file.json(), "ann", &notes);

    // Delivered again (at least once), the job leaves a ready export as it is, though the
    // notes changed since.
    let edited = client.post(&format!("/notes/{note}"), &[("title", "Renamed"), ("content", "")]);
    assert_eq!(edited.status(), 303, "{edited:?}");
    let jobs = client.context().jobs.clone();
    client
        .block_on(jobs.enqueue(notes::ExportNotes { export_id: id }))
        .expect("enqueue the export's job again");
    assert!(client.block_on(burrow::contrib::jobs::run_due(client.context())) >= 1);
    assert_eq!(client.get(&download).text(), file.text(), "a ready export was rewritten");

    let exports = client.get("/notes/exports/");
    assert_eq!(exports.select(&format!("#export-{id} .status")), ["Ready"]);
    assert!(exports.attr("#exports", "hx-trigger").is_empty(), "nothing pending, no polling");
    assert_eq!(exports.attr(&format!("#export-{id} a"), "href"), [download]);
}
