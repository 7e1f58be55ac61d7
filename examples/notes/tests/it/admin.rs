//! The admin in-process (`burrow_test::Client`, on SQLite and on PostgreSQL): every route
//! of `/admin/` for the notes, users, invites and jobs the apps register, through the
//! whole stack (sessions, CSRF, guards, flash messages, error pages). Ann is the first
//! account, so an admin; Bob is a plain user.

use burrow::db::params;
use burrow_test::{Client, TestResponse};

use crate::both_engines;
use crate::support::{Database, Engine};

/// A client of the notes server on a database of `engine` (dropped with it).
struct Site {
    client: Client,
    _db: Option<Database>,
}

impl Site {
    fn new(engine: Engine) -> Site {
        match engine {
            // The client's own SQLite file in its temporary directory.
            Engine::Sqlite => Site { client: Client::new(notes::server()), _db: None },
            Engine::Postgres => {
                let db = Database::new(engine, std::path::Path::new("/nonexistent"));
                let client = Client::with_args(notes::server(), &["--database-dsn", &db.dsn]);
                Site { client, _db: Some(db) }
            }
        }
    }
}

impl std::ops::Deref for Site {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A client with Ann (admin) and Bob (user), signed in as `who`.
fn client_as(engine: Engine, who: &str) -> Site {
    let client = Site::new(engine);
    client.sign_in("ann");
    client.sign_in("bob");
    client.sign_in(who);
    client
}

fn user_id(client: &Client, username: &str) -> i64 {
    let name = username.to_string();
    client
        .block_on(
            client.db().read(move |c| {
                c.query_one("SELECT id FROM users WHERE username = ?", params![name])
            }),
        )
        .expect("the user exists")
}

/// Inserts notes for `username`: `(title, content, created_at)`.
fn seed(client: &Client, username: &str, notes: Vec<(String, String, String)>) {
    let name = username.to_string();
    client
        .block_on(client.db().write(move |c| {
            for (title, content, created_at) in &notes {
                c.execute(
                    "INSERT INTO notes (title, content, created_at, updated_at, user_id) VALUES \
                     (?, ?, ?, ?, (SELECT id FROM users WHERE username = ?))",
                    params![
                        title.as_str(),
                        content.as_str(),
                        created_at.as_str(),
                        created_at.as_str(),
                        name.as_str()
                    ],
                )?;
            }
            Ok(())
        }))
        .expect("seeding notes");
}

/// `count` notes "Note 01"… of `username`'s, created a day apart from 2026-01-01.
fn seed_many(client: &Client, username: &str, count: usize) {
    let notes = (1..=count)
        .map(|n| {
            let day = format!("2026-{:02}-{:02}T12:00:00Z", 1 + (n - 1) / 28, 1 + (n - 1) % 28);
            (format!("Note {n:02}"), format!("Generated note number {n}"), day)
        })
        .collect();
    seed(client, username, notes);
}

/// The first column's texts of the list (the row links).
fn titles(page: &TestResponse<'_>) -> Vec<String> {
    page.select("table.admin-table tbody td:nth-child(2) a")
}

fn count(client: &Client, sql: &'static str) -> i64 {
    client.block_on(client.db().read(move |c| c.query_one(sql, &[]))).unwrap()
}

both_engines!(blocking anonymous_visitors_sign_in_first_and_users_without_staff_get_403, |engine: Engine| {
    let client = Site::new(engine);
    let page = client.get("/admin/notes/?q=x");
    assert_eq!(page.status(), 303);
    assert_eq!(page.location(), Some("/auth/login?next=%2Fadmin%2Fnotes%2F%3Fq%3Dx"));
    let json = client.request("GET", "/admin/").header("Accept", "application/json").send();
    assert_eq!(json.status(), 401);

    let client = client_as(engine, "bob");
    for path in ["/admin/", "/admin/notes/", "/admin/users/1", "/admin/notes/export.csv"] {
        let page = client.get(path);
        assert_eq!(page.status(), 403, "{path}");
        assert!(page.text().contains("for staff only"), "{path}: the 403 page");
    }
    let post = client.post("/admin/users/1", &[("role", "user")]);
    assert_eq!(post.status(), 403);
    // No Admin link in the navigation for them.
    assert!(!client.get("/notes").select("nav.site-nav a").contains(&"Admin".to_string()));
});

both_engines!(blocking the_dashboard_groups_every_apps_models_with_counts_and_recent_changes, |engine: Engine| {
    let client = client_as(engine, "ann");
    seed_many(&client, "bob", 3);
    let page = client.get("/admin/");
    assert_eq!(page.status(), 200, "{}", page.text());
    assert_eq!(page.select("nav.site-nav a[aria-current='page']"), ["Admin"]);
    assert_eq!(page.select(".admin-sidebar h2"), ["Auth", "Jobs", "Notes"]);
    assert_eq!(page.select(".admin-sidebar li a"), ["Users", "Invites", "Jobs", "Notes"]);
    let counts = page.select(".admin-count");
    assert!(counts.iter().any(|c| c.starts_with("2 Users")), "{counts:?}");
    assert!(counts.iter().any(|c| c.starts_with("3 Notes")), "{counts:?}");
    assert!(page.text().contains("Nothing changed through the admin yet."));
    // Security headers and the CSRF header for htmx, as on every page.
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.text().contains("hx-headers='{\"X-CSRF-Token\""));
});

both_engines!(blocking the_list_searches_filters_sorts_and_pages_by_declarations_only, |engine: Engine| {
    let client = client_as(engine, "ann");
    seed_many(&client, "ann", 45);
    let walrus = |t: &str| {
        (t.to_string(), "about the walrus".to_string(), "2025-06-01T00:00:00Z".to_string())
    };
    seed(&client, "bob", vec![walrus("Bob's first"), walrus("Bob's second")]);

    let page = client.get("/admin/notes/");
    assert_eq!(page.status(), 200);
    assert_eq!(page.select_one("h1 small"), "47");
    assert_eq!(titles(&page).len(), 20);
    assert_eq!(titles(&page)[0], "Bob's second", "newest first");
    assert_eq!(page.select_one(".pagination span"), "Page 1 of 3");
    let last = client.get("/admin/notes/?page=3");
    assert_eq!(titles(&last).len(), 7);

    // Full-text search (the notes' index), by word.
    let found = client.get("/admin/notes/?q=walrus");
    assert_eq!(
        titles(&found),
        ["Bob's first", "Bob's second"]
            .map(String::from)
            .to_vec()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    );
    // Filter by author, from the relation's rows.
    let bob = user_id(&client, "bob");
    let by_bob = client.get(&format!("/admin/notes/?user_id={bob}"));
    assert_eq!(by_bob.select_one("h1 small"), "2");
    assert!(by_bob.select(".admin-filters a.active").contains(&"bob".to_string()));
    // Authors shown by name.
    assert!(by_bob.select("table.admin-table td").contains(&"bob".to_string()));
    // The search box and the date form keep the rest of the list's state.
    let state = client.get(&format!("/admin/notes/?user_id={bob}&sort=title&q=walrus"));
    let search = state.form_fields("form.admin-search");
    assert!(search.contains(&("user_id".into(), bob.to_string())), "{search:?}");
    assert!(search.contains(&("sort".into(), "title".into())), "{search:?}");
    let dates = state.form_fields("form.admin-dates");
    for kept in [("q", "walrus"), ("sort", "title")] {
        assert!(dates.contains(&(kept.0.into(), kept.1.into())), "{dates:?}");
    }
    assert!(dates.contains(&("user_id".into(), bob.to_string())), "{dates:?}");
    // A date range (both days included).
    let january = client.get("/admin/notes/?created_at__from=2026-01-01&created_at__to=2026-01-28");
    assert_eq!(january.select_one("h1 small"), "28");
    // Sorting by a declared column, both ways; the header link toggles.
    let asc = client.get("/admin/notes/?sort=title");
    assert_eq!(titles(&asc)[..2], ["Bob's first", "Bob's second"]);
    let link = asc.attr("th[aria-sort] a", "href");
    assert_eq!(link, ["?sort=-title"]);
    let desc = client.get("/admin/notes/?sort=-title");
    assert_eq!(titles(&desc)[0], "Note 45");
    // Undeclared sorts and filters are ignored, not put into SQL.
    let ignored = client.get("/admin/notes/?sort=content%3BDROP&content=x&user_id=nan&evil%22=1");
    assert_eq!(ignored.status(), 200);
    assert_eq!(titles(&ignored), titles(&page));
    // LIKE wildcards in a search are literal (users are searched with LIKE).
    let users = client.get("/admin/users/?q=%25");
    assert_eq!(users.select_one("h1 small"), "0");
    let users = client.get("/admin/users/?q=AN");
    assert_eq!(users.select("table.admin-table tbody td:nth-child(2) a"), ["ann"]);
});

both_engines!(blocking create_validates_with_the_apps_form_and_logs_the_change, |engine: Engine| {
    let client = client_as(engine, "ann");
    let form = client.get("/admin/notes/new");
    assert_eq!(form.status(), 200);
    let fields = form.form_fields("form.admin-form");
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["csrf_token", "title", "content", "user_id"]);
    // The author: a select of the users, the creating user chosen.
    assert_eq!(form.select("select#user_id option"), ["ann", "bob"]);
    let ann = user_id(&client, "ann").to_string();
    assert_eq!(fields[3].1, ann);

    let invalid = client.post("/admin/notes/new", &[("title", "  "), ("content", "x")]);
    assert_eq!(invalid.status(), 422);
    assert_eq!(invalid.select_one("#title-error"), "Title is required.");
    assert_eq!(invalid.select_one("#user_id-error"), "Author is required.");
    assert_eq!(invalid.select_one("#content"), "x", "what was typed is kept");
    // An author that is not a user is refused; nothing is written.
    let nobody = client.post("/admin/notes/new", &[("title", "T"), ("user_id", "999999")]);
    assert_eq!(nobody.status(), 422);
    assert!(nobody.select_one(".errors").contains("Author: that one does not exist"));
    assert_eq!(count(&client, "SELECT count(*) FROM notes"), 0);

    let saved = client.post(
        "/admin/notes/new",
        &[
            ("title", "From the admin\u{2}"),
            ("content", "Body"),
            ("user_id", &ann),
            ("_continue", "1"),
        ],
    );
    assert_eq!(saved.status(), 303, "{}", saved.text());
    let at = saved.location().unwrap().to_string();
    assert!(at.starts_with("/admin/notes/"), "save and continue: {at}");
    let page = client.get(&at);
    assert_eq!(page.messages(), ["Created note “From the admin”."]);
    assert_eq!(page.select_one("h1"), "From the admin", "the app's form cleaned the title");
    assert_eq!(page.select("select#user_id option[selected]"), ["ann"], "the author");
    assert_eq!(page.select(".admin-history li").len(), 1);
    assert!(page.select_one(".admin-history li").contains("ann · created"));
    let dashboard = client.get("/admin/");
    assert!(dashboard.select("table.admin-log td").contains(&"From the admin".to_string()));
});

both_engines!(blocking edits_save_and_a_stale_form_is_refused_rather_than_overwriting, |engine: Engine| {
    let client = client_as(engine, "ann");
    seed(&client, "ann", vec![("Draft".into(), "v1".into(), "2026-01-01T00:00:00Z".into())]);
    let id: i64 =
        client.block_on(client.db().read(|c| c.query_one("SELECT id FROM notes", &[]))).unwrap();
    let path = format!("/admin/notes/{id}");
    let first = client.get(&path).form_fields("form.admin-form");
    let second = first.clone();

    let mut edit = first.clone();
    edit.iter_mut().filter(|(k, _)| k == "content").for_each(|(_, v)| *v = "v2".into());
    let saved = client.post(&path, &edit);
    assert_eq!(saved.status(), 303, "{}", saved.text());
    assert_eq!(saved.location(), Some("/admin/notes/"));

    // The second tab still has v1's version.
    let mut stale = second;
    stale.iter_mut().filter(|(k, _)| k == "title").for_each(|(_, v)| *v = "Overwritten".into());
    let refused = client.post(&path, &stale);
    assert_eq!(refused.status(), 409);
    assert!(
        refused.select_one(".errors").contains("changed by someone else"),
        "{}",
        refused.text()
    );
    assert_eq!(refused.attr("#title", "value"), ["Overwritten"], "what they typed is kept");
    let stored: (String, String) = client
        .block_on(client.db().read(|c| c.query_one("SELECT title, content FROM notes", &[])))
        .unwrap();
    assert_eq!(stored, ("Draft".to_string(), "v2".to_string()));
    // Saving the refused form again (it carries the new version) overwrites knowingly.
    let again = client.post(&path, &refused.form_fields("form.admin-form"));
    assert_eq!(again.status(), 303);
    let page = client.get(&path);
    assert_eq!(page.select_one("h1"), "Overwritten");
    let history = page.select(".admin-history li");
    assert_eq!(history.len(), 2);
    assert!(history[0].contains("Changed Title, Content."), "their v1 replaced v2: {history:?}");
    assert!(history[1].contains("Changed Content."), "{history:?}");
});

both_engines!(blocking deletes_confirm_with_the_rows_that_cascade_and_bulk_deletes_in_one_go, |engine: Engine| {
    let client = client_as(engine, "ann");
    seed_many(&client, "bob", 3);
    seed_many(&client, "ann", 4);
    let bob = user_id(&client, "bob");

    // Deleting Bob takes his notes (ON DELETE CASCADE) and empties references elsewhere.
    let confirm = client.get(&format!("/admin/users/{bob}/delete"));
    assert_eq!(confirm.status(), 200, "{}", confirm.text());
    assert_eq!(confirm.select(".admin-objects li"), ["bob"]);
    let effects = confirm.select(".admin-effects li");
    assert!(effects.iter().any(|e| e.starts_with("3 notes rows (by user_id)")), "{effects:?}");
    let deleted = client.post(&format!("/admin/users/{bob}/delete"), &[("confirmed", "1")]);
    assert_eq!(deleted.status(), 303);
    assert_eq!(count(&client, "SELECT count(*) FROM notes"), 4);
    assert_eq!(count(&client, "SELECT count(*) FROM users"), 1);

    // Bulk: the confirmation lists them; only the confirmed post deletes.
    let ids: Vec<i64> = client
        .block_on(client.db().read(|c| c.query("SELECT id FROM notes ORDER BY id LIMIT 3", &[])))
        .unwrap();
    let mut form: Vec<(&str, String)> = vec![("action", "delete".into())];
    form.extend(ids.iter().map(|id| ("ids", id.to_string())));
    let confirm = client.post("/admin/notes/bulk", &form);
    assert_eq!(confirm.status(), 200);
    assert_eq!(confirm.select(".admin-objects li").len(), 3);
    assert_eq!(count(&client, "SELECT count(*) FROM notes"), 4);
    let done = client.post("/admin/notes/bulk", &confirm.form_fields(".card form"));
    assert_eq!(done.status(), 303);
    assert_eq!(client.get("/admin/notes/").messages(), ["Deleted 3 notes."]);
    assert_eq!(count(&client, "SELECT count(*) FROM notes"), 1);
    assert_eq!(count(&client, "SELECT count(*) FROM _admin_log WHERE action = 'deleted'"), 4);
});

both_engines!(blocking the_last_admin_cannot_be_demoted_deactivated_or_deleted, |engine: Engine| {
    let client = client_as(engine, "ann");
    let ann = user_id(&client, "ann");
    let path = format!("/admin/users/{ann}");
    let mut form = client.get(&path).form_fields("form.admin-form");
    form.iter_mut().filter(|(k, _)| k == "role").for_each(|(_, v)| *v = "user".into());
    let refused = client.post(&path, &form);
    assert_eq!(refused.status(), 422);
    assert!(refused.select_one(".errors").contains("last active admin"));
    let action = client.post(&format!("/admin/users/{ann}/actions/deactivate"), &[("x", "")]);
    assert_eq!(action.status(), 303);
    assert!(client.get(&path).messages()[0].contains("last active admin"));
    let delete = client.post(&format!("/admin/users/{ann}/delete"), &[("confirmed", "1")]);
    assert_eq!(delete.status(), 303);
    assert_eq!(
        count(&client, "SELECT count(*) FROM users WHERE role = 'admin' AND is_active"),
        1
    );

    // Bob can be made staff; his sessions end (they carry the old rights), and the audit
    // log says so.
    let bob = user_id(&client, "bob");
    let generation = "SELECT session_generation FROM users WHERE username = 'bob'";
    let before = count(&client, generation);
    let path = format!("/admin/users/{bob}");
    let mut form = client.get(&path).form_fields("form.admin-form");
    form.iter_mut().filter(|(k, _)| k == "role").for_each(|(_, v)| *v = "staff".into());
    assert_eq!(client.post(&path, &form).status(), 303);
    assert_eq!(count(&client, "SELECT count(*) FROM users WHERE role = 'staff'"), 1);
    assert_eq!(count(&client, generation), before + 1);
    let changed =
        "SELECT count(*) FROM auth_events WHERE event = 'role_changed' AND username = 'bob'";
    assert_eq!(count(&client, changed), 1);
    // A display-name edit does not sign anyone out.
    let mut form = client.get(&path).form_fields("form.admin-form");
    form.iter_mut().filter(|(k, _)| k == "display_name").for_each(|(_, v)| *v = "Bob B.".into());
    assert_eq!(client.post(&path, &form).status(), 303);
    assert_eq!(count(&client, generation), before + 1);
    assert_eq!(client.get("/admin/users/?is_active=1&role=staff").select_one("h1 small"), "1");

    // Staff get the admin, but deleting users is for admins.
    client.sign_in("bob");
    assert_eq!(client.get("/admin/").status(), 200);
    let page = client.get(&format!("/admin/users/{ann}"));
    assert!(page.attr("a.button.danger", "href").is_empty(), "no Delete button for staff");
    let refused = client.get(&format!("/admin/users/{ann}/delete"));
    assert_eq!(refused.status(), 403);
    assert!(refused.text().contains("You may not delete users."));
});

both_engines!(blocking exports_are_the_whole_selection_as_csv_and_json_with_formulas_defused, |engine: Engine| {
    let client = client_as(engine, "ann");
    seed_many(&client, "ann", 30);
    let formula = (
        "=HYPERLINK(\"http://evil\")".to_string(),
        "-2+3".to_string(),
        "2026-05-01T00:00:00Z".to_string(),
    );
    seed(&client, "ann", vec![formula]);

    let csv = client.get("/admin/notes/export.csv");
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(csv.header("content-disposition"), Some("attachment; filename=\"notes.csv\""));
    let lines: Vec<&str> = csv.text().split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 32, "a header and every row, not a page");
    assert!(lines[0].starts_with("id,title,content,created_at,updated_at,user_id"), "{}", lines[0]);
    assert!(
        csv.text().contains("\"'=HYPERLINK(\"\"http://evil\"\")\",'-2+3,"),
        "{}",
        &csv.text()[..300]
    );

    let json = client.get("/admin/notes/export.json?q=generated&sort=title");
    assert_eq!(json.status(), 200);
    let rows = json.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 30, "the search applies");
    assert_eq!(rows[0]["title"], "Note 01", "the order applies");
    assert!(rows[0]["id"].is_i64());
});

both_engines!(blocking ids_that_do_not_exist_are_404_and_so_are_unknown_models, |engine: Engine| {
    let client = client_as(engine, "ann");
    for path in
        ["/admin/notes/999999", "/admin/notes/999999/delete", "/admin/nope/", "/admin/notes/abc"]
    {
        assert_eq!(client.get(path).status(), 404, "{path}");
    }
    assert_eq!(client.post("/admin/notes/999999", &[("title", "x")]).status(), 404);
    // Read-only models have no create page.
    assert_eq!(client.get("/admin/jobs/new").status(), 404);
});

both_engines!(blocking invites_are_made_and_revoked_from_the_admin, |engine: Engine| {
    let client = client_as(engine, "ann");
    let made = client.post("/admin/invites/new", &[("email", "Carol@Example.com")]);
    assert_eq!(made.status(), 303, "{}", made.text());
    let list = client.get("/admin/invites/");
    let message = list.messages().join(" ");
    assert!(message.contains("Invited carol@example.com. Mail is off"), "{message}");
    assert!(message.contains("/auth/register?invite="), "the link is shown: {message}");
    assert_eq!(list.select("table.admin-table tbody td:nth-child(2) a"), ["carol@example.com"]);
    let id: i64 =
        client.block_on(client.db().read(|c| c.query_one("SELECT id FROM invites", &[]))).unwrap();
    let revoked = client.post(&format!("/admin/invites/{id}/actions/revoke"), &[("x", "")]);
    assert_eq!(revoked.status(), 303);
    assert_eq!(client.get(&format!("/admin/invites/{id}")).messages(), ["Revoked 1 invite."]);
    assert_eq!(count(&client, "SELECT count(*) FROM invites WHERE expires_at > '2100'"), 0);
    let invalid = client.post("/admin/invites/new", &[("email", "not an address")]);
    assert_eq!(invalid.status(), 422);
});

both_engines!(blocking jobs_are_listed_by_status_and_retried_or_cancelled, |engine: Engine| {
    let client = client_as(engine, "ann");
    let jobs = client.context().jobs.clone();
    let id = client.block_on(jobs.enqueue(notes::ExportNotes { export_id: 7 })).unwrap();
    let list = client.get("/admin/jobs/?status=pending");
    assert_eq!(list.status(), 200, "{}", list.text());
    assert_eq!(list.select("table.admin-table tbody td:nth-child(3)"), ["notes.export"]);
    let page = client.get(&format!("/admin/jobs/{id}"));
    assert!(page.select_one(".admin-detail pre").contains("\"export_id\": 7"), "payload indented");
    let cancel = client.post(&format!("/admin/jobs/{id}/actions/cancel"), &[("x", "")]);
    assert_eq!(cancel.status(), 303);
    assert_eq!(client.get(&format!("/admin/jobs/{id}")).messages(), ["Cancelled 1 job."]);
    assert_eq!(client.get("/admin/jobs/?status=dead").select_one("h1 small"), "1");
    let retry = client.post("/admin/jobs/bulk", &[("action", "retry"), ("ids", &id.to_string())]);
    assert_eq!(retry.status(), 303);
    assert_eq!(client.get("/admin/jobs/?status=pending").select_one("h1 small"), "1");
});

#[test]
fn with_mail_on_an_invite_is_mailed_and_its_link_not_shown() {
    use burrow_test::smtp::{Security, SmtpSink};
    let sink = SmtpSink::start(Security::None);
    let args = sink.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let client = Client::with_args(notes::server(), &args);
    client.sign_in("ann");
    let made = client.post("/admin/invites/new", &[("email", "dan@example.com")]);
    assert_eq!(made.status(), 303, "{}", made.text());
    let message = client.get("/admin/invites/").messages().join(" ");
    assert!(message.starts_with("Invited dan@example.com: the link was mailed"), "{message}");
    assert!(!message.contains("invite="), "the link is only in the mail: {message}");
    let mail = &sink.wait_for(1)[0];
    assert_eq!(mail.rcpt_tos, ["dan@example.com"]);
    let register = format!("{}/auth/register?invite=", client.base_url().trim_end_matches('/'));
    let link = mail.link(&register).expect("a link in the invite");
    assert!(link.contains("/auth/register?invite="), "{link}");
    // The link works: the registration page greets the invited address.
    let path = link.split_once("/auth/").map(|(_, rest)| format!("/auth/{rest}")).unwrap();
    client.post("/auth/logout", &[("x", "")]);
    let page = client.get(&path);
    assert_eq!(page.status(), 200);
    assert!(page.text().contains("dan@example.com"), "{}", page.text());
}
