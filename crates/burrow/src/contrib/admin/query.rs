//! A list's request (`?q=…&sort=…&page=…` and filters) read against what the model
//! declares, and the SQL it becomes. Anything not declared is dropped here, so names in
//! the SQL come only from declarations and values only travel as parameters.

use serde::Serialize;

use crate::admin::{FilterKind, ModelAdmin, Stored};
use crate::db::search::SearchQuery;
use crate::db::{Engine, Value};

/// The list state a request asked for, checked against the model.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) q: String,
    /// A declared sortable column, and whether it descends.
    pub(crate) sort: Option<(&'static str, bool)>,
    pub(crate) page: usize,
    /// `(parameter, value)` of the filters in effect, as given (to keep them in links).
    pub(crate) filters: Vec<(String, String)>,
}

impl ListQuery {
    /// Reads the query string; what `model` does not declare is ignored.
    pub(crate) fn parse(model: &ModelAdmin, raw: Option<&str>) -> ListQuery {
        let pairs: Vec<(String, String)> =
            raw.and_then(|raw| serde_urlencoded::from_str(raw).ok()).unwrap_or_default();
        let mut query = ListQuery { page: 1, ..ListQuery::default() };
        for (name, value) in pairs {
            match name.as_str() {
                "q" => query.q = value.trim().chars().take(200).collect(),
                "sort" => {
                    let (column, desc) = match value.strip_prefix('-') {
                        Some(column) => (column, true),
                        None => (value.as_str(), false),
                    };
                    if let Some(column) = model.sortable.iter().find(|c| **c == column) {
                        query.sort = Some((column, desc));
                    }
                }
                "page" => query.page = value.parse().ok().filter(|p| *p >= 1).unwrap_or(1),
                _ if filter_value(model, &name, &value).is_some() && !value.is_empty() => {
                    query.filters.retain(|(n, _)| *n != name);
                    query.filters.push((name, value));
                }
                _ => {}
            }
        }
        query
    }

    /// The order in effect: the asked one, else the model's default, else the key
    /// descending (newest first).
    pub(crate) fn order(&self, model: &ModelAdmin) -> (&'static str, bool) {
        self.sort.or(model.ordering).unwrap_or((model.key, true))
    }

    /// This query's string with `name` set to `value` (or removed when `None`); a new
    /// filter, search or order starts at page 1.
    pub(crate) fn with(&self, name: &str, value: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q", &self.q));
        }
        let sort = self.sort.map(|(c, desc)| if desc { format!("-{c}") } else { c.to_string() });
        if let Some(sort) = &sort {
            pairs.push(("sort", sort));
        }
        for (n, v) in &self.filters {
            pairs.push((n, v));
        }
        pairs.retain(|(n, _)| *n != name);
        if let Some(value) = value {
            pairs.push((name, value));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    /// The query string as it is (for export links).
    pub(crate) fn current(&self) -> String {
        self.with("", None)
    }

    /// The parameters a GET form must carry to keep the rest of the list's state: the
    /// search, the order and every filter, except the parameters `own` (the form's inputs).
    pub(crate) fn kept_by_form(&self, own: &[&str]) -> Vec<(String, String)> {
        let mut kept = Vec::new();
        if !self.q.is_empty() {
            kept.push(("q".to_string(), self.q.clone()));
        }
        if let Some((column, desc)) = self.sort {
            kept.push(("sort".to_string(), format!("{}{column}", if desc { "-" } else { "" })));
        }
        kept.extend(self.filters.iter().cloned());
        kept.retain(|(name, _)| !own.contains(&name.as_str()));
        kept
    }

    pub(crate) fn filter(&self, name: &str) -> Option<&str> {
        self.filters.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The condition and parameter of one filter parameter, if the model declares it and the
/// value is one it accepts.
fn filter_value(model: &ModelAdmin, name: &str, value: &str) -> Option<(String, Value)> {
    for filter in &model.filters {
        let column = quote(filter.column);
        match &filter.kind {
            FilterKind::Choices(choices) if name == filter.column => {
                return choices
                    .iter()
                    .any(|(v, _)| v == value)
                    .then(|| (format!("t.{column} = ?"), Value::from(value)));
            }
            FilterKind::Boolean if name == filter.column => {
                let value = match value {
                    "1" => 1,
                    "0" => 0,
                    _ => return None,
                };
                return Some((format!("t.{column} = ?"), Value::Integer(value)));
            }
            FilterKind::Relation if name == filter.column => {
                let id: i64 = value.parse().ok()?;
                return Some((format!("t.{column} = ?"), Value::Integer(id)));
            }
            FilterKind::DateRange(stored) => {
                let (from, to) =
                    (format!("{}__from", filter.column), format!("{}__to", filter.column));
                if name != from && name != to {
                    continue;
                }
                let day = parse_day(value)?;
                // `to` includes its day: below the start of the next one.
                let (op, day) = if name == from { (">=", day) } else { ("<", day.next_day()?) };
                let start = day.midnight().assume_utc();
                let bound = match stored {
                    // The text burrow stores instants as, so they compare in order.
                    Stored::Text => Value::Text(crate::db::utc_at(start)),
                    Stored::UnixMillis => {
                        Value::Integer((start.unix_timestamp_nanos() / 1_000_000) as i64)
                    }
                };
                return Some((format!("t.{column} {op} ?"), bound));
            }
            _ => {}
        }
    }
    None
}

/// `YYYY-MM-DD`, as a date input sends it.
pub(crate) fn parse_day(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// A name as a quoted SQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `FROM … WHERE …` of a list (its rows, count and export) and its parameters; a
/// search that cannot run (over the limits) is the message for the user.
pub(crate) struct Selection {
    pub(crate) from_where: String,
    pub(crate) params: Vec<Value>,
    pub(crate) search_error: Option<&'static str>,
}

impl Selection {
    pub(crate) fn of(model: &ModelAdmin, query: &ListQuery, engine: Engine) -> Selection {
        let mut conditions: Vec<String> = Vec::new();
        let mut params = Vec::new();
        let mut search_error = None;
        if !query.q.is_empty() {
            match &model.search_index {
                Some(index) => match SearchQuery::parse(&query.q) {
                    Ok(Some(search)) => {
                        let (condition, param) = index.condition(engine, &search, "t");
                        conditions.push(condition);
                        params.push(param);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        search_error = Some(e.0);
                        conditions.push("1 = 0".into());
                    }
                },
                None if !model.search.is_empty() => {
                    // Every word in one of the columns, case-insensitively, wildcards literal.
                    for word in query.q.split_whitespace().take(8) {
                        let pattern = format!("%{}%", escape_like(&word.to_lowercase()));
                        let any = model
                            .search
                            .iter()
                            .map(|c| format!("LOWER(t.{}) LIKE ? ESCAPE '\\'", quote(c)))
                            .collect::<Vec<_>>()
                            .join(" OR ");
                        conditions.push(format!("({any})"));
                        params.extend(model.search.iter().map(|_| Value::Text(pattern.clone())));
                    }
                }
                None => {}
            }
        }
        for (name, value) in &query.filters {
            if let Some((condition, param)) = filter_value(model, name, value) {
                conditions.push(condition);
                params.push(param);
            }
        }
        let mut from_where = format!("FROM {} t", quote(model.table));
        if !conditions.is_empty() {
            from_where.push_str(" WHERE ");
            from_where.push_str(&conditions.join(" AND "));
        }
        Selection { from_where, params, search_error }
    }

    /// The rows in the list's order, each with its relations' labels: every row (an
    /// export), or with `paged` one page (`LIMIT ? OFFSET ?`: two parameters after the
    /// selection's). A page is found over keys alone, then only its rows are read whole:
    /// sorting 100,000 whole rows to show 20 (and skipping 80,000 whole rows for a deep
    /// page) cost a sorter full of rows per request (bench/admin.sh).
    pub(crate) fn rows_sql(&self, model: &ModelAdmin, query: &ListQuery, paged: bool) -> String {
        let (column, desc) = query.order(model);
        let dir = if desc { "DESC" } else { "ASC" };
        let key = quote(model.key);
        let tie = if column == model.key { String::new() } else { format!(", t.{key} {dir}") };
        let order = format!("ORDER BY t.{} {dir}{tie}", quote(column));
        let (select, joins) = select_with_labels(model);
        let table = quote(model.table);
        if !paged {
            let from_where = self.from_where.replacen(
                &format!("FROM {table} t"),
                &format!("FROM {table} t{joins}"),
                1,
            );
            return format!("{select} {from_where} {order}");
        }
        let keys = format!("SELECT t.{key} AS __key {} {order} LIMIT ? OFFSET ?", self.from_where);
        format!("{select} FROM ({keys}) page JOIN {table} t ON t.{key} = page.__key{joins} {order}")
    }

    pub(crate) fn count_sql(&self) -> String {
        format!("SELECT COUNT(*) {}", self.from_where)
    }
}

/// `SELECT t.*` with each relation's label as `__label_{column}`, and the joins that
/// read the labels.
pub(crate) fn select_with_labels(model: &ModelAdmin) -> (String, String) {
    let mut select = String::from("SELECT t.*");
    let mut joins = String::new();
    for (i, relation) in model.relations.iter().enumerate() {
        select.push_str(&format!(
            ", r{i}.{} AS {}",
            quote(relation.label_column),
            quote(&format!("__label_{}", relation.column))
        ));
        joins.push_str(&format!(
            " LEFT JOIN {} r{i} ON r{i}.{} = t.{}",
            quote(relation.table),
            quote(relation.key),
            quote(relation.column)
        ));
    }
    (select, joins)
}

/// `%`, `_` and the escape character itself, taken literally by `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A sortable column's header link: the order it toggles to.
#[derive(Serialize)]
pub(crate) struct SortLink {
    pub(crate) href: String,
    /// `asc`/`desc` when the list is in this column's order.
    pub(crate) current: Option<&'static str>,
}

pub(crate) fn sort_link(model: &ModelAdmin, query: &ListQuery, column: &str) -> Option<SortLink> {
    let column = *model.sortable.iter().find(|c| **c == column)?;
    let (ordered_by, desc) = query.order(model);
    let current = (ordered_by == column).then_some(if desc { "desc" } else { "asc" });
    let next = if current == Some("asc") { format!("-{column}") } else { column.to_string() };
    Some(SortLink { href: format!("?{}", query.with("sort", Some(&next))), current })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Filter;

    fn model() -> ModelAdmin {
        ModelAdmin::new("notes")
            .sortable(&["title"])
            .search(&["title", "content"])
            .filter(Filter::choices("status", "Status", &[("open", "Open")]))
            .filter(Filter::boolean("done", "Done"))
            .filter(Filter::date_range("created_at", "Created"))
            .filter(Filter::date_range_millis("run_at", "Run at"))
    }

    #[test]
    fn only_declared_sorts_and_filters_reach_the_sql() {
        let model = model();
        let raw = "sort=-secret&status=closed&done=2&evil%22col=1&q=50%25_off&page=x\
                   &created_at__from=2026-12-01&created_at__to=2026-12-31&run_at__to=bad";
        let query = ListQuery::parse(&model, Some(raw));
        assert_eq!(query.sort, None);
        assert_eq!(query.page, 1);
        let names: Vec<&str> = query.filters.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["created_at__from", "created_at__to"]);
        let selection = Selection::of(&model, &query, Engine::Sqlite);
        assert_eq!(
            selection.from_where,
            "FROM \"notes\" t WHERE (LOWER(t.\"title\") LIKE ? ESCAPE '\\' OR \
             LOWER(t.\"content\") LIKE ? ESCAPE '\\') AND t.\"created_at\" >= ? AND \
             t.\"created_at\" < ?"
        );
        assert_eq!(
            selection.params,
            [
                Value::from("%50\\%\\_off%"),
                Value::from("%50\\%\\_off%"),
                Value::from("2026-12-01T00:00:00Z"),
                Value::from("2027-01-01T00:00:00Z"),
            ]
        );
        assert_eq!(
            selection.rows_sql(&model, &query, false),
            format!("SELECT t.* {} ORDER BY t.\"id\" DESC", selection.from_where)
        );
        assert_eq!(
            selection.rows_sql(&model, &query, true),
            format!(
                "SELECT t.* FROM (SELECT t.\"id\" AS __key {} ORDER BY t.\"id\" DESC LIMIT ? \
                 OFFSET ?) page JOIN \"notes\" t ON t.\"id\" = page.__key ORDER BY t.\"id\" DESC",
                selection.from_where
            )
        );
    }

    #[test]
    fn declared_ones_apply_and_links_keep_them() {
        let model = model();
        let query = ListQuery::parse(
            &model,
            Some("sort=-title&status=open&done=0&run_at__from=1970-01-02&page=3"),
        );
        assert_eq!(query.sort, Some(("title", true)));
        assert_eq!(query.page, 3);
        let selection = Selection::of(&model, &query, Engine::Postgres);
        assert_eq!(
            selection.params,
            [Value::from("open"), Value::Integer(0), Value::Integer(86_400_000)]
        );
        assert!(
            selection
                .rows_sql(&model, &query, false)
                .ends_with("ORDER BY t.\"title\" DESC, t.\"id\" DESC")
        );
        assert_eq!(
            query.with("page", Some("4")),
            "sort=-title&status=open&done=0&run_at__from=1970-01-02&page=4"
        );
        // A new order starts at page 1; the header link toggles the direction.
        let link = sort_link(&model, &query, "title").unwrap();
        assert_eq!(link.current, Some("desc"));
        assert_eq!(link.href, "?status=open&done=0&run_at__from=1970-01-02&sort=title");
        assert!(sort_link(&model, &query, "content").is_none());
        // A GET form keeps the rest: the search box all but `q`, a date range all but its own.
        let query =
            ListQuery::parse(&model, Some("q=x&sort=title&status=open&run_at__to=1970-01-02"));
        let kept = |own: &[&str]| -> Vec<String> {
            query.kept_by_form(own).into_iter().map(|(n, v)| format!("{n}={v}")).collect()
        };
        assert_eq!(kept(&["q"]), ["sort=title", "status=open", "run_at__to=1970-01-02"]);
        assert_eq!(kept(&["run_at__from", "run_at__to"]), ["q=x", "sort=title", "status=open"]);
    }
}
