//! The notes flow in-process with `burrow_test::Client`: the server built by
//! `notes::server()` on a SQLite file in a temp dir, requests through the whole middleware
//! stack (sessions, CSRF, flash messages, the error renderer) without a port. The tests in
//! the other modules drive the real binary over sockets, on both engines. Notes belong to
//! their author: the client signs in as Ann (the first account, an admin) first.

use burrow_test::Client;

/// A client signed in as Ann.
fn signed_in() -> Client {
    let client = Client::new(notes::server());
    client.sign_in("ann");
    client
}

/// The note ids of a list page, in page order (`<li id="note-{id}">`).
fn ids(page: &burrow_test::TestResponse<'_>) -> Vec<i64> {
    page.attr("#note-list li[id^='note-']", "id")
        .iter()
        .map(|id| id.trim_start_matches("note-").parse().expect("a numeric note id"))
        .collect()
}

/// Inserts `count` notes of Ann's straight into the database ("Note 1" is the oldest).
fn seed(client: &Client, count: usize) {
    client
        .block_on(client.db().write(move |c| {
            for n in 1..=count {
                let (title, content) = (format!("Note {n}"), format!("Generated note number {n}"));
                c.execute(
                    "INSERT INTO notes (title, content, user_id) \
                     VALUES (?, ?, (SELECT id FROM users WHERE username = 'ann'))",
                    burrow::db::params![title, content],
                )?;
            }
            Ok(())
        }))
        .expect("seeding notes");
}

#[test]
fn the_list_starts_empty_and_links_the_form() {
    let client = signed_in();
    let page = client.get("/notes");
    assert_eq!(page.status(), 200, "{page:?}");
    assert_eq!(page.select_one("title"), "Notes · Burrow Notes");
    assert_eq!(page.select_one("nav.site-nav a[aria-current='page']"), "Notes");
    assert!(ids(&page).is_empty());
    assert_eq!(page.select_one("p.empty"), "No notes yet. Write the first one above.");
    assert_eq!(page.attr("a.button", "href"), ["/notes/new"]);

    let form = client.get("/notes/new");
    assert_eq!(form.status(), 200);
    let names: Vec<String> = form.form_fields("#note-form").into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["csrf_token", "title", "content"]);
}

#[test]
fn an_invalid_note_is_shown_again_with_its_error() {
    let client = signed_in();
    let page = client.post("/notes", &[("title", "   "), ("content", "kept as typed")]);
    assert_eq!(page.status(), 422, "{page:?}");
    assert_eq!(page.select_one("#title-error"), "Title is required.");
    let fields = page.form_fields("#note-form");
    assert!(
        fields.contains(&("content".to_string(), "kept as typed".to_string())),
        "the content is kept: {fields:?}"
    );
    let long = "x".repeat(201);
    let page = client.post("/notes", &[("title", long.as_str()), ("content", "")]);
    assert_eq!(page.status(), 422);
    assert_eq!(page.select_one("#title-error"), "Title must be at most 200 characters.");
    assert!(ids(&client.get("/notes")).is_empty(), "nothing was saved");
}

#[test]
fn create_edit_and_delete_with_flash_messages() {
    let client = signed_in();

    // Create: 303 to the note, whose page shows the flash message once.
    let created =
        client.post("/notes", &[("title", "Shopping list"), ("content", "Milk and eggs")]);
    assert_eq!(created.status(), 303, "{created:?}");
    let location = created.location().expect("a Location").to_string();
    let id: i64 = location.strip_prefix("/notes/").and_then(|id| id.parse().ok()).unwrap();
    let page = created.follow();
    assert_eq!(page.status(), 200);
    assert_eq!(page.messages(), ["Created “Shopping list”."]);
    assert_eq!(page.select_one("article h1"), "Shopping list");
    assert_eq!(page.select_one(".note-body"), "Milk and eggs");
    assert!(client.get(&location).messages().is_empty(), "a flash message shows once");
    assert_eq!(ids(&client.get("/notes")), [id]);

    // Edit: the form holds the current values; posting it back changed saves.
    let edit = client.get(&format!("/notes/{id}/edit"));
    assert_eq!(edit.status(), 200);
    let mut fields = edit.form_fields("#note-form");
    assert!(fields.contains(&("title".into(), "Shopping list".into())), "{fields:?}");
    assert!(fields.contains(&("content".into(), "Milk and eggs".into())), "{fields:?}");
    for (name, value) in &mut fields {
        if name == "title" {
            *value = "Groceries".to_string();
        }
    }
    let saved = client.post(&format!("/notes/{id}"), &fields);
    assert_eq!((saved.status(), saved.location()), (303, Some(location.as_str())));
    let page = saved.follow();
    assert_eq!(page.messages(), ["Saved your changes."]);
    assert_eq!(page.select_one("article h1"), "Groceries");

    // An invalid edit changes nothing.
    let page = client.post(&format!("/notes/{id}"), &[("title", ""), ("content", "lost")]);
    assert_eq!(page.status(), 422);
    assert_eq!(page.select_one("#title-error"), "Title is required.");
    assert_eq!(client.get(&location).select_one(".note-body"), "Milk and eggs");

    // Delete, from the note page's own form: back to the list, with the message.
    let page = client.get(&location);
    let delete_form = page.form_fields(&format!("form[action='/notes/{id}/delete']"));
    let deleted = client.post(&format!("/notes/{id}/delete"), &delete_form);
    assert_eq!((deleted.status(), deleted.location()), (303, Some("/notes")));
    let list = deleted.follow();
    assert_eq!(list.messages(), ["Deleted “Groceries”."]);
    assert!(ids(&list).is_empty());
    assert_eq!(client.get(&location).status(), 404);
    assert_eq!(client.post(&format!("/notes/{id}/delete"), &[("x", "")]).status(), 404);
}

#[test]
fn htmx_creates_and_deletes_answer_fragments() {
    let client = signed_in();
    let page = client
        .request("POST", "/notes")
        .htmx()
        .form(&[("title", "Quick"), ("content", "inline")])
        .send();
    assert_eq!(page.status(), 200, "{page:?}");
    assert!(!page.text().contains("<html"), "a fragment: {page:?}");
    let id = page.attr("li.created", "id");
    assert_eq!(page.select("li.created a.title"), ["Quick"]);
    assert_eq!(page.messages(), ["Created “Quick”."], "the message comes out of band");

    let path = format!("/notes/{}", id[0].trim_start_matches("note-"));
    let deleted = client.request("DELETE", &path).htmx().send();
    assert_eq!(deleted.status(), 200, "{deleted:?}");
    assert_eq!(deleted.select_one("li.deleted"), "Deleted “Quick”.");
    assert_eq!(client.request("DELETE", &path).htmx().send().status(), 404);
    let refused = client.request("DELETE", &path).htmx().without_csrf().send();
    assert_eq!(refused.status(), 403, "the CSRF check covers DELETE too");
}

#[test]
fn the_list_is_paginated_newest_first() {
    let client = signed_in();
    seed(&client, 45);
    let first = client.get("/notes");
    assert_eq!(ids(&first), (26..=45).rev().collect::<Vec<i64>>());
    assert_eq!(first.select(".pager a"), ["Older →"]);
    let older = first.attr(".pager a", "href");
    assert_eq!(older, ["/notes?page=2"]);
    let second = client.get(&older[0]);
    assert_eq!(ids(&second), (6..=25).rev().collect::<Vec<i64>>());
    assert_eq!(second.select(".pager a"), ["← Newer", "Older →"]);
    let third = client.get("/notes?page=3");
    assert_eq!(ids(&third), (1..=5).rev().collect::<Vec<i64>>());
    assert_eq!(third.select(".pager a"), ["← Newer"]);
    // A page number that does not parse is the first page.
    assert_eq!(ids(&client.get("/notes?page=abc")), ids(&first));
    // Infinite scroll: the rows of a page without the layout, and a sentinel for more.
    let rows = client.get("/notes/rows?page=2");
    assert!(!rows.text().contains("<html"), "{rows:?}");
    assert_eq!(rows.attr("li.sentinel", "hx-get"), ["/notes/rows?page=3"]);
}

#[test]
fn search_finds_the_matching_notes() {
    let client = signed_in();
    for (title, content) in [
        ("Deploying", "Copy the binary and run it."),
        ("Backups", "Litestream or sqlite3 .backup, never cp."),
        ("Shopping", "Coffee beans."),
    ] {
        assert_eq!(client.post("/notes", &[("title", title), ("content", content)]).status(), 303);
    }
    let page = client.get("/notes?q=backup");
    assert_eq!(page.status(), 200);
    assert_eq!(page.select("#note-list li a.title"), ["Backups"]);
    assert_eq!(page.select_one("title"), "Search: backup · Burrow Notes");
    let page = client.get("/notes?q=deploy*+OR+coffee");
    let mut titles = page.select("#note-list li a.title");
    titles.sort();
    assert_eq!(titles, ["Deploying", "Shopping"]);
    let page = client.get("/notes?q=nothing-like-this");
    assert_eq!(page.select_one("p.empty"), "No notes match “nothing-like-this”.");
    let page = client.get("/notes?q=*");
    assert!(page.select_one("p.errors").starts_with("Invalid search"), "{page:?}");
}

#[test]
fn notes_belong_to_their_author() {
    let client = Client::new(notes::server());
    // Anonymous: no Notes in the menu, and the pages ask to sign in.
    let home = client.get("/");
    assert!(home.attr("nav a", "href").iter().all(|h| !h.starts_with("/notes")), "{}", home.text());
    let list = client.get("/notes?q=x");
    assert_eq!((list.status(), list.location()), (303, Some("/auth/login?next=%2Fnotes%3Fq%3Dx")));
    assert_eq!(client.post("/notes", &[("title", "t"), ("content", "")]).status(), 303);

    client.sign_in("ann");
    let home = client.get("/");
    assert!(home.attr("nav a", "href").contains(&"/notes".to_string()), "{}", home.text());
    let created = client.post("/notes", &[("title", "Ann's secret"), ("content", "lantern")]);
    let path = created.location().expect("a redirect to the note").to_string();
    client.post("/auth/logout", &[("x", "")]);

    // Bob sees none of Ann's notes: not listed, not found by search, 404 by id.
    client.sign_in("bob");
    assert!(ids(&client.get("/notes")).is_empty());
    assert!(ids(&client.get("/notes?q=lantern")).is_empty());
    for page in [path.clone(), format!("{path}/edit")] {
        assert_eq!(client.get(&page).status(), 404, "{page}");
    }
    let changed = client.post(&path, &[("title", "Bob was here"), ("content", "")]);
    assert_eq!(changed.status(), 404);
    assert_eq!(client.post(&format!("{path}/delete"), &[("x", "")]).status(), 404);
    let bobs = client.post("/notes", &[("title", "Bob's note"), ("content", "lantern too")]);
    assert_eq!(bobs.status(), 303);
    assert_eq!(ids(&client.get("/notes?q=lantern")).len(), 1);
    client.post("/auth/logout", &[("x", "")]);

    // Ann's note is as she left it; a note from before accounts (no author) is nobody's
    // (`server adopt-notes` gives such notes away).
    client
        .block_on(client.db().write(|c| {
            c.execute("INSERT INTO notes (title, content) VALUES ('Old note', 'lantern old')", &[])
        }))
        .unwrap();
    client.sign_in("ann");
    assert_eq!(ids(&client.get("/notes?q=lantern")).len(), 1, "only hers");
    assert!(client.get(&path).text().contains("secret"));
}
