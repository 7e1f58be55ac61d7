//! The admin's pages, one module per kind: the dashboard and lists (`list`), create and
//! edit (`edit`), delete, bulk and row actions (`actions`); what they share is here.

mod actions;
mod edit;
mod list;

pub(super) use actions::{bulk, delete, delete_page, row_action};
pub(super) use edit::{create, edit_page, new_page, update};
pub(super) use list::{dashboard, list};

use axum::http::Uri;
use minijinja::context;
use minijinja::value::Value as Jinja;
use serde::Serialize;

use super::Site;

use crate::admin::{Access, AdminRow, ModelAdmin, RELATED_CHOICES, Relation, Shown, value_text};
use crate::contrib::admin::query::{quote, select_with_labels};
use crate::contrib::auth::User;
use crate::db::{Conn, DbError, Value};
use crate::error::{Error, Result};

/// A serializable value for a template context.
fn ser(value: impl Serialize) -> Jinja {
    Jinja::from(minijinja::value::Serde(value))
}

/// Whether `user` has `access`.
fn can(user: &User, access: Access) -> bool {
    access.allows(user.is_staff(), user.is_admin())
}

fn require(user: &User, access: Access, what: &str) -> Result<()> {
    if can(user, access) { Ok(()) } else { Err(Error::forbidden(format!("You may not {what}."))) }
}

/// The sidebar: every app's models and links, the current one marked.
#[derive(Serialize)]
struct Group {
    app: &'static str,
    links: Vec<Link>,
}

#[derive(Serialize)]
struct Link {
    label: String,
    href: String,
    active: bool,
}

fn sidebar(site: &Site, current: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let models = site.0.models.iter().map(|m| {
        let href = format!("/admin/{}/", m.slug);
        (m.app, capitalized(&m.plural), href)
    });
    let links = site.0.links.iter().map(|l| (l.app, l.label.clone(), l.path.clone()));
    for (app, label, href) in models.chain(links) {
        let active = current.starts_with(&href);
        let link = Link { label, href, active };
        match groups.iter_mut().find(|g| g.app == app) {
            Some(group) => group.links.push(link),
            None => groups.push(Group { app, links: vec![link] }),
        }
    }
    groups
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What every admin page's context has: the sidebar and the model, if any.
fn page(site: &Site, uri: &Uri, model: Option<&ModelAdmin>, rest: Jinja) -> Jinja {
    let model = model.map(|m| {
        context! {
            slug => m.slug,
            singular => m.singular.clone(),
            plural => m.plural.clone(),
            title => capitalized(&m.plural),
        }
    });
    let base = context! { sidebar => ser(sidebar(site, uri.path())), model };
    context! { ..rest, ..base }
}

/// One cell of the list: text, or HTML a computed column made.
#[derive(Serialize)]
struct Cell {
    text: String,
    html: bool,
}

/// A row's cell for `column`: computed, or the field's text.
fn cell(model: &ModelAdmin, row: &AdminRow, column: &crate::admin::Column) -> Cell {
    match &column.computed {
        Some(computed) => Cell { text: (computed.f)(row), html: computed.html },
        None => Cell { text: field_text(model, row, column.name), html: false },
    }
}

/// A column's value as shown: a relation's label, a choice's label, or the value.
fn field_text(model: &ModelAdmin, row: &AdminRow, name: &str) -> String {
    let value = row.get(name).cloned().unwrap_or(Value::Null);
    if model.relation_of(name).is_some() {
        match (&value, row.get(&format!("__label_{name}"))) {
            (Value::Null, _) => String::new(),
            (_, Some(label)) if *label != Value::Null => value_text(label),
            _ => format!("#{}", value_text(&value)),
        }
    } else if let Some(choices) = model.choices_of(name) {
        let text = value_text(&value);
        choices.iter().find(|(v, _)| *v == text).map_or(text, |(_, l)| l.to_string())
    } else {
        match (model.shown_as(name), &value) {
            (Some(Shown::UnixMillis), Value::Integer(ms)) => millis_text(*ms),
            (Some(Shown::Json), Value::Text(text)) => {
                serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| text.clone())
            }
            _ => value_text(&value),
        }
    }
}

/// Unix milliseconds as `2026-12-03T10:00:00Z`.
fn millis_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or_else(|_| ms.to_string(), crate::db::utc_at)
}

fn column_label(model: &ModelAdmin, column: &crate::admin::Column) -> String {
    match &column.label {
        Some(label) => label.clone(),
        None => field_label(model, column.name),
    }
}

/// A column's label: its relation's, its form field's, or its name in words.
fn field_label(model: &ModelAdmin, name: &str) -> String {
    if let Some(relation) = model.relation_of(name) {
        return relation.label.to_string();
    }
    let fields = model.form.map_or(&[][..], |f| (f.fields)());
    match fields.iter().find(|f| f.name == name) {
        Some(field) => field.label.to_string(),
        None => capitalized(&name.replace('_', " ")),
    }
}

/// What names a row: its label column, else `#id`.
pub(in crate::contrib::admin) fn object_label(model: &ModelAdmin, row: &AdminRow) -> String {
    match model.label_column.map(|c| row.text(c)) {
        Some(label) if !label.is_empty() => label,
        _ => format!("#{}", row.id()),
    }
}

/// One row with the relations' labels, or 404.
pub(in crate::contrib::admin) fn fetch_row(
    c: &Conn,
    model: &ModelAdmin,
    id: i64,
) -> Result<AdminRow, DbError> {
    let (select, joins) = select_with_labels(model);
    let (table, key) = (quote(model.table), quote(model.key));
    let sql = format!("{select} FROM {table} t{joins} WHERE t.{key} = ?");
    c.query_one(&sql, &[Value::Integer(id)])
}

/// The rows a relation can point at, by label: `(key, label)`, the first
/// [`RELATED_CHOICES`].
pub(in crate::contrib::admin) fn related_rows(
    c: &Conn,
    relation: &Relation,
) -> Result<Vec<(i64, String)>, DbError> {
    let (key, label) = (quote(relation.key), quote(relation.label_column));
    let sql = format!(
        "SELECT {key}, {label} FROM {} ORDER BY {label}, {key} LIMIT {RELATED_CHOICES}",
        quote(relation.table)
    );
    let rows: Vec<(i64, Option<String>)> = c.query(&sql, &[])?;
    Ok(rows.into_iter().map(|(id, l)| (id, l.unwrap_or_else(|| format!("#{id}")))).collect())
}
