//! The {{crate}} app through the whole server, in-process, on a fresh SQLite database.

use burrow_test::Client;

#[test]
fn the_list_starts_empty() {
    let client = Client::new({{crate}}::server());
    let page = client.get("/");
    assert_eq!(page.status(), 200);
    assert_eq!(page.select_one("h1"), "{{Title}}");
    assert!(page.select("li").iter().any(|li| li.contains("Nothing yet")));
}

#[test]
fn an_invalid_form_is_shown_again() {
    let client = Client::new({{crate}}::server());
    let page = client.post("/", &[("title", " ")]);
    assert_eq!(page.status(), 422);
    assert_eq!(page.select_one("h1"), "{{Title}}");
}

#[test]
fn adding_an_item_redirects_to_the_list_with_a_message() {
    let client = Client::new({{crate}}::server());
    let page = client.post("/", &[("title", "The first item")]);
    assert_eq!(page.status(), 303);
    let page = page.follow();
    assert_eq!(page.status(), 200);
    assert_eq!(page.messages(), ["Added “The first item”."]);
    assert!(page.select("li").iter().any(|li| li.contains("The first item")));
}
