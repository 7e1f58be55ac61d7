//! [`Row`] and [`FromRow`]: rows read by column name (or position) on either engine.

use super::{DbError, FromValue, Value};

/// One result row; read columns by name with [`Row::get`] or by position with
/// [`Row::get_at`].
pub struct Row<'a>(pub(super) RowInner<'a>);

pub(super) enum RowInner<'a> {
    /// With the query's column names when it read them once for all its rows.
    Sqlite(&'a rusqlite::Row<'a>, Option<&'a Columns>),
    Postgres(&'a postgres::Row),
}

/// A SQLite query's column names, read once for all its rows: rusqlite finds a column by
/// asking SQLite for each column's name again (a C string measured and checked each time),
/// which cost a page of 12 rows more than the query itself.
pub(super) struct Columns {
    /// Every name, one after the other; `ends[i]` is where the `i`th ends.
    names: String,
    ends: Vec<usize>,
    /// Where the next lookup starts: right after the column the last one found. A derived
    /// struct reads its fields in their order, which is usually the query's, so each
    /// lookup then compares one name instead of scanning from the first (the 48 lookups of
    /// a page of 12 rows were 4% of its instructions). Only when no two names are alike:
    /// with duplicates the first one must win, so the search always starts at 0.
    next: std::cell::Cell<usize>,
    unique: bool,
}

impl Columns {
    pub(super) fn of(statement: &rusqlite::Statement<'_>) -> Columns {
        let count = statement.column_count();
        // Sized once: room for names of 16 bytes on average, where growing from empty
        // reallocated (and copied) the names two or three times per query.
        let mut names = String::with_capacity(16 * count);
        let mut ends = Vec::with_capacity(count);
        for index in 0..count {
            // SQLite names every column (none only when out of memory): an empty name then
            // matches no field, and the read fails with "no such column" rather than a panic.
            names.push_str(statement.column_name(index).unwrap_or_default());
            ends.push(names.len());
        }
        let mut columns = Columns { names, ends, next: std::cell::Cell::new(0), unique: true };
        let count = columns.ends.len();
        columns.unique = (0..count).all(|i| {
            (i + 1..count).all(|j| !columns.name(i).eq_ignore_ascii_case(columns.name(j)))
        });
        columns
    }

    #[inline]
    fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.names.as_bytes()[start..self.ends[i]]
    }

    /// The column after the one the last lookup found, when it is named `column` exactly:
    /// the lookup of a struct read in the query's order, one comparison and no search.
    #[inline]
    fn next_is(&self, column: &str) -> Option<usize> {
        let next = self.next.get();
        if !(self.unique && next < self.ends.len() && self.name(next) == column.as_bytes()) {
            return None;
        }
        self.next.set(if next + 1 == self.ends.len() { 0 } else { next + 1 });
        Some(next)
    }

    /// The first column named `column`, ignoring ASCII case as SQLite does.
    fn position(&self, column: &str) -> Option<usize> {
        let count = self.ends.len();
        let first = if self.unique { self.next.get() } else { 0 };
        let column = column.as_bytes();
        // Byte for byte first: names are mostly written as the query has them, and
        // `eq_ignore_ascii_case` compares a byte at a time (a `memcmp` does not).
        let matches = |name: &[u8]| name == column || name.eq_ignore_ascii_case(column);
        let found = (first..count).chain(0..first).find(|&i| matches(self.name(i)))?;
        self.next.set(if found + 1 == count { 0 } else { found + 1 });
        Some(found)
    }
}

impl Row<'_> {
    /// The column `column` converted to `T`.
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, DbError> {
        let index = self.index(column).ok_or_else(|| DbError::Decode {
            column: column.to_string(),
            reason: "no such column in the result".into(),
        })?;
        self.convert(index, column)
    }

    /// The column at `index` (from 0) converted to `T`.
    pub fn get_at<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        if index >= self.len() {
            return Err(DbError::Decode {
                column: index.to_string(),
                reason: format!("the result has {} columns", self.len()),
            });
        }
        self.convert(index, &index.to_string())
    }

    /// True when the result has a column named `column`.
    pub fn contains(&self, column: &str) -> bool {
        self.index(column).is_some()
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        match &self.0 {
            RowInner::Sqlite(row, _) => row.as_ref().column_count(),
            RowInner::Postgres(row) => row.len(),
        }
    }

    /// The name of the column at `index` (from 0).
    pub fn column_name(&self, index: usize) -> Option<&str> {
        match &self.0 {
            RowInner::Sqlite(row, _) => row.as_ref().column_name(index).ok(),
            RowInner::Postgres(row) => row.columns().get(index).map(|c| c.name()),
        }
    }

    /// The value at `index` as stored (see [`Value`]).
    pub fn value_at(&self, index: usize) -> Result<Value, DbError> {
        self.get_at(index)
    }

    /// True when the result has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn index(&self, column: &str) -> Option<usize> {
        if let RowInner::Sqlite(_, Some(columns)) = &self.0
            && let Some(index) = columns.next_is(column)
        {
            return Some(index);
        }
        self.find(column)
    }

    #[inline(never)]
    fn find(&self, column: &str) -> Option<usize> {
        match &self.0 {
            RowInner::Sqlite(_, Some(columns)) => columns.position(column),
            RowInner::Sqlite(row, None) => row.as_ref().column_index(column).ok(),
            RowInner::Postgres(row) => row.columns().iter().position(|c| c.name() == column),
        }
    }

    #[inline]
    fn convert<T: FromValue>(&self, index: usize, column: &str) -> Result<T, DbError> {
        let converted = match &self.0 {
            RowInner::Sqlite(row, _) => super::sqlite::convert(row.get_ref(index)?),
            RowInner::Postgres(row) => T::from_value(super::postgres::value_at(row, index)?),
        };
        converted.map_err(|reason| DbError::Decode { column: column.to_string(), reason })
    }
}

/// Builds a value from a row: derive it (`#[derive(FromRow)]`) for a struct whose fields
/// are named like the columns; tuples take the columns in order, and a single value
/// (`i64`, `String`, `Option<T>`, …) takes the first column.
///
/// The derive reads each field with [`Row::get`] (a tuple struct's with [`Row::get_at`]);
/// `#[row(...)]` on a field changes that:
///
/// ```no_run
/// # async fn demo(db: burrow::Db) -> Result<(), burrow::db::DbError> {
/// use burrow::db::{FromRow, params};
///
/// #[derive(FromRow)]
/// struct Author {
///     #[row(rename = "author_name")] // the column `author_name`
///     name: String,
/// }
///
/// #[derive(FromRow)]
/// struct Post {
///     id: i64,
///     published_at: Option<String>, // NULL is None
///     #[row(default)] // 0 when the query has no `comments` column
///     comments: i64,
///     #[row(flatten)] // Author reads its own columns from this row
///     author: Author,
///     #[row(skip)] // never read: always false
///     selected: bool,
/// }
///
/// #[derive(FromRow)]
/// struct PostId(i64); // the first column
///
/// let posts: Vec<Post> = db
///     .read(|c| {
///         c.query(
///             "SELECT p.id, p.published_at, a.name AS author_name
///              FROM posts p JOIN authors a ON a.id = p.author_id",
///             params![],
///         )
///     })
///     .await?;
/// let PostId(id) = db
///     .write(|c| c.query_one("INSERT INTO posts (author_id) VALUES (?) RETURNING id", params![1]))
///     .await?;
/// # let _ = (posts, id);
/// # Ok(()) }
/// ```
///
/// A missing column, or one that does not convert to its field's type, is a
/// [`DbError::Decode`] naming the column.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, DbError>;
}

impl<T: FromValue> FromRow for T {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        row.get_at(0)
    }
}

macro_rules! tuple_from_row {
    ($($name:ident $index:tt),+) => {
        impl<$($name: FromValue),+> FromRow for ($($name,)+) {
            fn from_row(row: &Row) -> Result<Self, DbError> {
                Ok(($(row.get_at::<$name>($index)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

#[cfg(test)]
mod tests {
    use crate::db::conn::Conn;
    use crate::db::{DbError, FromRow, Value};

    // The derive inside the crate itself: its `::burrow::db` paths resolve through
    // `extern crate self as burrow` in lib.rs.
    #[derive(Debug, PartialEq, FromRow)]
    struct Person {
        id: i64,
        #[row(rename = "full_name")]
        name: String,
        nickname: Option<String>,
        #[row(default)]
        age: i64,
        #[row(skip)]
        note: String,
    }

    #[derive(Debug, PartialEq, FromRow)]
    struct Tagged {
        tag: String,
        #[row(flatten)]
        person: Person,
    }

    #[derive(Debug, PartialEq, FromRow)]
    struct Id(i64);

    #[test]
    fn derived_structs_read_their_columns() {
        let conn = Conn::in_memory();
        let sql = "SELECT 'x' AS tag, 7 AS id, 'Ada' AS full_name, NULL AS nickname";
        let tagged: Tagged = conn.query_one(sql, &[]).unwrap();
        let person =
            Person { id: 7, name: "Ada".into(), nickname: None, age: 0, note: String::new() };
        assert_eq!(tagged, Tagged { tag: "x".into(), person });
        assert_eq!(conn.query_one::<Id>("SELECT 3", &[]).unwrap(), Id(3));
        let with_age = "SELECT 7 AS id, 'Ada' AS full_name, 'A' AS nickname, 36 AS age";
        assert_eq!(conn.query_one::<Person>(with_age, &[]).unwrap().age, 36);
        let bad = "SELECT 'seven' AS id, 'Ada' AS full_name, NULL AS nickname";
        let Err(DbError::Decode { column, .. }) = conn.query_one::<Person>(bad, &[]) else {
            panic!("reading text into `id: i64` must fail");
        };
        assert_eq!(column, "id");
    }

    #[test]
    fn queries_of_many_rows_find_columns_by_name_ignoring_case() {
        let conn = Conn::in_memory();
        let sql = "SELECT 'Ada' AS Full_Name, NULL AS nickname, 1 AS ID \
                   UNION ALL SELECT 'Bo', 'b', 2";
        let people: Vec<Person> = conn.query(sql, &[]).unwrap();
        let read: Vec<_> =
            people.iter().map(|p| (p.id, p.name.as_str(), p.nickname.as_deref())).collect();
        assert_eq!(read, [(1, "Ada", None), (2, "Bo", Some("b"))]);
        let Err(DbError::Decode { column, .. }) = conn.query::<Person>("SELECT 1 AS id", &[])
        else {
            panic!("a missing column must fail");
        };
        assert_eq!(column, "full_name");
        let mut seen = Vec::new();
        conn.query_each("SELECT 5 AS x UNION ALL SELECT 6", &[], |row| {
            seen.push(row.get::<i64>("X")?);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [5, 6]);
        // Text that is not UTF-8 reads with replacement characters.
        let text: String = conn.query_one("SELECT CAST(x'41ff42' AS TEXT)", &[]).unwrap();
        assert_eq!(text, "A\u{FFFD}B");
        let value: Value = conn.query_one("SELECT CAST(x'41ff42' AS TEXT)", &[]).unwrap();
        assert_eq!(value, Value::Text("A\u{FFFD}B".into()));
    }

    /// The lookup starts after the last column found; names found out of order, again, or
    /// missing give the same answers as a scan from the first, and with two columns of one
    /// name the first still wins.
    #[test]
    fn columns_are_found_whatever_the_order_of_the_lookups() {
        let conn = Conn::in_memory();
        let sql = "SELECT 1 AS a, 2 AS b, 3 AS c UNION ALL SELECT 4, 5, 6";
        let mut seen = Vec::new();
        conn.query_each(sql, &[], |row| {
            for name in ["a", "b", "c", "c", "A", "c", "b", "b", "a"] {
                seen.push(row.get::<i64>(name)?);
            }
            assert!(row.get::<i64>("d").is_err());
            seen.push(row.get::<i64>("B")?);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3, 3, 1, 3, 2, 2, 1, 2, 4, 5, 6, 6, 4, 6, 5, 5, 4, 5]);
        let sql = "SELECT 1 AS id, 2 AS other, 3 AS ID";
        let mut seen = Vec::new();
        conn.query_each(sql, &[], |row| {
            for name in ["id", "other", "id", "Id"] {
                seen.push(row.get::<i64>(name)?);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 1, 1]);
        // The same name twice, spelled alike: the first wins, in every row, though a
        // lookup in the query's order would come to the second.
        let sql = "SELECT 1 AS id, 2 AS other, 3 AS id UNION ALL SELECT 4, 5, 6";
        let mut seen = Vec::new();
        conn.query_each(sql, &[], |row| {
            for name in ["id", "other", "id"] {
                seen.push(row.get::<i64>(name)?);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 1, 4, 5, 4]);
    }
}
