//! The admin's pages: dashboard, list, create, edit, delete, bulk and row actions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Value as Jinja;
use serde::Serialize;

use super::Site;
use super::log::{self, Record};
use super::query::{ListQuery, Selection, sort_link};
use crate::admin::{Access, AdminRow, Change, FilterKind, ModelAdmin, Shown, value_text};
use crate::contrib::auth::{RequireStaff, User};
use crate::contrib::messages::Messages;
use crate::db::schema::{self, DeleteEffect};
use crate::db::{Conn, Db, DbError, Value};
use crate::error::{Error, Result};
use crate::extract::Path;
use crate::forms::{BoundForm, Errors, FormData};
use crate::template::{Html, Render};

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

pub(super) async fn dashboard(
    State(site): State<Site>,
    RequireStaff(_user): RequireStaff,
    uri: Uri,
    render: Render,
) -> Result<Html> {
    #[derive(Serialize)]
    struct Count {
        app: &'static str,
        title: String,
        href: String,
        count: i64,
    }
    let mut counts = Vec::new();
    for model in &site.0.models {
        let sql = format!("SELECT COUNT(*) FROM {}", super::query::quote(model.table));
        let count: i64 = site.db(model).read(move |c| c.query_one(&sql, &[])).await?;
        let (app, title) = (model.app, capitalized(&model.plural));
        counts.push(Count { app, title, href: format!("/admin/{}/", model.slug), count });
    }
    let recent = site.main_db().read(|c| log::recent(c, 15)).await?;
    let ctx = context! { counts => ser(counts), recent => ser(recent) };
    render.page("admin/dashboard.html", page(&site, &uri, None, ctx))
}

/// One cell of the list.
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
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    let at = at.map(|t| t.replace_millisecond(0).unwrap_or(t));
    at.ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
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
        return relation.label.clone();
    }
    let fields = model.form.map_or(&[][..], |f| (f.fields)());
    match fields.iter().find(|f| f.name == name) {
        Some(field) => field.label.to_string(),
        None => capitalized(&name.replace('_', " ")),
    }
}

/// What names a row: its label column, else `#id`.
pub(super) fn object_label(model: &ModelAdmin, row: &AdminRow) -> String {
    match model.label_column.map(|c| row.text(c)) {
        Some(label) if !label.is_empty() => label,
        _ => format!("#{}", row.id()),
    }
}

/// The columns of the list: the declared ones, else the key and the label column.
fn list_columns(model: &ModelAdmin) -> Vec<crate::admin::Column> {
    if !model.columns.is_empty() {
        return model.columns.clone();
    }
    let mut columns = vec![crate::admin::Column::field(model.key)];
    columns.extend(model.label_column.map(crate::admin::Column::field));
    columns
}

/// The filters as the sidebar of the list shows them: each option a link.
#[derive(Serialize)]
struct FilterView {
    label: String,
    /// `choices`, or `dates` (a small form with two date inputs).
    kind: &'static str,
    options: Vec<Link>,
    from_name: String,
    to_name: String,
    from: String,
    to: String,
}

fn filter_views(model: &ModelAdmin, query: &ListQuery, related: &[Related]) -> Vec<FilterView> {
    model
        .filters
        .iter()
        .map(|filter| {
            let column = filter.column;
            let label = filter.label.clone().unwrap_or_else(|| {
                model
                    .relation_of(column)
                    .map_or_else(|| capitalized(&column.replace('_', " ")), |r| r.label.clone())
            });
            let options_of = |choices: Vec<(String, String)>| {
                let current = query.filter(column);
                let mut links = vec![Link {
                    label: "All".into(),
                    href: format!("?{}", query.with(column, None)),
                    active: current.is_none(),
                }];
                links.extend(choices.into_iter().map(|(value, label)| Link {
                    href: format!("?{}", query.with(column, Some(&value))),
                    active: current == Some(value.as_str()),
                    label,
                }));
                links
            };
            let (kind, options) = match &filter.kind {
                FilterKind::Choices(choices) => ("choices", options_of(choices.clone())),
                FilterKind::Boolean => (
                    "choices",
                    options_of(vec![("1".into(), "Yes".into()), ("0".into(), "No".into())]),
                ),
                FilterKind::Relation => {
                    let rows = related.iter().find(|(c, _)| c == column).map(|(_, r)| r.clone());
                    let choices = rows.unwrap_or_default().into_iter();
                    ("choices", options_of(choices.map(|(id, l)| (id.to_string(), l)).collect()))
                }
                FilterKind::DateRange(_) => ("dates", Vec::new()),
            };
            let (from_name, to_name) = (format!("{column}__from"), format!("{column}__to"));
            FilterView {
                label,
                kind,
                options,
                from: query.filter(&from_name).unwrap_or_default().to_string(),
                to: query.filter(&to_name).unwrap_or_default().to_string(),
                from_name,
                to_name,
            }
        })
        .collect()
}

/// How many related rows a relation filter lists at most.
const RELATED_CHOICES: usize = 100;

pub(super) async fn list(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    render: Render,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let query = ListQuery::parse(&model, uri.query());
    let read_model = model.clone();
    let read_query = query.clone();
    let (rows, total, related, search_error) = db
        .read(move |c| {
            let (model, query) = (&read_model, &read_query);
            let selection = Selection::of(model, query, c.engine());
            let total: i64 = c.query_one(&selection.count_sql(), &selection.params)?;
            let sql = format!("{} LIMIT ? OFFSET ?", selection.rows_sql(model, query));
            let mut params = selection.params.clone();
            params.push(Value::from(model.page_size));
            params.push(Value::from((query.page - 1) * model.page_size));
            let rows: Vec<AdminRow> = c.query(&sql, &params)?;
            let related = related_choices(c, model)?;
            Ok((rows, total, related, selection.search_error))
        })
        .await?;
    let pages = (total as usize).div_ceil(model.page_size).max(1);
    let columns = list_columns(&model);
    let headers: Vec<Jinja> = columns
        .iter()
        .map(|column| {
            context! {
                label => column_label(&model, column),
                sort => ser(sort_link(&model, &query, column.name)),
            }
        })
        .collect();
    let rows: Vec<Jinja> = rows
        .iter()
        .map(|row| {
            let cells: Vec<Cell> = columns.iter().map(|c| cell(&model, row, c)).collect();
            context! { id => row.id(), href => format!("/admin/{}/{}", model.slug, row.id()), cells => ser(cells) }
        })
        .collect();
    let page_link = |n: usize| format!("?{}", query.with("page", Some(&n.to_string())));
    let actions: Vec<Jinja> = bulk_actions(&model, &user)
        .into_iter()
        .map(|(name, label)| context! { name, label })
        .collect();
    let export = query.current();
    let ctx = context! {
        rows,
        headers,
        total,
        q => query.q.clone(),
        search => !model.search.is_empty() || model.search_index.is_some(),
        search_error,
        filters => ser(filter_views(&model, &query, &related)),
        page => query.page,
        pages,
        previous => (query.page > 1).then(|| page_link(query.page - 1)),
        next => (query.page < pages).then(|| page_link(query.page + 1)),
        actions,
        can_create => model.form.is_some() && can(&user, model.permissions.create),
        can_export => can(&user, model.permissions.export),
        export_csv => format!("/admin/{}/export.csv{}{}", model.slug, if export.is_empty() { "" } else { "?" }, export),
        export_json => format!("/admin/{}/export.json{}{}", model.slug, if export.is_empty() { "" } else { "?" }, export),
    };
    Ok(render.page("admin/list.html", page(&site, &uri, Some(&model), ctx))?.into_response())
}

/// A relation filter's column and its choices: the related rows' ids and labels.
type Related = (String, Vec<(i64, String)>);

/// Each relation filter's choices: the related table's rows by label.
fn related_choices(c: &Conn, model: &ModelAdmin) -> Result<Vec<Related>, DbError> {
    let mut out = Vec::new();
    for filter in &model.filters {
        let Some(relation) = model.relation_of(filter.column) else { continue };
        if !matches!(filter.kind, FilterKind::Relation) {
            continue;
        }
        let (key, label) =
            (super::query::quote(relation.key), super::query::quote(relation.label_column));
        let sql = format!(
            "SELECT {key}, {label} FROM {} ORDER BY {label} LIMIT {RELATED_CHOICES}",
            super::query::quote(relation.table)
        );
        let rows: Vec<(i64, Option<String>)> = c.query(&sql, &[])?;
        let rows = rows.into_iter().map(|(id, l)| (id, l.unwrap_or_else(|| format!("#{id}"))));
        out.push((filter.column.to_string(), rows.collect()));
    }
    Ok(out)
}

/// The bulk actions `user` may run: delete (if allowed) and the model's own.
fn bulk_actions(model: &ModelAdmin, user: &User) -> Vec<(String, String)> {
    let mut actions = Vec::new();
    if can(user, model.permissions.delete) {
        actions.push(("delete".to_string(), format!("Delete selected {}", model.plural)));
    }
    for action in &model.actions {
        if can(user, action.access) {
            actions.push((action.name.to_string(), action.label.clone()));
        }
    }
    actions
}

/// One row with the relations' labels, or 404.
pub(super) fn fetch_row(c: &Conn, model: &ModelAdmin, id: i64) -> Result<AdminRow, DbError> {
    let query = ListQuery::default();
    let selection = Selection::of(model, &query, c.engine());
    let sql = selection.rows_sql(model, &query);
    // `SELECT … FROM t JOIN … ORDER BY …` without conditions: the key's goes before the order.
    let head = sql.split_once(" ORDER BY ").map_or(sql.as_str(), |(head, _)| head);
    let sql = format!("{head} WHERE t.{} = ?", super::query::quote(model.key));
    c.query_one(&sql, &[Value::Integer(id)])
}

/// A fingerprint of the row as stored: the edit form carries it, and a save whose row no
/// longer has it was overtaken by another change.
fn version(row: &AdminRow) -> String {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    for (name, value) in row.columns.iter().zip(&row.values) {
        if name.starts_with("__label_") {
            continue;
        }
        let text = match value {
            Value::Null => "n".to_string(),
            Value::Integer(n) => format!("i{n}"),
            Value::Real(x) => format!("r{x}"),
            Value::Text(t) => format!("t{t}"),
            Value::Blob(b) => {
                format!("b{}", b.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        hash.update(format!("{}:{name}={}:{text};", name.len(), text.len()).as_bytes());
    }
    hash.finish().as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The form's fields filled from a row.
fn form_of_row(model: &ModelAdmin, row: &AdminRow) -> Option<BoundForm> {
    let spec = model.form?;
    let fields = (spec.fields)();
    Some(BoundForm::build(
        fields,
        |i| {
            let field = &fields[i];
            match (field.input, row.get(field.name)) {
                (crate::forms::InputType::Checkbox, Some(Value::Integer(n))) => {
                    if *n != 0 {
                        "on".into()
                    } else {
                        String::new()
                    }
                }
                (_, Some(value)) => value_text(value),
                (_, None) => String::new(),
            }
        },
        &Errors::new(),
    ))
}

/// Read-only fields of a row page: the declared ones (every column when nothing can be
/// edited), with relation and choice labels.
fn readonly_view(model: &ModelAdmin, row: &AdminRow) -> Vec<Jinja> {
    let editable: Vec<&str> =
        model.form.map_or(Vec::new(), |f| (f.fields)().iter().map(|f| f.name).collect());
    let shown: Vec<&str> = if model.form.is_some() {
        model.readonly.clone()
    } else {
        row.columns.iter().map(String::as_str).filter(|c| !c.starts_with("__label_")).collect()
    };
    shown
        .into_iter()
        .filter(|name| !editable.contains(name))
        .map(|name| {
            let text = field_text(model, row, name);
            let long = text.len() > 80 || text.contains('\n');
            context! { label => field_label(model, name), text, long }
        })
        .collect()
}

pub(super) async fn new_page(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    render: Render,
) -> Result<Html> {
    let model = site.model(&slug)?;
    let spec = model.form.ok_or_else(Error::not_found)?;
    require(&user, model.permissions.create, &format!("create {}", model.plural))?;
    let form = BoundForm::build((spec.fields)(), |_| String::new(), &Errors::new());
    let ctx = context! { form, creating => true, action => format!("/admin/{}/new", model.slug) };
    render.page("admin/form.html", page(&site, &uri, Some(model), ctx))
}

/// A change refused by the model's own check, a constraint, or a conflict: the form again
/// with the message.
fn refused(
    site: &Site,
    uri: &Uri,
    model: &ModelAdmin,
    render: &Render,
    status: StatusCode,
    form: BoundForm,
    extra: Jinja,
) -> Result<Response> {
    let ctx = page(site, uri, Some(model), context! { form, ..extra });
    Ok((status, render.page("admin/form.html", ctx)?).into_response())
}

/// The submitted values by column, or the form with its errors.
fn read_submission(
    model: &ModelAdmin,
    data: &FormData,
) -> Result<Vec<(&'static str, Value)>, BoundForm> {
    let spec = model.form.expect("only models with a form take submissions");
    let fields = (spec.fields)();
    match (spec.read)(data) {
        Ok(values) => Ok(fields.iter().map(|f| f.name).zip(values).collect()),
        Err(errors) => Err(submitted(fields, data, &errors)),
    }
}

fn submitted(
    fields: &'static [crate::forms::Field],
    data: &FormData,
    errors: &Errors,
) -> BoundForm {
    BoundForm::build(fields, |i| data.get(fields[i].name).unwrap_or_default().to_string(), errors)
}

/// What the database says about a refused change, for the user: a constraint names no
/// secret, anything else is the server's error.
fn constraint_message(e: &DbError) -> Option<String> {
    match e {
        DbError::Constraint { .. } => Some(format!("The database refused this change: {e}.")),
        _ => None,
    }
}

pub(super) async fn create(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    uri: Uri,
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    model.form.ok_or_else(Error::not_found)?;
    require(&user, model.permissions.create, &format!("create {}", model.plural))?;
    let action = format!("/admin/{}/new", model.slug);
    let values = match read_submission(&model, &data) {
        Ok(values) => values,
        Err(form) => {
            let extra = context! { creating => true, action };
            return refused(
                &site,
                &uri,
                &model,
                &render,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                extra,
            );
        }
    };
    let mut values = values;
    if let Some(column) = model.created_by
        && !values.iter().any(|(n, _)| *n == column)
    {
        values.push((column, Value::Integer(user.id)));
    }
    if let Some(create_with) = &model.create_with {
        return match create_with(site.1.clone(), user.id, values).await {
            Ok((id, message)) => {
                let read_model = model.clone();
                let label = site
                    .db(&model)
                    .read(move |c| fetch_row(c, &read_model, id))
                    .await
                    .map_or_else(|_| format!("#{id}"), |row| object_label(&model, &row));
                // Made by the app's own function, in its own transaction: logged after it.
                let sink = log::Sink::new(user.clone(), Some(site.main_db().clone()));
                sink.keep(Record {
                    model: model.slug,
                    object_id: Some(id),
                    object_label: &label,
                    action: "created",
                    detail: "",
                });
                sink.flush().await?;
                messages.success(message)?;
                Ok(after_save(&model, id, &data))
            }
            Err(e) if !e.status().is_server_error() => {
                let mut form =
                    submitted((model.form.expect("checked").fields)(), &data, &Errors::new());
                form.add_error(e.message().to_string());
                let extra = context! { creating => true, action };
                refused(&site, &uri, &model, &render, StatusCode::UNPROCESSABLE_ENTITY, form, extra)
            }
            Err(e) => Err(e),
        };
    }
    let write_model = model.clone();
    let sink = site.log(&model, &user);
    let write_sink = sink.clone();
    let outcome = db
        .write(move |c| {
            let model = &write_model;
            if let Some(validate) = &model.before_change
                && let Err(message) = validate(c, Change::Create(&values))?
            {
                return Ok(Err(message));
            }
            let columns = values.iter().map(|(n, _)| super::query::quote(n)).collect::<Vec<_>>();
            let marks = vec!["?"; values.len()].join(", ");
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({marks}) RETURNING {}",
                super::query::quote(model.table),
                columns.join(", "),
                super::query::quote(model.key)
            );
            let params: Vec<Value> = values.iter().map(|(_, v)| v.clone()).collect();
            let id: i64 = c.query_one(&sql, &params)?;
            let row = fetch_row(c, model, id)?;
            let label = object_label(model, &row);
            for hook in &model.after_change {
                hook(c, Change::Create(&values))?;
            }
            let record = Record {
                model: model.slug,
                object_id: Some(id),
                object_label: &label,
                action: "created",
                detail: "",
            };
            write_sink.write(c, record)?;
            Ok(Ok((id, label)))
        })
        .await;
    let (id, label) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(message)) => {
            let mut form =
                submitted((model.form.expect("checked").fields)(), &data, &Errors::new());
            form.add_error(message);
            let extra = context! { creating => true, action };
            return refused(
                &site,
                &uri,
                &model,
                &render,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                extra,
            );
        }
        Err(e) => match constraint_message(&e) {
            Some(message) => {
                let mut form =
                    submitted((model.form.expect("checked").fields)(), &data, &Errors::new());
                form.add_error(message);
                let extra = context! { creating => true, action };
                return refused(
                    &site,
                    &uri,
                    &model,
                    &render,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form,
                    extra,
                );
            }
            None => return Err(e.into()),
        },
    };
    sink.flush().await?;
    messages.success(format!("Created {} “{label}”.", model.singular))?;
    Ok(after_save(&model, id, &data))
}

/// Where a save goes: the object again ("save and continue"), a blank form ("save and add
/// another") or the list.
fn after_save(model: &ModelAdmin, id: i64, data: &FormData) -> Response {
    let to = if data.get("_continue").is_some() {
        format!("/admin/{}/{id}", model.slug)
    } else if data.get("_addanother").is_some() {
        format!("/admin/{}/new", model.slug)
    } else {
        format!("/admin/{}/", model.slug)
    };
    Redirect::to(&to).into_response()
}

pub(super) async fn edit_page(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    render: Render,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let read_model = model.clone();
    let row = db.read(move |c| fetch_row(c, &read_model, id)).await?;
    let history = reread_history(&site, &model, id).await?;
    let form = form_of_row(&model, &row);
    let ctx = row_context(&model, &user, &row, history);
    let ctx = context! { form, ..ctx };
    Ok(render.page("admin/form.html", page(&site, &uri, Some(&model), ctx))?.into_response())
}

/// What a row's page shows besides the form.
fn row_context(model: &ModelAdmin, user: &User, row: &AdminRow, history: Vec<log::Entry>) -> Jinja {
    let actions: Vec<Jinja> = model
        .actions
        .iter()
        .filter(|a| a.row && can(user, a.access))
        .map(|a| context! { label => a.label.clone(), href => format!("/admin/{}/{}/actions/{}", model.slug, row.id(), a.name) })
        .collect();
    context! {
        id => row.id(),
        label => object_label(model, row),
        version => version(row),
        readonly => readonly_view(model, row),
        history => ser(history),
        actions,
        can_edit => model.form.is_some() && can(user, model.permissions.edit),
        can_delete => can(user, model.permissions.delete),
        action => format!("/admin/{}/{}", model.slug, row.id()),
    }
}

pub(super) async fn update(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    uri: Uri,
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    model.form.ok_or_else(Error::not_found)?;
    require(&user, model.permissions.edit, &format!("edit {}", model.plural))?;
    let submission = read_submission(&model, &data);
    let seen = data.get("_version").unwrap_or_default().to_string();
    let write_model = model.clone();
    let sink = site.log(&model, &user);
    let write_sink = sink.clone();
    let values = submission.as_ref().ok().cloned();
    /// How a save ended, besides a database error.
    enum Saved {
        Done(String),
        Invalid(Option<String>),
        Conflict,
    }
    let (saved, row) = db
        .write(move |c| {
            let model = &write_model;
            let row = fetch_row(c, model, id)?;
            if version(&row) != seen {
                return Ok((Saved::Conflict, row));
            }
            let Some(values) = values else { return Ok((Saved::Invalid(None), row)) };
            if let Some(validate) = &model.before_change
                && let Err(message) = validate(c, Change::Edit(id, &values))?
            {
                return Ok((Saved::Invalid(Some(message)), row));
            }
            let changed: Vec<&(&'static str, Value)> =
                values.iter().filter(|(name, value)| row.get(name) != Some(value)).collect();
            if !changed.is_empty() {
                let sets = changed
                    .iter()
                    .map(|(n, _)| format!("{} = ?", super::query::quote(n)))
                    .collect::<Vec<_>>();
                let sql = format!(
                    "UPDATE {} SET {} WHERE {} = ?",
                    super::query::quote(model.table),
                    sets.join(", "),
                    super::query::quote(model.key)
                );
                let mut params: Vec<Value> = changed.iter().map(|(_, v)| v.clone()).collect();
                params.push(Value::Integer(id));
                c.execute(&sql, &params)?;
                for hook in &model.after_change {
                    hook(c, Change::Edit(id, &values))?;
                }
            }
            let row = fetch_row(c, model, id)?;
            let label = object_label(model, &row);
            let names: Vec<&str> = changed.iter().map(|(n, _)| *n).collect();
            let detail = if names.is_empty() {
                "No fields changed.".to_string()
            } else {
                format!("Changed {}.", names.join(", "))
            };
            let record = Record {
                model: model.slug,
                object_id: Some(id),
                object_label: &label,
                action: "changed",
                detail: &detail,
            };
            if !names.is_empty() {
                write_sink.write(c, record)?;
            }
            Ok((Saved::Done(label), row))
        })
        .await
        .or_else(|e| match constraint_message(&e) {
            Some(message) => Ok((Saved::Invalid(Some(message)), AdminRow::default())),
            None => Err(e),
        })?;
    let fields = (model.form.expect("checked").fields)();
    match saved {
        Saved::Done(label) => {
            sink.flush().await?;
            messages.success(format!("Saved {} “{label}”.", model.singular))?;
            Ok(after_save(&model, id, &data))
        }
        Saved::Invalid(message) => {
            let mut form = match submission {
                Err(form) => form,
                Ok(_) => submitted(fields, &data, &Errors::new()),
            };
            if let Some(message) = message {
                form.add_error(message);
            }
            let row = if row.values.is_empty() { reread(&db, &model, id).await? } else { row };
            let history = reread_history(&site, &model, id).await?;
            let ctx = row_context(&model, &user, &row, history);
            refused(&site, &uri, &model, &render, StatusCode::UNPROCESSABLE_ENTITY, form, ctx)
        }
        Saved::Conflict => {
            // The user's values stay in the form, with the new version: saving again
            // overwrites knowingly.
            let mut form = match submission {
                Err(form) => form,
                Ok(_) => submitted(fields, &data, &Errors::new()),
            };
            form.add_error(format!(
                "This {} was changed by someone else after you opened it; your changes were not \
                 saved. Check the current values (open it again to see them) or save again to \
                 overwrite them with yours.",
                model.singular
            ));
            let history = reread_history(&site, &model, id).await?;
            let ctx = row_context(&model, &user, &row, history);
            let ctx = context! { conflict => true, ..ctx };
            refused(&site, &uri, &model, &render, StatusCode::CONFLICT, form, ctx)
        }
    }
}

async fn reread(db: &Db, model: &ModelAdmin, id: i64) -> Result<AdminRow> {
    let model = model.clone();
    Ok(db.read(move |c| fetch_row(c, &model, id)).await?)
}

/// An object's history, from the server's database.
async fn reread_history(site: &Site, model: &ModelAdmin, id: i64) -> Result<Vec<log::Entry>> {
    let slug = model.slug;
    Ok(site.main_db().read(move |c| log::of_object(c, slug, id)).await?)
}

/// A row's id and label.
type Labelled = (i64, String);

/// The rows to delete, with their labels, and what goes with them.
fn deletion(
    c: &Conn,
    model: &ModelAdmin,
    ids: &[i64],
) -> Result<(Vec<Labelled>, Vec<DeleteEffect>), DbError> {
    let mut objects = Vec::new();
    for id in ids {
        match fetch_row(c, model, *id) {
            Ok(row) => objects.push((*id, object_label(model, &row))),
            Err(DbError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    let found: Vec<Value> = objects.iter().map(|(id, _)| Value::Integer(*id)).collect();
    let effects = schema::delete_effects(c, model.table, model.key, &found)?;
    Ok((objects, effects))
}

fn effects_view(effects: &[DeleteEffect]) -> Vec<Jinja> {
    effects
        .iter()
        .map(|e| {
            let what = match e.on_delete {
                schema::OnDelete::Cascade => "deleted with it",
                schema::OnDelete::SetNull => "kept, their reference emptied",
                schema::OnDelete::SetDefault => "kept, their reference reset",
                schema::OnDelete::Restrict | schema::OnDelete::NoAction => "in the way: the delete will be refused",
            };
            let blocks = matches!(e.on_delete, schema::OnDelete::Restrict | schema::OnDelete::NoAction);
            context! { table => e.table.clone(), via => e.via.clone(), count => e.count, what, blocks, depth => e.depth }
        })
        .collect()
}

pub(super) async fn delete_page(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    render: Render,
) -> Result<Html> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    require(&user, model.permissions.delete, &format!("delete {}", model.plural))?;
    let read_model = model.clone();
    let (objects, effects) = db.read(move |c| deletion(c, &read_model, &[id])).await?;
    if objects.is_empty() {
        return Err(Error::not_found());
    }
    let ctx =
        confirm_context(&model, "delete", &format!("Delete {}", model.singular), objects, &effects);
    let ctx = context! { post_to => format!("/admin/{}/{id}/delete", model.slug), ..ctx };
    render.page("admin/confirm.html", page(&site, &uri, Some(&model), ctx))
}

fn confirm_context(
    model: &ModelAdmin,
    action: &str,
    label: &str,
    objects: Vec<(i64, String)>,
    effects: &[DeleteEffect],
) -> Jinja {
    let blocked = effects
        .iter()
        .any(|e| matches!(e.on_delete, schema::OnDelete::Restrict | schema::OnDelete::NoAction));
    let objects: Vec<Jinja> = objects
        .into_iter()
        .map(|(id, label)| context! { id, label, href => format!("/admin/{}/{id}", model.slug) })
        .collect();
    context! {
        action,
        action_label => label,
        objects,
        effects => effects_view(effects),
        blocked,
        post_to => format!("/admin/{}/bulk", model.slug),
        cancel => format!("/admin/{}/", model.slug),
    }
}

/// Deletes `ids` in one transaction (the model's check first), with a log entry each.
fn delete_rows(
    c: &Conn,
    model: &ModelAdmin,
    sink: &log::Sink,
    ids: &[i64],
) -> Result<Result<usize, String>, DbError> {
    if let Some(validate) = &model.before_change
        && let Err(message) = validate(c, Change::Delete(ids))?
    {
        return Ok(Err(message));
    }
    let mut deleted = 0;
    for id in ids {
        let row = match fetch_row(c, model, *id) {
            Ok(row) => row,
            Err(DbError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let label = object_label(model, &row);
        let sql = format!(
            "DELETE FROM {} WHERE {} = ?",
            super::query::quote(model.table),
            super::query::quote(model.key)
        );
        deleted += c.execute(&sql, &[Value::Integer(*id)])?;
        let record = Record {
            model: model.slug,
            object_id: Some(*id),
            object_label: &label,
            action: "deleted",
            detail: "",
        };
        sink.write(c, record)?;
    }
    for hook in &model.after_change {
        hook(c, Change::Delete(ids))?;
    }
    Ok(Ok(deleted))
}

pub(super) async fn delete(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    require(&user, model.permissions.delete, &format!("delete {}", model.plural))?;
    let write_model = model.clone();
    let sink = site.log(&model, &user);
    let write_sink = sink.clone();
    let outcome = db.write(move |c| delete_rows(c, &write_model, &write_sink, &[id])).await;
    finish_delete(&model, outcome, &sink, &messages, &format!("/admin/{}/{id}", model.slug)).await
}

/// Tells what a delete did; a refused one (the model's check, or rows that keep it from
/// happening) leaves everything as it was.
async fn finish_delete(
    model: &ModelAdmin,
    outcome: Result<Result<usize, String>, DbError>,
    sink: &log::Sink,
    messages: &Messages,
    back: &str,
) -> Result<Response> {
    match outcome {
        Ok(Ok(0)) => Err(Error::not_found()),
        Ok(Ok(n)) => {
            sink.flush().await?;
            let what =
                if n == 1 { model.singular.clone() } else { format!("{n} {}", model.plural) };
            messages.success(format!("Deleted {what}."))?;
            Ok(Redirect::to(&format!("/admin/{}/", model.slug)).into_response())
        }
        Ok(Err(message)) => {
            messages.error(message)?;
            Ok(Redirect::to(back).into_response())
        }
        Err(e @ DbError::Constraint { .. }) => {
            messages.error(format!("Nothing was deleted: other rows still refer to it ({e})."))?;
            Ok(Redirect::to(back).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Selected ids of a bulk form (unparseable ones are dropped), at most a page's worth
/// times ten.
fn selected_ids(data: &FormData) -> Vec<i64> {
    let mut ids: Vec<i64> =
        data.get_all("ids").filter_map(|id| id.parse().ok()).take(1000).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

pub(super) async fn bulk(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    uri: Uri,
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let list = format!("/admin/{}/", model.slug);
    let ids = selected_ids(&data);
    let name = data.get("action").unwrap_or_default().to_string();
    if ids.is_empty() {
        messages.warning("Select at least one row first.")?;
        return Ok(Redirect::to(&list).into_response());
    }
    let confirmed = data.get("confirmed").is_some();
    if name == "delete" {
        require(&user, model.permissions.delete, &format!("delete {}", model.plural))?;
        if !confirmed {
            let read_model = model.clone();
            let (objects, effects) = db.read(move |c| deletion(c, &read_model, &ids)).await?;
            let label = format!("Delete {} {}", objects.len(), model.plural);
            let ctx = confirm_context(&model, "delete", &label, objects, &effects);
            return Ok(render
                .page("admin/confirm.html", page(&site, &uri, Some(&model), ctx))?
                .into_response());
        }
        let write_model = model.clone();
        let sink = site.log(&model, &user);
        let write_sink = sink.clone();
        let outcome = db.write(move |c| delete_rows(c, &write_model, &write_sink, &ids)).await;
        return finish_delete(&model, outcome, &sink, &messages, &list).await;
    }
    let action = model
        .actions
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| Error::bad_request("No such action."))?;
    require(&user, action.access, &format!("run “{}”", action.label))?;
    if action.confirm && !confirmed {
        let read_model = model.clone();
        let objects = db
            .read(move |c| {
                let mut objects = Vec::new();
                for id in ids {
                    if let Ok(row) = fetch_row(c, &read_model, id) {
                        objects.push((id, object_label(&read_model, &row)));
                    }
                }
                Ok(objects)
            })
            .await?;
        let ctx = confirm_context(&model, action.name, &action.label, objects, &[]);
        return Ok(render
            .page("admin/confirm.html", page(&site, &uri, Some(&model), ctx))?
            .into_response());
    }
    let message = run_action(&site, &model, action, &user, ids).await?;
    messages.success(message)?;
    Ok(Redirect::to(&list).into_response())
}

/// Runs an action over `ids` in one write transaction, logging it for each row.
async fn run_action(
    site: &Site,
    model: &ModelAdmin,
    action: &crate::admin::Action,
    user: &Arc<User>,
    ids: Vec<i64>,
) -> Result<String> {
    let sink = site.log(model, user);
    let write_sink = sink.clone();
    let (model, run, name) = (model.clone(), action.run.clone(), action.name);
    let message = site
        .db(&model)
        .write(move |c| {
            let mut labels = Vec::new();
            for id in &ids {
                if let Ok(row) = fetch_row(c, &model, *id) {
                    labels.push((*id, object_label(&model, &row)));
                }
            }
            let ids: Vec<i64> = labels.iter().map(|(id, _)| *id).collect();
            let message = run(c, &ids)?;
            for (id, label) in &labels {
                let record = Record {
                    model: model.slug,
                    object_id: Some(*id),
                    object_label: label,
                    action: name,
                    detail: &message,
                };
                write_sink.write(c, record)?;
            }
            Ok(message)
        })
        .await?;
    sink.flush().await?;
    Ok(message)
}

pub(super) async fn row_action(
    State(site): State<Site>,
    Path((slug, id, name)): Path<(String, i64, String)>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let action =
        model.actions.iter().find(|a| a.name == name && a.row).ok_or_else(Error::not_found)?;
    require(&user, action.access, &format!("run “{}”", action.label))?;
    let read_model = model.clone();
    db.read(move |c| fetch_row(c, &read_model, id)).await?;
    let message = run_action(&site, &model, action, &user, vec![id]).await?;
    messages.success(message)?;
    Ok(Redirect::to(&format!("/admin/{}/{id}", model.slug)).into_response())
}
