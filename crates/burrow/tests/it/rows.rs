//! Typed rows: `#[derive(FromRow)]` structs read from a real database, every test once on
//! SQLite and once on PostgreSQL (`both!`, see db.rs). Only the prelude is imported, as an
//! app would: the derive comes with the trait.

use burrow::db::{Engine, FromValue, Value, ValueRef};
use burrow::prelude::*;

/// Written once for both engines: portable types, ids given explicitly.
const SCHEMA: &str = "
    CREATE TABLE authors (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE posts (
        id BIGINT PRIMARY KEY,
        author_id BIGINT NOT NULL REFERENCES authors (id),
        title TEXT NOT NULL,
        body TEXT,
        score DOUBLE PRECISION NOT NULL,
        published BOOLEAN NOT NULL,
        views INTEGER
    );
    INSERT INTO authors (id, name) VALUES (1, 'Ada'), (2, 'Grace');
    INSERT INTO posts (id, author_id, title, body, score, published, views) VALUES
        (1, 1, 'Engines', 'On the analytical engine.', 9.5, TRUE, 120),
        (2, 2, 'Compilers', NULL, 7.25, FALSE, NULL),
        (3, 1, 'Notes', 'Note G.', 8.0, TRUE, 3)";

async fn schema(db: &Db) {
    db.write(|c| c.execute_batch(SCHEMA)).await.unwrap();
}

#[derive(Debug, PartialEq, FromRow)]
struct Post {
    id: i64,
    title: String,
    body: Option<String>,
    score: f64,
    published: bool,
    views: Option<i64>,
}

const POSTS: &str = "SELECT id, title, body, score, published, views FROM posts";

crate::both!(plain_fields_and_nulls, |db: Db| async move {
    schema(&db).await;
    let posts: Vec<Post> =
        db.read(|c| c.query(&format!("{POSTS} ORDER BY id"), params![])).await.unwrap();
    let compilers = Post {
        id: 2,
        title: "Compilers".into(),
        body: None,
        score: 7.25,
        published: false,
        views: None,
    };
    assert_eq!(posts.len(), 3);
    assert_eq!(
        posts[0],
        Post {
            id: 1,
            title: "Engines".into(),
            body: Some("On the analytical engine.".into()),
            score: 9.5,
            published: true,
            views: Some(120),
        }
    );
    assert_eq!(posts[1], compilers);
    assert_eq!(posts[2].score, 8.0);

    // The same struct through query_one and query_opt.
    let one: Post =
        db.read(|c| c.query_one(&format!("{POSTS} WHERE id = ?"), params![2])).await.unwrap();
    assert_eq!(one, compilers);
    let some: Option<Post> =
        db.read(|c| c.query_opt(&format!("{POSTS} WHERE id = ?"), params![2])).await.unwrap();
    assert_eq!(some, Some(compilers));
    let none: Option<Post> =
        db.read(|c| c.query_opt(&format!("{POSTS} WHERE id = ?"), params![99])).await.unwrap();
    assert_eq!(none, None);
    let missing = db
        .read(|c| c.query_one::<Post>(&format!("{POSTS} WHERE id = ?"), params![99]))
        .await
        .unwrap_err();
    assert!(matches!(missing, DbError::NotFound), "{missing:?}");
});

#[derive(Debug, PartialEq, FromRow)]
struct Summary {
    id: i64,
    #[row(rename = "title")]
    headline: String,
    #[row(default)]
    views: Option<i64>,
    #[row(default)]
    comments: i64,
    #[row(skip)]
    selected: bool,
}

crate::both!(rename_default_and_skip, |db: Db| async move {
    schema(&db).await;
    // `views` and `comments` absent: their defaults; `selected` is never read.
    let short: Summary =
        db.read(|c| c.query_one("SELECT id, title FROM posts WHERE id = 1", &[])).await.unwrap();
    assert_eq!(
        short,
        Summary { id: 1, headline: "Engines".into(), views: None, comments: 0, selected: false }
    );
    // Present: read as usual, even when a column named like a skipped field is there too.
    let full: Vec<Summary> = db
        .read(|c| {
            c.query(
                "SELECT id, title, views, 5 AS comments, 1 AS selected
                 FROM posts WHERE id IN (1, 2) ORDER BY id",
                &[],
            )
        })
        .await
        .unwrap();
    assert_eq!(
        full,
        [
            Summary {
                id: 1,
                headline: "Engines".into(),
                views: Some(120),
                comments: 5,
                selected: false
            },
            Summary {
                id: 2,
                headline: "Compilers".into(),
                views: None,
                comments: 5,
                selected: false
            },
        ]
    );
    // A present column still has to decode.
    let bad = db
        .read(|c| c.query_one::<Summary>("SELECT id, title, 'many' AS comments FROM posts", &[]))
        .await
        .unwrap_err();
    assert!(matches!(&bad, DbError::Decode { column, .. } if column == "comments"), "{bad:?}");
});

#[derive(Debug, PartialEq, FromRow)]
struct Author {
    #[row(rename = "author_id")]
    id: i64,
    #[row(rename = "author_name")]
    name: String,
}

#[derive(Debug, PartialEq, FromRow)]
struct Byline {
    title: String,
    #[row(flatten)]
    author: Author,
}

crate::both!(flatten_reads_the_same_row, |db: Db| async move {
    schema(&db).await;
    let bylines: Vec<Byline> = db
        .read(|c| {
            c.query(
                "SELECT p.title, a.id AS author_id, a.name AS author_name
                 FROM posts p JOIN authors a ON a.id = p.author_id
                 WHERE a.id = ? ORDER BY p.id",
                params![1],
            )
        })
        .await
        .unwrap();
    let ada = || Author { id: 1, name: "Ada".into() };
    assert_eq!(
        bylines,
        [
            Byline { title: "Engines".into(), author: ada() },
            Byline { title: "Notes".into(), author: ada() }
        ]
    );
    // The nested struct's columns missing: its error names them.
    let bad = db
        .read(|c| c.query_one::<Byline>("SELECT title, author_id FROM posts", &[]))
        .await
        .unwrap_err();
    assert!(matches!(&bad, DbError::Decode { column, .. } if column == "author_name"), "{bad:?}");
});

#[derive(Debug, PartialEq, FromRow)]
struct PostId(i64);

#[derive(Debug, PartialEq, FromRow)]
struct TitleScore(String, f64);

/// A generic struct: its where-clause is kept, no bound is added.
#[derive(Debug, PartialEq, FromRow)]
struct Labeled<T>
where
    T: FromValue,
{
    id: i64,
    label: T,
}

crate::both!(tuple_structs_and_generics, |db: Db| async move {
    schema(&db).await;
    let PostId(id) = db
        .write(|c| {
            c.query_one(
                "INSERT INTO posts (id, author_id, title, score, published)
                 VALUES (?, ?, ?, ?, ?) RETURNING id",
                params![4, 2, "Debugging", 6.5, true],
            )
        })
        .await
        .unwrap();
    assert_eq!(id, 4);
    let ids: Vec<PostId> =
        db.read(|c| c.query("SELECT id FROM posts ORDER BY id", &[])).await.unwrap();
    assert_eq!(ids, [PostId(1), PostId(2), PostId(3), PostId(4)]);
    let pair: Option<TitleScore> = db
        .read(|c| c.query_opt("SELECT title, score FROM posts WHERE id = ?", params![4]))
        .await
        .unwrap();
    assert_eq!(pair, Some(TitleScore("Debugging".into(), 6.5)));
    // Too few columns for the tuple struct: the error names the position.
    let short =
        db.read(|c| c.query_one::<TitleScore>("SELECT title FROM posts", &[])).await.unwrap_err();
    assert!(matches!(&short, DbError::Decode { column, .. } if column == "1"), "{short:?}");

    let labeled: Labeled<Option<String>> = db
        .read(|c| c.query_one("SELECT id, body AS label FROM posts WHERE id = 2", &[]))
        .await
        .unwrap();
    assert_eq!(labeled, Labeled { id: 2, label: None });
    let labeled: Labeled<f64> = db
        .read(|c| c.query_one("SELECT id, score AS label FROM posts WHERE id = 1", &[]))
        .await
        .unwrap();
    assert_eq!(labeled, Labeled { id: 1, label: 9.5 });
});

#[derive(Debug, FromRow)]
struct TitleAsNumber {
    #[allow(dead_code)]
    title: i64,
}

#[derive(Debug, FromRow)]
struct WithExtra {
    #[allow(dead_code)]
    id: i64,
    #[allow(dead_code)]
    extra: String,
}

crate::both!(errors_name_the_column, |db: Db| async move {
    schema(&db).await;
    // Text read into an i64.
    let bad =
        db.read(|c| c.query::<TitleAsNumber>("SELECT title FROM posts", &[])).await.unwrap_err();
    let DbError::Decode { column, reason } = &bad else { panic!("{bad:?}") };
    assert_eq!((column.as_str(), reason.as_str()), ("title", "expected an integer, found text"));
    assert_eq!(bad.to_string(), "column title: expected an integer, found text");
    // NULL read into a field that is not an Option.
    let null = db
        .read(|c| {
            c.query_one::<Post>(
                "SELECT id, body AS title, body, score, published, views FROM posts WHERE id = 2",
                &[],
            )
        })
        .await
        .unwrap_err();
    assert_eq!(null.to_string(), "column title: expected text, found NULL");
    // A column the query does not return.
    let missing = db
        .read(|c| c.query_opt::<WithExtra>("SELECT id FROM posts WHERE id = 1", &[]))
        .await
        .unwrap_err();
    let DbError::Decode { column, reason } = &missing else { panic!("{missing:?}") };
    assert_eq!((column.as_str(), reason.as_str()), ("extra", "no such column in the result"));
});

/// A type of the app's own that implements only `from_value`: rows reach it through the
/// default `from_value_ref`, with the owned value.
#[derive(Debug, PartialEq)]
struct Upper(String);

impl FromValue for Upper {
    fn from_value(value: Value) -> Result<Upper, String> {
        String::from_value(value).map(|s| Upper(s.to_uppercase()))
    }
}

/// One that reads the borrowed value too, and says which way it was built.
#[derive(Debug, PartialEq)]
enum Seen {
    Owned(String),
    Borrowed(String),
}

impl FromValue for Seen {
    fn from_value(value: Value) -> Result<Seen, String> {
        String::from_value(value).map(Seen::Owned)
    }
    fn from_value_ref(value: ValueRef<'_>) -> Result<Seen, String> {
        match value {
            ValueRef::Text(text) => Ok(Seen::Borrowed(text.to_string())),
            _ => Err("expected text".into()),
        }
    }
}

#[derive(Debug, PartialEq, FromRow)]
struct Custom {
    title: Upper,
    body: Option<Upper>,
    seen: Seen,
}

crate::both!(values_of_the_apps_own_types, |db: Db| async move {
    schema(&db).await;
    let rows: Vec<Custom> = db
        .read(|c| c.query("SELECT title, body, title AS seen FROM posts ORDER BY id", &[]))
        .await
        .unwrap();
    let titles: Vec<_> = rows.iter().map(|r| (r.title.0.as_str(), r.body.is_some())).collect();
    assert_eq!(titles, [("ENGINES", true), ("COMPILERS", false), ("NOTES", true)]);
    // SQLite's rows hand the borrowed text over; PostgreSQL's the owned value.
    let expected = match db.engine() {
        Engine::Sqlite => Seen::Borrowed("Engines".into()),
        Engine::Postgres => Seen::Owned("Engines".into()),
    };
    assert_eq!(rows[0].seen, expected);
    let wrong = db
        .read(|c| c.query_one::<Custom>("SELECT title, body, id AS seen FROM posts", &[]))
        .await
        .unwrap_err();
    let DbError::Decode { column, reason } = &wrong else { panic!("{wrong:?}") };
    let reason_expected = match db.engine() {
        Engine::Sqlite => "expected text",
        Engine::Postgres => "expected text, found an integer",
    };
    assert_eq!((column.as_str(), reason.as_str()), ("seen", reason_expected));
});
