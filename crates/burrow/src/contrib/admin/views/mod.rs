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
use crate::i18n::Locale;

/// A serializable value for a template context.
fn ser(value: impl Serialize) -> Jinja {
    Jinja::from(minijinja::value::Serde(value))
}

/// Whether `user` has `access`.
fn can(user: &User, access: Access) -> bool {
    access.allows(user.is_staff(), user.is_admin())
}

/// `Ok` if `user` has `access`, else the 403 whose message is `refusal` (an
/// `admin-may-not-…` text).
fn require(user: &User, access: Access, refusal: impl FnOnce() -> String) -> Result<()> {
    if can(user, access) { Ok(()) } else { Err(Error::forbidden(refusal())) }
}

/// A model's names in the page's language (the app's English labels, translated as labels).
struct Names {
    singular: String,
    plural: String,
}

impl Names {
    fn of(model: &ModelAdmin, locale: &Locale) -> Names {
        Names {
            singular: locale.label(&model.singular).into_owned(),
            plural: locale.label(&model.plural).into_owned(),
        }
    }

    /// `key`'s text with the names as `{name}` and `{plural}`, and `args`.
    fn say(&self, locale: &Locale, key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        let mut all: Vec<(&str, &dyn std::fmt::Display)> =
            vec![("name", &self.singular), ("plural", &self.plural)];
        all.extend_from_slice(args);
        locale.t_args(key, &all)
    }
}

/// The sidebar: every app's models and links, the current one marked.
#[derive(Serialize)]
struct Group {
    app: &'static str,
    title: String,
    links: Vec<Link>,
}

#[derive(Serialize)]
struct Link {
    label: String,
    href: String,
    active: bool,
}

fn sidebar(site: &Site, current: &str, locale: &Locale) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let models = site.0.models.iter().map(|m| {
        let href = format!("/admin/{}/", m.slug);
        (m.app, capitalized(&locale.label(&m.plural)), href)
    });
    let links =
        site.0.links.iter().map(|l| (l.app, locale.label(&l.label).into_owned(), l.path.clone()));
    for (app, label, href) in models.chain(links) {
        let active = current.starts_with(&href);
        let link = Link { label, href, active };
        match groups.iter_mut().find(|g| g.app == app) {
            Some(group) => group.links.push(link),
            None => {
                let title = locale.label(&capitalized(app)).into_owned();
                groups.push(Group { app, title, links: vec![link] })
            }
        }
    }
    groups
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What every admin page's context has: the sidebar and the model, if any.
fn page(site: &Site, uri: &Uri, locale: &Locale, model: Option<&ModelAdmin>, rest: Jinja) -> Jinja {
    let model = model.map(|m| {
        let names = Names::of(m, locale);
        context! {
            slug => m.slug,
            title => capitalized(&names.plural),
            singular => names.singular,
            plural => names.plural,
        }
    });
    let base = context! { sidebar => ser(sidebar(site, uri.path(), locale)), model };
    context! { ..rest, ..base }
}

/// One cell of the list: text, or HTML a computed column made.
#[derive(Serialize)]
struct Cell {
    text: String,
    html: bool,
}

/// A row's cell for `column`: computed, or the field's text.
fn cell(
    model: &ModelAdmin,
    row: &AdminRow,
    column: &crate::admin::Column,
    locale: &Locale,
) -> Cell {
    match &column.computed {
        Some(computed) => Cell { text: (computed.f)(row), html: computed.html },
        None => Cell { text: field_text(model, row, column.name, locale), html: false },
    }
}

/// A column's value as shown: a relation's label, a choice's label (translated), or the
/// value.
fn field_text(model: &ModelAdmin, row: &AdminRow, name: &str, locale: &Locale) -> String {
    let value = row.get(name).cloned().unwrap_or(Value::Null);
    if model.relation_of(name).is_some() {
        match (&value, row.get(&format!("__label_{name}"))) {
            (Value::Null, _) => String::new(),
            (_, Some(label)) if *label != Value::Null => value_text(label),
            _ => format!("#{}", value_text(&value)),
        }
    } else if let Some(choices) = model.choices_of(name) {
        let text = value_text(&value);
        choices.iter().find(|(v, _)| *v == text).map_or(text, |(_, l)| locale.label(l).into_owned())
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

fn column_label(model: &ModelAdmin, column: &crate::admin::Column, locale: &Locale) -> String {
    match &column.label {
        Some(label) => locale.label(label).into_owned(),
        None => field_label(model, column.name, locale),
    }
}

/// A column's label, translated: its relation's, its form field's, or its name in words.
fn field_label(model: &ModelAdmin, name: &str, locale: &Locale) -> String {
    let english = match model.relation_of(name) {
        Some(relation) => relation.label.to_string(),
        None => {
            let fields = model.form.map_or(&[][..], |f| (f.fields)());
            match fields.iter().find(|f| f.name == name) {
                Some(field) => field.label.to_string(),
                None => capitalized(&name.replace('_', " ")),
            }
        }
    };
    locale.label(&english).into_owned()
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
