//! The default look (burrow's `theme` app) as the notes server shows it: one current nav
//! item, the viewport meta, the favicon, the stylesheet's caching, error pages in the site's
//! style, and the template filters in the notes pages.

use crate::support::{Launch, client, create_note, get, header, tempdir};

/// The labels of the nav links marked `aria-current="page"`.
fn current_nav_items(html: &str) -> Vec<String> {
    let nav = html
        .split_once("<nav class=\"site-nav\"")
        .and_then(|(_, rest)| rest.split_once("</nav>"))
        .unwrap_or_else(|| panic!("no site navigation in:\n{html}"))
        .0;
    nav.split("<a ")
        .filter(|a| a.contains("aria-current=\"page\""))
        .filter_map(|a| Some(a.split_once('>')?.1.split_once("</a>")?.0.trim().to_string()))
        .collect()
}

/// The value of the first `attr="…"` of a tag containing `marker`, `&#x2f;` decoded.
fn attr_of_tag_with(html: &str, marker: &str, attr: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("no `{marker}` in:\n{html}"));
    let tag_start = html[..at].rfind('<').expect("inside a tag");
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').expect("tag end")];
    let value = tag
        .split_once(&format!("{attr}=\""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .unwrap_or_else(|| panic!("no {attr} in `{tag}`"))
        .0;
    value.replace("&#x2f;", "/")
}

#[tokio::test]
async fn one_nav_item_is_current_the_longest_match() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let id = create_note(&http, &server, "Nav", "Which item is current?").await;
    for (path, current) in [
        ("/", "Home"),
        ("/notes", "Notes"),
        ("/notes/new", "New note"),
        (&format!("/notes/{id}") as &str, "Notes"),
        (&format!("/notes/{id}/edit"), "Notes"),
    ] {
        let (status, html) = get(&http, &server, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(current_nav_items(&html), [current], "{path}");
    }
}

#[tokio::test]
async fn layout_favicon_and_stylesheet() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let (_, home) = get(&http, &server, "/").await;
    assert!(
        home.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#),
        "no viewport meta:\n{home}"
    );
    assert!(home.contains("<html lang=\"en\">"), "{home}");
    assert!(home.contains(&format!("Burrow Notes · v{}", crate::support::VERSION)), "footer");

    // Browsers ask for /favicon.ico whatever the page links.
    let res = http.get(server.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(res.status(), 200, "/favicon.ico");
    let content_type = header(&res, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("image/"), "/favicon.ico content type {content_type}");
    let ico = res.bytes().await.unwrap();
    assert!(ico.starts_with(&[0, 0, 1, 0]), "not an ICO file");

    let svg = attr_of_tag_with(&home, "type=\"image/svg+xml\"", "href");
    let res = http.get(server.url(&svg)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{svg}");
    assert_eq!(header(&res, "content-type").as_deref(), Some("image/svg+xml"));

    // The theme's stylesheet, at a content-hashed URL cached for good.
    let css = attr_of_tag_with(&home, "theme/theme.", "href");
    assert!(css.starts_with("/static/theme/theme.") && css.ends_with(".css"), "{css}");
    let res = http.get(server.url(&css)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{css}");
    let cache = header(&res, "cache-control").unwrap_or_default();
    assert!(cache.contains("immutable") && cache.contains("max-age=31536000"), "{cache}");
    assert_eq!(header(&res, "content-type").as_deref(), Some("text/css; charset=utf-8"));
    let body = res.text().await.unwrap();
    assert!(body.contains("prefers-color-scheme: dark"), "no dark variant");
}

#[tokio::test]
async fn error_pages_wear_the_site_layout() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let (status, html) = get(&http, &server, "/no/such/page").await;
    assert_eq!(status, 404);
    assert!(html.contains("<span class=\"code\">404</span> Not Found"), "{html}");
    assert!(html.contains("<title>404 Not Found · Burrow Notes</title>"), "{html}");
    assert!(html.contains("/static/theme/theme."), "no theme stylesheet:\n{html}");
    assert!(current_nav_items(&html).is_empty(), "a current nav item on a 404");
}

#[tokio::test]
async fn note_pages_use_the_filters() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let content = "See https://example.com/docs?a=1&b=2.\n<script>x</script>\n\nSecond paragraph";
    let id = create_note(&http, &server, "Filters", content).await;
    let (_, detail) = get(&http, &server, &format!("/notes/{id}")).await;
    assert!(
        detail.contains(
            "<a href=\"https://example.com/docs?a=1&amp;b=2\" rel=\"nofollow noopener\">"
        ),
        "no link:\n{detail}"
    );
    assert!(
        detail.contains("&lt;script&gt;x&lt;/script&gt;</p>\n\n<p>Second paragraph</p>"),
        "paragraphs:\n{detail}"
    );
    assert!(!detail.contains("<script>x"), "{detail}");
    let (_, list) = get(&http, &server, "/notes").await;
    assert!(list.contains("just now</time>"), "no natural time in the list:\n{list}");
}
