//! The guestbook in-process: the whole middleware stack (sessions, CSRF, flash messages),
//! a fresh SQLite file per test, no port.

use burrow_test::Client;

#[test]
fn sign_the_guestbook() {
    let client = Client::with_args(guestbook::server(), &["--guestbook-title", "Our guestbook"]);

    // The form, with the setting in the heading.
    let page = client.get("/");
    assert_eq!(page.status(), 200);
    assert_eq!(page.select_one("h1"), "Our guestbook");
    assert_eq!(page.select("ol.entries li"), ["Nobody has signed yet. Be the first!"]);

    // A forged CSRF token: refused.
    let forged = client.request("POST", "/").form(&[("name", "Ann")]).csrf_token("forged");
    assert_eq!(forged.send().status(), 403);

    // Invalid: 422, the form again with its errors and what was typed.
    let too_long = "x".repeat(81);
    let page = client.post("/", &[("name", too_long.as_str()), ("message", " ")]);
    assert_eq!(page.status(), 422);
    assert!(page.text().contains("Name must be at most 80 characters."), "{page:?}");
    assert!(page.text().contains("Message is required."), "{page:?}");
    assert!(page.form_fields("form#sign").contains(&("name".into(), too_long)));

    // Valid: 303 to the list, which shows the flash message once, newest entry first.
    for (name, message) in [("Ann", "First!"), ("Bob", "Hello <there>")] {
        let page = client.post("/", &[("name", name), ("message", message)]);
        assert_eq!(page.status(), 303);
        assert_eq!(page.location(), Some("/"));
        let page = page.follow();
        assert_eq!(page.messages(), [format!("Thank you for signing, {name}!")]);
    }
    let page = client.get("/");
    assert!(page.messages().is_empty(), "a flash message is shown once");
    assert_eq!(page.select("ol.entries blockquote"), ["Hello <there>", "First!"]);
}

#[test]
fn entries_are_paginated() {
    let client = Client::new(guestbook::server());
    for n in 1..=21 {
        let page = client.post("/", &[("name", format!("N{n}")), ("message", "hi".into())]);
        assert_eq!(page.status(), 303);
    }
    let first = client.get("/");
    let names = first.select("ol.entries p.muted");
    assert_eq!(names.len(), 20);
    assert!(names[0].starts_with("N21,") && names[19].starts_with("N2,"), "{names:?}");
    assert_eq!(first.select(".pager a"), ["Older →"]);
    let second = client.get("/?page=2");
    assert!(second.select("ol.entries p.muted")[0].starts_with("N1,"), "{second:?}");
    assert_eq!(second.select(".pager a"), ["← Newer"]);
}
