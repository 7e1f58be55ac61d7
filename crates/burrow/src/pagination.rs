//! Pages of a listing: [`Paginator`] reads `?page=` and gives SQL's `LIMIT` and `OFFSET`;
//! [`Page`] is one page of rows with its neighbours, ready for a template.
//!
//! ```
//! use burrow::pagination::Paginator;
//!
//! // `?page=3`, 20 rows a page: fetch one row more than a page to know if there is a next.
//! let paginator = Paginator::parse("3", 20);
//! assert_eq!((paginator.limit(), paginator.offset()), (21, 40));
//! let rows: Vec<i64> = (40..61).collect(); // what `LIMIT 21 OFFSET 40` returned
//! let page = paginator.page_of(rows);
//! assert_eq!((page.items.len(), page.prev, page.next), (20, Some(2), Some(4)));
//!
//! // A page number that is missing, zero, negative, not a number or absurd is page 1.
//! for bad in ["", "0", "-2", "abc", "99999999999999999999"] {
//!     assert_eq!(Paginator::parse(bad, 20).page(), 1);
//! }
//! ```
//!
//! In a template (`context! { page }`):
//!
//! ```jinja
//! {% for item in page.items %}…{% endfor %}
//! {% if page.prev %}<a href="?page={{ page.prev }}">Newer</a>{% endif %}
//! {% if page.next %}<a href="?page={{ page.next }}">Older</a>{% endif %}
//! ```

use serde::Serialize;

/// Which rows a page number asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paginator {
    page: usize,
    per_page: usize,
}

impl Paginator {
    /// The last page number taken as asked: `OFFSET` costs a scan of every skipped row, so
    /// a link to page 10⁹ must not become a full-table scan. Beyond it is page 1.
    pub const MAX_PAGE: usize = 100_000;

    /// Rows a page for the [`Paginator`] extractor, as Django's admin lists show.
    pub const DEFAULT_PER_PAGE: usize = 20;

    /// Page `page` (1 is the first) of `per_page` rows. A page outside `1..=MAX_PAGE` is
    /// page 1; a `per_page` of 0 is 1.
    pub fn new(page: usize, per_page: usize) -> Paginator {
        let page = if (1..=Self::MAX_PAGE).contains(&page) { page } else { 1 };
        Paginator { page, per_page: per_page.max(1) }
    }

    /// The page a `?page=` value asks for. Never an error: a visitor who edits the URL
    /// gets the first page, not an error page.
    pub fn parse(raw: &str, per_page: usize) -> Paginator {
        Paginator::new(raw.trim().parse().unwrap_or(1), per_page)
    }

    /// The page of a query string's `page` parameter (`q=x&page=2`), as [`parse`](Self::parse).
    pub fn from_query(query: Option<&str>, per_page: usize) -> Paginator {
        let raw = query
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("page="))
            .unwrap_or("");
        Paginator::parse(raw, per_page)
    }

    /// The same page number with `per_page` rows a page (0 is 1).
    pub fn with_per_page(self, per_page: usize) -> Paginator {
        Paginator::new(self.page, per_page)
    }

    pub fn page(&self) -> usize {
        self.page
    }

    pub fn per_page(&self) -> usize {
        self.per_page
    }

    /// The rows to fetch: one more than a page, which tells whether there is a next page.
    pub fn limit(&self) -> usize {
        self.per_page + 1
    }

    /// The rows before this page.
    pub fn offset(&self) -> usize {
        (self.page - 1) * self.per_page
    }

    /// The page made of what `LIMIT limit() OFFSET offset()` returned: the extra row, if
    /// there was one, is dropped and means there is a next page.
    pub fn page_of<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let more = rows.len() > self.per_page;
        rows.truncate(self.per_page);
        Page {
            items: rows,
            page: self.page,
            per_page: self.per_page,
            next: more.then_some(self.page + 1),
            prev: (self.page > 1).then(|| self.page - 1),
        }
    }

    /// This page without rows (e.g. a search that cannot run), still linking back.
    pub fn empty<T>(&self) -> Page<T> {
        self.page_of(Vec::new())
    }
}

/// The first page, [`Paginator::DEFAULT_PER_PAGE`] rows.
impl Default for Paginator {
    fn default() -> Paginator {
        Paginator::new(1, Paginator::DEFAULT_PER_PAGE)
    }
}

/// A handler argument: the page `?page=` asks for, [`Paginator::DEFAULT_PER_PAGE`] rows a
/// page (change it with [`Paginator::with_per_page`]). Never rejects a request.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Paginator {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Paginator, Self::Rejection> {
        Ok(Paginator::from_query(parts.uri.query(), Paginator::DEFAULT_PER_PAGE))
    }
}

/// One page of rows, serializable for templates: `items`, `page`, `per_page`, and the
/// `next` and `prev` page numbers (`None`, which templates see as false, at either end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: usize,
    pub per_page: usize,
    pub next: Option<usize>,
    pub prev: Option<usize>,
}

/// `context! { page }` in a handler: a page goes into a template as it serializes.
impl<T: Serialize> From<Page<T>> for minijinja::Value {
    fn from(page: Page<T>) -> minijinja::Value {
        minijinja::Value::from(minijinja::value::Serde(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_are_never_an_error() {
        let page = |raw: &str| Paginator::parse(raw, 20).page();
        for (raw, expected) in [
            ("", 1),
            ("1", 1),
            (" 7 ", 7),
            ("0", 1),
            ("-3", 1),
            ("abc", 1),
            ("2.5", 1),
            ("100000", 100_000),
            ("100001", 1),
            ("18446744073709551616", 1),
        ] {
            assert_eq!(page(raw), expected, "?page={raw}");
        }
        assert_eq!(Paginator::new(3, 0).per_page(), 1);
        assert_eq!(Paginator::from_query(Some("q=a&page=4"), 10).page(), 4);
        assert_eq!(Paginator::from_query(Some("pages=4"), 10).page(), 1);
        assert_eq!(Paginator::from_query(None, 10).page(), 1);
    }

    #[test]
    fn the_extra_row_means_a_next_page() {
        let first = Paginator::new(1, 3);
        assert_eq!((first.limit(), first.offset()), (4, 0));
        let page = first.page_of(vec![1, 2, 3, 4]);
        assert_eq!(page.items, [1, 2, 3]);
        assert_eq!((page.prev, page.next), (None, Some(2)));
        let last = Paginator::new(2, 3).page_of(vec![4, 5, 6]);
        assert_eq!((last.prev, last.next), (Some(1), None));
        let past_the_end: Page<i32> = Paginator::new(9, 3).empty();
        assert_eq!((past_the_end.prev, past_the_end.next), (Some(8), None));
        let json = serde_json::to_value(Paginator::new(2, 3).page_of(vec!["a"])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"items": ["a"], "page": 2, "per_page": 3, "next": null, "prev": 1})
        );
    }
}
