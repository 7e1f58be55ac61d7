//! Create and edit: the app's form, the row's fingerprint against lost updates.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Value as Jinja;

use super::{
    Names, can, fetch_row, field_label, field_text, object_label, page, related_rows, require, ser,
};
use crate::admin::{AdminRow, Change, ModelAdmin, Relation, value_text};
use crate::contrib::admin::Site;
use crate::contrib::admin::log::{self, Record};
use crate::contrib::admin::query::quote;
use crate::contrib::auth::{RequireStaff, User};
use crate::contrib::messages::Messages;
use crate::db::{Conn, DbError, Value};
use crate::error::{Error, Result};
use crate::extract::Path;
use crate::forms::{BoundField, BoundForm, Choice, Errors, FormData, InputType, Message};
use crate::i18n::Locale;
use crate::template::{Html, Render};

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

/// What the input of `column` shows for the row's value.
fn input_of_row(model: &ModelAdmin, row: &AdminRow, column: &str) -> String {
    let fields = model.form.map_or(&[][..], |f| (f.fields)());
    let checkbox = fields.iter().any(|f| f.name == column && f.input == InputType::Checkbox);
    match row.get(column) {
        Some(Value::Integer(n)) if checkbox => {
            if *n != 0 {
                "on".into()
            } else {
                String::new()
            }
        }
        Some(value) => value_text(value),
        None => String::new(),
    }
}

/// The form to show: the form type's fields, then the relations edited as selects (their
/// rows read from the database), each showing `value_of(column)`, with `errors`.
async fn shown_form(
    site: &Site,
    model: &ModelAdmin,
    value_of: impl Fn(&str) -> String,
    errors: &Errors,
) -> Result<BoundForm> {
    let fields = (model.form.expect("only models with a form have form pages").fields)();
    let mut form = BoundForm::build(fields, |i| value_of(fields[i].name), errors);
    let relations: Vec<Relation> =
        model.relation_fields.iter().filter_map(|c| model.relation_of(c)).cloned().collect();
    if relations.is_empty() {
        return Ok(form);
    }
    let read = relations.clone();
    let rows = site
        .db(model)
        .read(move |c| read.iter().map(|r| related_rows(c, r)).collect::<Result<Vec<_>, _>>())
        .await?;
    for (relation, rows) in relations.iter().zip(rows) {
        form.push(relation_field(relation, &value_of(relation.column), rows, errors));
    }
    Ok(form)
}

/// A relation's select: the related rows by label, the current one selected.
fn relation_field(
    relation: &Relation,
    value: &str,
    rows: Vec<(i64, String)>,
    errors: &Errors,
) -> BoundField {
    let choices = rows
        .into_iter()
        .map(|(id, label)| {
            let id = id.to_string();
            Choice { selected: id == value, value: id, label }
        })
        .collect();
    BoundField {
        name: relation.column,
        label: relation.label,
        help: None,
        input_type: "select",
        value: value.to_string(),
        checked: false,
        required: true,
        min_length: None,
        max_length: None,
        min: None,
        max: None,
        step: None,
        choices,
        accept: None,
        errors: errors.field(relation.column).map(|m| m.english(Some(relation.label))).collect(),
        messages: errors.field(relation.column).map(|m| m.shown(Some(relation.label))).collect(),
    }
}

/// Read-only fields of a row page: the declared ones (every column when nothing can be
/// edited), with relation and choice labels.
fn readonly_view(model: &ModelAdmin, row: &AdminRow, locale: &Locale) -> Vec<Jinja> {
    let mut editable: Vec<&str> =
        model.form.map_or(Vec::new(), |f| (f.fields)().iter().map(|f| f.name).collect());
    editable.extend(&model.relation_fields);
    let shown: Vec<&str> = if model.form.is_some() {
        model.readonly.clone()
    } else {
        row.columns.iter().map(String::as_str).filter(|c| !c.starts_with("__label_")).collect()
    };
    shown
        .into_iter()
        .filter(|name| !editable.contains(name))
        .map(|name| {
            let text = field_text(model, row, name, locale);
            let long = text.len() > 80 || text.contains('\n');
            context! { label => field_label(model, name, locale), text, long }
        })
        .collect()
}

pub(in crate::contrib::admin) async fn new_page(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    locale: Locale,
    render: Render,
) -> Result<Html> {
    let model = site.model(&slug)?;
    model.form.ok_or_else(Error::not_found)?;
    let names = Names::of(model, &locale);
    require(&user, model.permissions.create, || names.say(&locale, "admin-may-not-create", &[]))?;
    // A `created_by` relation offers the creating user first.
    let me = user.id.to_string();
    let value_of = |column: &str| match model.created_by {
        Some(by) if by == column => me.clone(),
        _ => String::new(),
    };
    let form = shown_form(&site, model, value_of, &Errors::new()).await?;
    let ctx = context! { form, creating => true, action => format!("/admin/{}/new", model.slug) };
    render.page("admin/form.html", page(&site, &uri, &locale, Some(model), ctx))
}

/// A change refused by the form's rules, the model's own check, a constraint, or a
/// conflict: the form again, with what was typed, its errors and `message`.
async fn refused(
    site: &Site,
    (uri, locale): (&Uri, &Locale),
    model: &ModelAdmin,
    render: &Render,
    status: StatusCode,
    (data, errors, message): (&FormData, &Errors, Option<String>),
    extra: Jinja,
) -> Result<Response> {
    let typed = |column: &str| data.get(column).unwrap_or_default().to_string();
    let mut form = shown_form(site, model, typed, errors).await?;
    if let Some(message) = message {
        form.add_error(message);
    }
    let ctx = page(site, uri, locale, Some(model), context! { form, ..extra });
    Ok((status, render.page("admin/form.html", ctx)?).into_response())
}

/// The submitted values by column (the form type's fields, then the relations edited), or
/// the errors.
fn read_submission(
    model: &ModelAdmin,
    data: &FormData,
) -> Result<Vec<(&'static str, Value)>, Errors> {
    let spec = model.form.expect("only models with a form take submissions");
    let fields = (spec.fields)();
    let (mut values, mut errors) = match (spec.read)(data) {
        Ok(values) => (fields.iter().map(|f| f.name).zip(values).collect(), Errors::new()),
        Err(errors) => (Vec::new(), errors),
    };
    for column in &model.relation_fields {
        match data.get(column).map(str::trim).filter(|t| !t.is_empty()) {
            None => errors.add(column, Message::new("required")),
            Some(text) => match text.parse::<i64>() {
                Ok(id) => values.push((*column, Value::Integer(id))),
                Err(_) => errors.add(column, Message::new("choice")),
            },
        }
    }
    if errors.is_empty() { Ok(values) } else { Err(errors) }
}

/// The relations a change sets must point at rows that exist (now, in its transaction).
fn check_relations(
    c: &Conn,
    model: &ModelAdmin,
    values: &[(&'static str, Value)],
    locale: &Locale,
) -> Result<Result<(), String>, DbError> {
    for relation in model.relation_fields.iter().filter_map(|col| model.relation_of(col)) {
        let Some((_, value)) = values.iter().find(|(n, _)| *n == relation.column) else { continue };
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = ?",
            quote(relation.table),
            quote(relation.key)
        );
        let found: i64 = c.query_one(&sql, std::slice::from_ref(value))?;
        if found == 0 {
            let field = locale.label(relation.label);
            return Ok(Err(locale.t_args("admin-relation-gone", &[("field", &field)])));
        }
    }
    Ok(Ok(()))
}

/// The model's own check and the relations', before a change.
fn before(
    c: &Conn,
    model: &ModelAdmin,
    change: Change<'_>,
    locale: &Locale,
) -> Result<Result<(), String>, DbError> {
    let values = match change {
        Change::Create(values) | Change::Edit(_, values) => values,
        Change::Delete(_) => &[],
    };
    if let Err(message) = check_relations(c, model, values, locale)? {
        return Ok(Err(message));
    }
    match &model.before_change {
        Some(check) => Ok(check(c, change)?.map_err(|refusal| super::refusal(locale, refusal))),
        None => Ok(Ok(())),
    }
}

/// What the database says about a refused change, for the user: a constraint names no
/// secret, anything else is the server's error.
fn constraint_message(e: &DbError, locale: &Locale) -> Option<String> {
    match e {
        DbError::Constraint { .. } => Some(locale.t_args("admin-db-refused", &[("reason", e)])),
        _ => None,
    }
}

pub(in crate::contrib::admin) async fn create(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    (uri, locale): (Uri, Locale),
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    model.form.ok_or_else(Error::not_found)?;
    let names = Names::of(&model, &locale);
    require(&user, model.permissions.create, || names.say(&locale, "admin-may-not-create", &[]))?;
    let created = match read_submission(&model, &data) {
        Err(errors) => Err((errors, None)),
        Ok(mut values) => {
            if let Some(column) = model.created_by
                && !values.iter().any(|(n, _)| *n == column)
            {
                values.push((column, Value::Integer(user.id)));
            }
            match &model.create_with {
                Some(create_with) => {
                    match create_with(site.1.clone(), user.id, locale.clone(), values).await {
                        Ok(created) => {
                            log_created_elsewhere(&site, &model, &user, created.0).await?;
                            Ok(created)
                        }
                        Err(e) if !e.status().is_server_error() => {
                            Err((Errors::new(), Some(e.message().to_string())))
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => match insert(&site, &model, &user, values, &locale).await {
                    Ok(Ok((id, label))) => {
                        Ok((id, names.say(&locale, "admin-created", &[("label", &label)])))
                    }
                    Ok(Err(message)) => Err((Errors::new(), Some(message))),
                    Err(e) => Err((Errors::new(), Some(constraint_message(&e, &locale).ok_or(e)?))),
                },
            }
        }
    };
    match created {
        Ok((id, message)) => {
            messages.success(message)?;
            Ok(after_save(&model, id, &data))
        }
        Err((errors, message)) => {
            let extra =
                context! { creating => true, action => format!("/admin/{}/new", model.slug) };
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            let form = (&data, &errors, message);
            refused(&site, (&uri, &locale), &model, &render, status, form, extra).await
        }
    }
}

/// Inserts the form's values in one transaction with the model's checks and the log
/// entry: the new row's id and label, or why it was refused.
async fn insert(
    site: &Site,
    model: &ModelAdmin,
    user: &Arc<User>,
    values: Vec<(&'static str, Value)>,
    locale: &Locale,
) -> Result<Result<(i64, String), String>, DbError> {
    let sink = site.log(model, user);
    let (write_model, write_sink, locale) = (model.clone(), sink.clone(), locale.clone());
    let outcome = site
        .db(model)
        .write(move |c| {
            let model = &write_model;
            if let Err(message) = before(c, model, Change::Create(&values), &locale)? {
                return Ok(Err(message));
            }
            let columns: Vec<String> = values.iter().map(|(n, _)| quote(n)).collect();
            let marks = vec!["?"; values.len()].join(", ");
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({marks}) RETURNING {}",
                quote(model.table),
                columns.join(", "),
                quote(model.key)
            );
            let params: Vec<Value> = values.iter().map(|(_, v)| v.clone()).collect();
            let id: i64 = c.query_one(&sql, &params)?;
            for hook in &model.after_change {
                hook(c, Change::Create(&values))?;
            }
            let label = object_label(model, &fetch_row(c, model, id)?);
            write_sink.write(c, Record::new(model.slug, id, &label, "created"))?;
            Ok(Ok((id, label)))
        })
        .await?;
    if outcome.is_ok() {
        sink.flush().await?;
    }
    Ok(outcome)
}

/// The log entry of a row an app's `create_with` made in its own transaction.
async fn log_created_elsewhere(
    site: &Site,
    model: &ModelAdmin,
    user: &Arc<User>,
    id: i64,
) -> Result<()> {
    let read_model = model.clone();
    let label = site
        .db(model)
        .read(move |c| fetch_row(c, &read_model, id))
        .await
        .map_or_else(|_| format!("#{id}"), |row| object_label(model, &row));
    let sink = log::Sink::new(user.clone(), Some(site.main_db().clone()));
    sink.keep(Record::new(model.slug, id, &label, "created"));
    Ok(sink.flush().await?)
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

pub(in crate::contrib::admin) async fn edit_page(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    locale: Locale,
    render: Render,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let read_model = model.clone();
    let row = site.db(&model).read(move |c| fetch_row(c, &read_model, id)).await?;
    let history = reread_history(&site, &model, id).await?;
    let form = match model.form {
        Some(_) => {
            let value_of = |column: &str| input_of_row(&model, &row, column);
            Some(shown_form(&site, &model, value_of, &Errors::new()).await?)
        }
        None => None,
    };
    let ctx = row_context(&model, &user, &row, history, &locale);
    let ctx = context! { form, ..ctx };
    Ok(render
        .page("admin/form.html", page(&site, &uri, &locale, Some(&model), ctx))?
        .into_response())
}

/// What a row's page shows besides the form.
fn row_context(
    model: &ModelAdmin,
    user: &User,
    row: &AdminRow,
    history: Vec<log::Entry>,
    locale: &Locale,
) -> Jinja {
    let actions: Vec<Jinja> = model
        .actions
        .iter()
        .filter(|a| a.row && can(user, a.access))
        .map(|a| {
            let href = format!("/admin/{}/{}/actions/{}", model.slug, row.id(), a.name);
            context! { label => locale.label(&a.label), href }
        })
        .collect();
    context! {
        id => row.id(),
        label => object_label(model, row),
        version => version(row),
        readonly => readonly_view(model, row, locale),
        history => ser(history),
        actions,
        can_edit => model.form.is_some() && can(user, model.permissions.edit),
        can_delete => can(user, model.permissions.delete),
        action => format!("/admin/{}/{}", model.slug, row.id()),
    }
}

/// How a save ended, besides a database error.
enum Saved {
    Done(String),
    Refused(Option<String>),
    Conflict,
}

pub(in crate::contrib::admin) async fn update(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    (uri, locale): (Uri, Locale),
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    model.form.ok_or_else(Error::not_found)?;
    let names = Names::of(&model, &locale);
    require(&user, model.permissions.edit, || names.say(&locale, "admin-may-not-edit", &[]))?;
    let submission = read_submission(&model, &data);
    let seen = data.get("_version").unwrap_or_default().to_string();
    let sink = site.log(&model, &user);
    let (write_model, write_sink, write_locale) = (model.clone(), sink.clone(), locale.clone());
    let values = submission.as_ref().ok().cloned();
    let (saved, row) = site
        .db(&model)
        .write(move |c| {
            let (model, locale) = (&write_model, &write_locale);
            let row = fetch_row(c, model, id)?;
            if version(&row) != seen {
                return Ok((Saved::Conflict, row));
            }
            let Some(values) = values else { return Ok((Saved::Refused(None), row)) };
            if let Err(message) = before(c, model, Change::Edit(id, &values), locale)? {
                return Ok((Saved::Refused(Some(message)), row));
            }
            let changed: Vec<&(&'static str, Value)> =
                values.iter().filter(|(name, value)| row.get(name) != Some(value)).collect();
            if changed.is_empty() {
                return Ok((Saved::Done(object_label(model, &row)), row));
            }
            let sets: Vec<String> =
                changed.iter().map(|(n, _)| format!("{} = ?", quote(n))).collect();
            let sql = format!(
                "UPDATE {} SET {} WHERE {} = ?",
                quote(model.table),
                sets.join(", "),
                quote(model.key)
            );
            let mut params: Vec<Value> = changed.iter().map(|(_, v)| v.clone()).collect();
            params.push(Value::Integer(id));
            c.execute(&sql, &params)?;
            for hook in &model.after_change {
                hook(c, Change::Edit(id, &values))?;
            }
            let row = fetch_row(c, model, id)?;
            let label = object_label(model, &row);
            let fields: Vec<String> =
                changed.iter().map(|(n, _)| field_label(model, n, locale)).collect();
            let detail = locale.t_args("admin-changed-fields", &[("fields", &fields.join(", "))]);
            write_sink.write(c, Record::new(model.slug, id, &label, "changed").detail(&detail))?;
            Ok((Saved::Done(label), row))
        })
        .await
        .map(|(saved, row)| (saved, Some(row)))
        .or_else(|e| match constraint_message(&e, &locale) {
            Some(message) => Ok((Saved::Refused(Some(message)), None)),
            None => Err(e),
        })?;
    let errors = submission.err().unwrap_or_default();
    let (status, message, conflict) = match saved {
        Saved::Done(label) => {
            sink.flush().await?;
            messages.success(names.say(&locale, "admin-saved", &[("label", &label)]))?;
            return Ok(after_save(&model, id, &data));
        }
        Saved::Refused(message) => (StatusCode::UNPROCESSABLE_ENTITY, message, false),
        // What they typed stays in the form, with the row's new fingerprint: saving again
        // overwrites knowingly.
        Saved::Conflict => {
            let message = names.say(&locale, "admin-conflict", &[]);
            (StatusCode::CONFLICT, Some(message), true)
        }
    };
    let row = match row {
        Some(row) => row,
        None => {
            let read_model = model.clone();
            site.db(&model).read(move |c| fetch_row(c, &read_model, id)).await?
        }
    };
    let history = reread_history(&site, &model, id).await?;
    let ctx = row_context(&model, &user, &row, history, &locale);
    let ctx = context! { conflict, ..ctx };
    let form = (&data, &errors, message);
    refused(&site, (&uri, &locale), &model, &render, status, form, ctx).await
}

/// An object's history, from the server's database.
async fn reread_history(site: &Site, model: &ModelAdmin, id: i64) -> Result<Vec<log::Entry>> {
    let slug = model.slug;
    Ok(site.main_db().read(move |c| log::of_object(c, slug, id)).await?)
}
