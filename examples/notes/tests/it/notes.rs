//! The notes pages over HTTP: CRUD, htmx partials, pagination, search, validation; each
//! test runs on SQLite and on PostgreSQL (`both_engines!`: `name::sqlite`, `name::postgres`).

use crate::both_engines;
use crate::support::{
    Database, Engine, Launch, client, create_note, encode, generate_notes_in, get, get_htmx,
    header, note_ids, tempdir,
};

both_engines!(notes_crud_over_http, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    // Cookies and CSRF token of a loaded form, for every POST below.
    let csrf = server.credentials();

    let (status, body) = get(&http, &server, "/notes/new").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("name=\"title\"") && body.contains("name=\"content\""),
        "new-note form:\n{body}"
    );

    // Create.
    let id = create_note(&http, &server, "Shopping list", "Milk and eggs").await;
    let (status, body) = get(&http, &server, &format!("/notes/{id}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("Shopping list") && body.contains("Milk and eggs"), "detail:\n{body}");
    let (_, list) = get(&http, &server, "/notes").await;
    assert_eq!(note_ids(&list), [id], "list after create:\n{list}");

    // Edit form holds the current values.
    let (status, body) = get(&http, &server, &format!("/notes/{id}/edit")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("name=\"title\"") && body.contains("name=\"content\""),
        "edit form:\n{body}"
    );
    assert!(
        body.contains("Shopping list") && body.contains("Milk and eggs"),
        "edit form values:\n{body}"
    );

    // Update.
    let res = csrf
        .attach(http.post(server.url(&format!("/notes/{id}"))))
        .form(&[("title", "Groceries"), ("content", "Bread and butter")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location").as_deref(), Some(format!("/notes/{id}").as_str()));
    let (status, body) = get(&http, &server, &format!("/notes/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Groceries") && body.contains("Bread and butter"),
        "detail after update:\n{body}"
    );
    assert!(
        !body.contains("Shopping list") && !body.contains("Milk and eggs"),
        "old values remain:\n{body}"
    );

    // An invalid update is 422 and changes nothing.
    let res = csrf
        .attach(http.post(server.url(&format!("/notes/{id}"))))
        .form(&[("title", ""), ("content", "kept on update")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Title is required.") && body.contains("kept on update"),
        "422 on update:\n{body}"
    );
    let (_, body) = get(&http, &server, &format!("/notes/{id}")).await;
    assert!(
        body.contains("Groceries") && !body.contains("kept on update"),
        "a rejected update was saved:\n{body}"
    );

    // Missing notes.
    let missing = id + 1000;
    assert_eq!(get(&http, &server, &format!("/notes/{missing}")).await.0, 404);
    assert_eq!(get(&http, &server, &format!("/notes/{missing}/edit")).await.0, 404);
    let res = csrf
        .attach(http.post(server.url(&format!("/notes/{missing}"))))
        .form(&[("title", "x"), ("content", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "update of a missing note");
    let res = csrf
        .attach(http.post(server.url(&format!("/notes/{missing}/delete"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "delete of a missing note");

    // Delete.
    let res =
        csrf.attach(http.post(server.url(&format!("/notes/{id}/delete")))).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location").as_deref(), Some("/notes"));
    assert_eq!(get(&http, &server, &format!("/notes/{id}")).await.0, 404);
    let (_, list) = get(&http, &server, "/notes").await;
    assert!(note_ids(&list).is_empty(), "list after delete:\n{list}");
    let res =
        csrf.attach(http.post(server.url(&format!("/notes/{id}/delete")))).send().await.unwrap();
    assert_eq!(res.status(), 404, "second delete");
});

both_engines!(user_text_is_html_escaped, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let id = create_note(&http, &server, "<script>alert(1)</script>", "a & b <b>bold</b>").await;
    for path in [format!("/notes/{id}"), format!("/notes/{id}/edit"), "/notes".to_string()] {
        let (status, body) = get(&http, &server, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("<script>alert(1)"), "{path}: title not escaped:\n{body}");
        assert!(body.contains("&lt;script&gt;alert(1)"), "{path}: escaped title missing:\n{body}");
    }
    let (_, body) = get(&http, &server, &format!("/notes/{id}")).await;
    assert!(
        !body.contains("<b>bold") && body.contains("&lt;b&gt;bold"),
        "content not escaped:\n{body}"
    );
    assert!(body.contains("a &amp; b"), "ampersand not escaped:\n{body}");
});

both_engines!(htmx_requests_get_partials, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let csrf = server.credentials();

    let res = csrf
        .attach(http.post(server.url("/notes")))
        .header("HX-Request", "true")
        .form(&[("title", "From htmx"), ("content", "partial please")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "htmx create");
    let body = res.text().await.unwrap();
    assert!(!body.contains("<html"), "htmx create returned a whole page:\n{body}");
    let ids = note_ids(&body);
    assert_eq!(ids.len(), 1, "htmx create should hold exactly the new row:\n{body}");
    let id = ids[0];
    assert!(body.contains("From htmx"), "new row lacks its title:\n{body}");
    assert_eq!(
        get(&http, &server, &format!("/notes/{id}")).await.0,
        200,
        "the htmx-created note exists"
    );

    let (status, fragment) = get_htmx(&http, &server, "/notes").await;
    assert_eq!(status, 200);
    assert!(!fragment.contains("<html"), "htmx GET /notes returned a whole page:\n{fragment}");
    assert_eq!(note_ids(&fragment), [id], "htmx GET /notes:\n{fragment}");

    let (status, page) = get(&http, &server, "/notes").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "GET /notes without htmx is a whole page:\n{page}");
    assert_eq!(note_ids(&page), [id]);

    // A boosted navigation wants the whole page.
    let res = server
        .credentials()
        .attach(http.get(server.url("/notes")))
        .header("HX-Request", "true")
        .header("HX-Boosted", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let boosted = res.text().await.unwrap();
    assert!(boosted.contains("<html"), "boosted GET /notes should be a whole page:\n{boosted}");

    // Delete via htmx.
    let res = csrf
        .attach(http.delete(server.url(&format!("/notes/{id}"))))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "htmx delete");
    let body = res.text().await.unwrap();
    assert!(!body.contains("<html"), "htmx delete returned a whole page:\n{body}");
    assert_eq!(
        get(&http, &server, &format!("/notes/{id}")).await.0,
        404,
        "deleted note still served"
    );
    let res = csrf
        .attach(http.delete(server.url(&format!("/notes/{id}"))))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "htmx delete of a missing note");
});

both_engines!(list_is_paginated_newest_first, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    generate_notes_in(&db, dir.path(), 45);
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();

    let mut pages = Vec::new();
    for page in 1..=3 {
        let (status, body) = get(&http, &server, &format!("/notes?page={page}")).await;
        assert_eq!(status, 200, "page {page}");
        pages.push(note_ids(&body));
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [20, 20, 5],
        "rows per page: {pages:?}"
    );
    let mut all: Vec<i64> = pages.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 45, "every note exactly once across the pages: {pages:?}");
    let (status, body) = get(&http, &server, "/notes?page=4").await;
    assert_eq!(status, 200, "page past the end");
    assert!(note_ids(&body).is_empty(), "page 4 of 45 notes has rows: {:?}", note_ids(&body));

    // Bad page values are page 1.
    for bad in ["abc", "0", "-1", ""] {
        let (status, body) = get(&http, &server, &format!("/notes?page={bad}")).await;
        assert_eq!(status, 200, "?page={bad}");
        assert_eq!(note_ids(&body), pages[0], "?page={bad} should be page 1");
    }

    // The rows partial for infinite scroll.
    let (status, rows) = get(&http, &server, "/notes/rows?page=2").await;
    assert_eq!(status, 200);
    assert!(!rows.contains("<html"), "rows partial is a whole page:\n{rows}");
    assert_eq!(note_ids(&rows), pages[1], "rows of page 2");
    assert!(rows.contains("page=3"), "page 2 rows lack a sentinel loading page 3:\n{rows}");
    let (status, rows) = get(&http, &server, "/notes/rows?page=3").await;
    assert_eq!(status, 200);
    assert_eq!(note_ids(&rows), pages[2], "rows of page 3");
    assert!(!rows.contains("page=4"), "last page rows have a sentinel:\n{rows}");

    // Newest first: a new note heads page 1.
    let id = create_note(&http, &server, "The newest note", "fresh").await;
    let (_, body) = get(&http, &server, "/notes").await;
    let first = note_ids(&body);
    assert_eq!(first.len(), 20);
    assert_eq!(first[0], id, "newest note is not first: {first:?}");
    assert_eq!(&first[1..], &pages[0][..19], "the rest shifts by one");
    let (_, body) = get(&http, &server, "/notes?page=3").await;
    assert_eq!(note_ids(&body).len(), 6);
});

both_engines!(search_finds_exactly_the_matching_notes, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let csrf = server.credentials();
    let apple_pie = create_note(&http, &server, "Apple pie", "Bake with cinnamon").await;
    let banana = create_note(&http, &server, "Banana bread", "Needs ripe fruit").await;
    let apple_juice = create_note(&http, &server, "Apple juice", "Press the fruit").await;
    let zebra = create_note(&http, &server, "Zebra facts", "Stripes everywhere").await;

    let search = async |q: &str| -> Vec<i64> {
        let res = server
            .credentials()
            .attach(http.get(server.url(&format!("/notes?q={}", encode(q)))))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "?q={q}");
        let mut ids = note_ids(&res.text().await.unwrap());
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<i64>| {
        v.sort();
        v
    };
    assert_eq!(search("apple").await, sorted(vec![apple_pie, apple_juice]), "q=apple");
    assert_eq!(search("banana").await, [banana], "q=banana");
    assert_eq!(search("cinnamon").await, [apple_pie], "content is searched too");
    assert_eq!(search("fruit").await, sorted(vec![banana, apple_juice]), "q=fruit");
    assert_eq!(search("zebra").await, [zebra]);
    assert!(search("kiwi").await.is_empty(), "q=kiwi");
    assert_eq!(search("").await.len(), 4, "empty q lists everything");

    // Matches are highlighted (title and excerpt), and only the matching words.
    let res = server
        .credentials()
        .attach(http.get(server.url("/notes?q=cinnamon")))
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert!(body.contains("<mark>cinnamon</mark>"), "q=cinnamon: no highlight:\n{body}");
    assert!(!body.contains("<mark>Bake</mark>"), "q=cinnamon: a non-match is marked:\n{body}");
    let res =
        server.credentials().attach(http.get(server.url("/notes?q=apple"))).send().await.unwrap();
    let body = res.text().await.unwrap();
    assert!(body.contains("<mark>Apple</mark>"), "q=apple: title not highlighted:\n{body}");

    // The rows partial searches too.
    let res = server
        .credentials()
        .attach(http.get(server.url("/notes/rows?q=banana")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(note_ids(&res.text().await.unwrap()), [banana], "rows?q=banana");

    // The index follows updates...
    let res = csrf
        .attach(http.post(server.url(&format!("/notes/{zebra}"))))
        .form(&[("title", "Okapi facts"), ("content", "Stripes on the legs")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(search("zebra").await.is_empty(), "old word still found after update");
    assert_eq!(search("okapi").await, [zebra], "new word not found after update");
    // ...and deletes.
    let res = csrf
        .attach(http.post(server.url(&format!("/notes/{banana}/delete"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(search("banana").await.is_empty(), "deleted note still found");
    assert_eq!(search("fruit").await, [apple_juice]);

    // A query without a word is a friendly message, never a 500; an unclosed quote is
    // read as a phrase.
    for bad in ["\"", "AND", "*"] {
        for path in ["/notes", "/notes/rows"] {
            let res = server
                .credentials()
                .attach(http.get(server.url(&format!("{path}?q={}", encode(bad)))))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}?q={bad}");
            let body = res.text().await.unwrap();
            assert!(
                note_ids(&body).is_empty(),
                "{path}?q={bad} lists notes: {:?}",
                note_ids(&body)
            );
            if path == "/notes" {
                assert!(
                    body.contains("Invalid search"),
                    "{path}?q={bad} lacks `Invalid search`:\n{body}"
                );
            }
        }
    }
});

both_engines!(invalid_notes_are_rejected_with_422, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let csrf = server.credentials();

    let long = "x".repeat(201);
    // (case, title or none, content, message)
    let cases = [
        ("empty title", Some(""), "content one kept", "Title is required."),
        ("blank title", Some("   "), "content two kept", "Title is required."),
        ("missing title", None, "content three kept", "Title is required."),
        (
            "201-char title",
            Some(long.as_str()),
            "content four kept",
            "Title must be at most 200 characters.",
        ),
    ];
    for (case, title, content, message) in cases {
        let mut form = vec![("content", content)];
        if let Some(title) = title {
            form.push(("title", title));
        }
        let res = csrf.attach(http.post(server.url("/notes"))).form(&form).send().await.unwrap();
        assert_eq!(res.status(), 422, "{case}");
        assert!(
            header(&res, "content-type").is_some_and(|t| t.starts_with("text/html")),
            "{case}: not HTML"
        );
        let body = res.text().await.unwrap();
        assert!(body.contains(message), "{case}: no `{message}`:\n{body}");
        assert!(
            body.contains("name=\"title\"") && body.contains("name=\"content\""),
            "{case}: form not re-rendered:\n{body}"
        );
        assert!(body.contains(content), "{case}: entered content not kept:\n{body}");
    }
    let (_, list) = get(&http, &server, "/notes").await;
    assert!(note_ids(&list).is_empty(), "a rejected note was inserted: {:?}", note_ids(&list));

    // The limit is 200 characters, not bytes.
    let id = create_note(&http, &server, &"x".repeat(200), "exactly at the limit").await;
    let id2 = create_note(&http, &server, &"é".repeat(200), "200 two-byte characters").await;
    let (_, list) = get(&http, &server, "/notes").await;
    let mut ids = note_ids(&list);
    ids.sort();
    assert_eq!(ids, [id, id2]);
});
