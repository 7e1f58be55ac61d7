//! Foreign keys read from the database itself, and what a delete would do through them.
//!
//! A delete confirmation page (the admin's) should say which other rows go with the one
//! being deleted, are changed, or keep it from being deleted. The database already knows:
//! its foreign keys and their `ON DELETE` actions. Reading them from the catalog (SQLite's
//! `pragma_foreign_key_list`, PostgreSQL's `pg_constraint`) rather than from a declaration
//! in Rust means the page can never disagree with what the engine will actually do.
//!
//! [`delete_effects`] only counts (`SELECT COUNT(*)`), so it runs in a read. Each cascade
//! step is a CTE over the previous one rather than a copy of it nested inside: a table
//! reached through several foreign keys would otherwise double the SQL at every step.
//!
//! On PostgreSQL only tables visible on the search path are seen (names are unqualified,
//! as everywhere in burrow); on SQLite only the main database's.

use std::collections::HashMap;

use super::{Conn, DbError, Engine, Value};

/// What deleting a referenced row does to a referencing row (ON DELETE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    Cascade,
    SetNull,
    SetDefault,
    Restrict,
    NoAction,
}

/// A foreign key of `table` (its `columns`) to `references` (its `referenced_columns`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    pub table: String,
    pub columns: Vec<String>,
    pub references: String,
    pub referenced_columns: Vec<String>,
    pub on_delete: OnDelete,
}

/// Every foreign key in the database (user tables) that references `table`, ordered by
/// referencing table, then columns; empty for a table that does not exist. On SQLite table
/// names match case-insensitively, as SQLite resolves them.
pub fn references_to(conn: &Conn, table: &str) -> Result<Vec<ForeignKey>, DbError> {
    let engine = conn.engine();
    let keys = foreign_keys(conn)?;
    keys.into_iter()
        .filter(|fk| same_table(engine, &fk.references, table))
        .map(|fk| check(&fk).map(|()| fk))
        .collect()
}

/// One line of what a delete would do: `count` rows of `table` deleted with it (Cascade),
/// set to NULL/default (SetNull/SetDefault), or rows that keep the delete from happening
/// (Restrict/NoAction — with foreign keys enforced these make the DELETE fail). `depth` 1 =
/// referencing the deleted rows directly, 2 = referencing rows deleted by cascade, ...;
/// `via` = the referencing column(s) joined by ", ".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeleteEffect {
    pub table: String,
    pub via: String,
    pub on_delete: OnDelete,
    pub count: i64,
    pub depth: usize,
}

/// How many cascade steps [`delete_effects`] follows: a table referencing itself (or A→B→A)
/// could otherwise be followed for as long as the data goes on.
const MAX_DEPTH: usize = 8;

/// What deleting the rows of `table` whose `key` column is one of `ids` would do to other
/// rows, following ON DELETE CASCADE recursively (a cascade's rows can cascade further),
/// counted with COUNT(*) queries (nothing is deleted). Lines with a count of 0 are left out.
/// Cycles (a table referencing itself, or A→B→A) stop at a depth limit of 8. Ordered by
/// depth, then table, then via.
///
/// Each row is counted where the delete really leaves it: the rows being deleted (the
/// `ids`, and rows a cascade already reached at a smaller depth) are not counted again, and a
/// row that a cascade deletes anyway is not also counted as set to NULL or as blocking the
/// delete. A row reached through two foreign keys at the same depth is counted on both
/// lines.
pub fn delete_effects(
    conn: &Conn,
    table: &str,
    key: &str,
    ids: &[Value],
) -> Result<Vec<DeleteEffect>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let engine = conn.engine();
    let keys = foreign_keys(conn)?;
    // `?1, ?2, …`: every statement binds `ids` once, however often the root set appears.
    let placeholders = (1..=ids.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let prefix = cte_prefix(table, &keys);

    let root = format!("{} IN ({placeholders})", quote(key));
    let mut ctes = vec![format!("{prefix}0 AS (SELECT * FROM {} WHERE {root})", quote(table))];
    // Per table, the conditions that select its rows deleted so far: a row's membership is
    // re-evaluated from its own columns, so no table needs a known primary key.
    let mut deleted: Vec<(String, String)> = vec![(table.to_string(), root)];
    let mut frontier: Vec<(String, String)> = vec![(table.to_string(), format!("{prefix}0"))];
    // Non-cascade lines wait until every cascade is known, to leave out rows it deletes.
    let mut pending: Vec<(&ForeignKey, String, usize)> = Vec::new();
    let mut effects = Vec::new();
    let count = |ctes: &[String], table: &str, condition: &str| -> Result<i64, DbError> {
        let sql = format!(
            "WITH {} SELECT COUNT(*) FROM {} WHERE {condition}",
            ctes.join(", "),
            quote(table)
        );
        conn.query_one(&sql, ids)
    };

    for depth in 1..=MAX_DEPTH {
        // Child table → its conditions at this depth, in first-seen order.
        let mut reached: Vec<(String, Vec<String>)> = Vec::new();
        for (parent, cte) in &frontier {
            for fk in keys.iter().filter(|fk| same_table(engine, &fk.references, parent)) {
                check(fk)?;
                let condition = format!(
                    "{} IN (SELECT {} FROM {cte})",
                    row_value(&fk.columns),
                    list(&fk.referenced_columns)
                );
                if fk.on_delete != OnDelete::Cascade {
                    pending.push((fk, condition, depth));
                    continue;
                }
                let fresh = format!("({condition}){}", not_in(engine, &deleted, &fk.table));
                let n = count(&ctes, &fk.table, &fresh)?;
                if n == 0 {
                    continue;
                }
                effects.push(effect(fk, n, depth));
                match reached.iter_mut().find(|(t, _)| *t == fk.table) {
                    Some((_, conditions)) => conditions.push(condition),
                    None => reached.push((fk.table.clone(), vec![condition])),
                }
            }
        }
        frontier.clear();
        for (child, conditions) in reached {
            let any = format!("({})", conditions.join(") OR ("));
            let cte = format!("{prefix}{}", ctes.len());
            // Only the rows not deleted before: a cycle in the data ends when it comes round.
            let fresh = format!("{any}{}", not_in(engine, &deleted, &child));
            ctes.push(format!("{cte} AS (SELECT * FROM {} WHERE {fresh})", quote(&child)));
            deleted.push((child.clone(), any));
            frontier.push((child, cte));
        }
        if frontier.is_empty() {
            break;
        }
    }

    for (fk, condition, depth) in pending {
        let kept = format!("({condition}){}", not_in(engine, &deleted, &fk.table));
        let n = count(&ctes, &fk.table, &kept)?;
        if n > 0 {
            effects.push(effect(fk, n, depth));
        }
    }
    effects.sort_by(|a, b| (a.depth, &a.table, &a.via).cmp(&(b.depth, &b.table, &b.via)));
    Ok(effects)
}

fn effect(fk: &ForeignKey, count: i64, depth: usize) -> DeleteEffect {
    DeleteEffect {
        table: fk.table.clone(),
        via: fk.columns.join(", "),
        on_delete: fk.on_delete,
        count,
        depth,
    }
}

/// ` AND (…) IS NOT TRUE`: leaves out the rows of `table` that the conditions in `deleted`
/// select. `IS NOT TRUE` rather than `NOT`: a NULL key is "not deleted", not unknown.
fn not_in(engine: Engine, deleted: &[(String, String)], table: &str) -> String {
    let conditions: Vec<&str> = deleted
        .iter()
        .filter(|(t, _)| same_table(engine, t, table))
        .map(|(_, c)| c.as_str())
        .collect();
    if conditions.is_empty() {
        return String::new();
    }
    format!(" AND (({})) IS NOT TRUE", conditions.join(") OR ("))
}

/// A name for the CTEs that no table in the query has (a CTE would hide a table of its
/// name).
fn cte_prefix(table: &str, keys: &[ForeignKey]) -> String {
    let mut prefix = String::from("burrow_rows_");
    let names = || std::iter::once(table).chain(keys.iter().map(|fk| fk.table.as_str()));
    while names().any(|n| n.to_ascii_lowercase().starts_with(&prefix)) {
        prefix.push('_');
    }
    prefix
}

/// SQLite compares table names case-insensitively (ASCII only, as SQLite does);
/// PostgreSQL's catalog holds them exactly as the `"quoted"` SQL uses them.
fn same_table(engine: Engine, a: &str, b: &str) -> bool {
    match engine {
        Engine::Sqlite => a.eq_ignore_ascii_case(b),
        Engine::Postgres => a == b,
    }
}

/// An identifier in double quotes, so that any name (a keyword, mixed case, a quote) is
/// taken literally.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn list(columns: &[String]) -> String {
    columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
}

/// `"a"`, or the row value `("a", "b")` of a multi-column key.
fn row_value(columns: &[String]) -> String {
    match columns {
        [one] => quote(one),
        _ => format!("({})", list(columns)),
    }
}

/// SQLite accepts a foreign key whose parent has no matching key (it fails only when the
/// key is used); a query built on it would be wrong, so it is an error here too.
fn check(fk: &ForeignKey) -> Result<(), DbError> {
    if fk.columns.is_empty() || fk.columns.len() != fk.referenced_columns.len() {
        return Err(DbError::Other(format!(
            "foreign key mismatch: {}({}) references {}({}), which has no such key",
            fk.table,
            fk.columns.join(", "),
            fk.references,
            fk.referenced_columns.join(", ")
        )));
    }
    Ok(())
}

/// Every foreign key of the database, ordered by table, then columns.
fn foreign_keys(conn: &Conn) -> Result<Vec<ForeignKey>, DbError> {
    let mut keys = match conn.engine() {
        Engine::Sqlite => sqlite_foreign_keys(conn)?,
        Engine::Postgres => postgres_foreign_keys(conn)?,
    };
    keys.sort_by(|a, b| (&a.table, &a.columns).cmp(&(&b.table, &b.columns)));
    Ok(keys)
}

fn sqlite_foreign_keys(conn: &Conn) -> Result<Vec<ForeignKey>, DbError> {
    // `_` is a LIKE wildcard: unescaped, a table called `sqlite1` would be left out too.
    let tables: Vec<String> = conn.query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' ORDER BY name",
        &[],
    )?;
    let mut primary_keys: HashMap<String, Vec<String>> = HashMap::new();
    let mut keys = Vec::new();
    for table in &tables {
        type FkRow = (String, String, Option<String>, String, i64, i64);
        let rows: Vec<FkRow> = conn.query(
            "SELECT \"table\", \"from\", \"to\", on_delete, id, seq \
             FROM pragma_foreign_key_list(?) ORDER BY id, seq",
            &[Value::from(table)],
        )?;
        let mut rows = rows.into_iter().peekable();
        while let Some((parent, from, to, on_delete, id, _)) = rows.next() {
            // The parent as REFERENCES spelled it; the catalog's spelling when it exists.
            let parent =
                tables.iter().find(|t| t.eq_ignore_ascii_case(&parent)).cloned().unwrap_or(parent);
            let mut columns = vec![from];
            let mut referenced = vec![to];
            while let Some((.., next_id, _)) = rows.peek()
                && *next_id == id
            {
                let (_, from, to, ..) = rows.next().expect("peeked");
                columns.push(from);
                referenced.push(to);
            }
            // `to` is NULL for `REFERENCES parent` without columns: the parent's primary key.
            let referenced_columns = match referenced.into_iter().collect::<Option<Vec<_>>>() {
                Some(named) => named,
                None => match primary_keys.get(&parent.to_ascii_lowercase()) {
                    Some(pk) => pk.clone(),
                    None => {
                        let pk: Vec<String> = conn.query(
                            "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                            &[Value::from(&parent)],
                        )?;
                        primary_keys.insert(parent.to_ascii_lowercase(), pk.clone());
                        pk
                    }
                },
            };
            keys.push(ForeignKey {
                table: table.clone(),
                columns,
                references: parent,
                referenced_columns,
                on_delete: match on_delete.to_ascii_uppercase().as_str() {
                    "CASCADE" => OnDelete::Cascade,
                    "SET NULL" => OnDelete::SetNull,
                    "SET DEFAULT" => OnDelete::SetDefault,
                    "RESTRICT" => OnDelete::Restrict,
                    "NO ACTION" => OnDelete::NoAction,
                    other => return Err(unknown_action(table, other)),
                },
            });
        }
    }
    Ok(keys)
}

fn postgres_foreign_keys(conn: &Conn) -> Result<Vec<ForeignKey>, DbError> {
    // One row per column of each key, in key order (conkey and confkey are parallel
    // arrays). `conparentid = 0` keeps a partitioned table's key once, not once more per
    // partition; `pg_table_is_visible` keeps the tables an unqualified name reaches, the
    // only ones the counting SQL can name.
    type KeyRow = (String, i64, String, String, String, String);
    let rows: Vec<KeyRow> = conn.query(
        "SELECT child.relname::text, con.oid::int8, a.attname::text, parent.relname::text, \
                fa.attname::text, con.confdeltype::text \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class child ON child.oid = con.conrelid \
         JOIN pg_catalog.pg_class parent ON parent.oid = con.confrelid \
         CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(col, fcol, n) \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.col \
         JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fcol \
         WHERE con.contype = 'f' AND con.conparentid = 0 \
           AND child.relnamespace <> 'pg_catalog'::regnamespace \
           AND pg_catalog.pg_table_is_visible(con.conrelid) \
           AND pg_catalog.pg_table_is_visible(con.confrelid) \
         ORDER BY con.oid, k.n",
        &[],
    )?;
    let mut keys: Vec<(i64, ForeignKey)> = Vec::new();
    for (table, oid, column, parent, referenced, action) in rows {
        if let Some((_, fk)) = keys.last_mut().filter(|(last, _)| *last == oid) {
            fk.columns.push(column);
            fk.referenced_columns.push(referenced);
            continue;
        }
        let on_delete = match action.as_str() {
            "c" => OnDelete::Cascade,
            "n" => OnDelete::SetNull,
            "d" => OnDelete::SetDefault,
            "r" => OnDelete::Restrict,
            "a" => OnDelete::NoAction,
            other => return Err(unknown_action(&table, other)),
        };
        let fk = ForeignKey {
            table,
            columns: vec![column],
            references: parent,
            referenced_columns: vec![referenced],
            on_delete,
        };
        keys.push((oid, fk));
    }
    Ok(keys.into_iter().map(|(_, fk)| fk).collect())
}

fn unknown_action(table: &str, action: &str) -> DbError {
    DbError::Other(format!("a foreign key of {table} has an unknown ON DELETE action {action:?}"))
}
