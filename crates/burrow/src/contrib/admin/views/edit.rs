//! Create and edit: the app's form, the row's fingerprint against lost updates.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Value as Jinja;

use super::{can, fetch_row, field_label, field_text, object_label, page, require, ser};
use crate::admin::{AdminRow, Change, ModelAdmin, value_text};
use crate::contrib::admin::Site;
use crate::contrib::admin::log::{self, Record};
use crate::contrib::admin::query::quote;
use crate::contrib::auth::{RequireStaff, User};
use crate::contrib::messages::Messages;
use crate::db::{Db, DbError, Value};
use crate::error::{Error, Result};
use crate::extract::Path;
use crate::forms::{BoundForm, Errors, FormData};
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

pub(in crate::contrib::admin) async fn new_page(
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

pub(in crate::contrib::admin) async fn create(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    uri: Uri,
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let spec = model.form.ok_or_else(Error::not_found)?;
    require(&user, model.permissions.create, &format!("create {}", model.plural))?;
    // The form again, with its errors or why the change was refused.
    let again = |form: BoundForm| {
        let extra = context! { creating => true, action => format!("/admin/{}/new", model.slug) };
        refused(&site, &uri, &model, &render, StatusCode::UNPROCESSABLE_ENTITY, form, extra)
    };
    let refusal = |message: String| {
        let mut form = submitted((spec.fields)(), &data, &Errors::new());
        form.add_error(message);
        again(form)
    };
    let mut values = match read_submission(&model, &data) {
        Ok(values) => values,
        Err(form) => return again(form),
    };
    if let Some(column) = model.created_by
        && !values.iter().any(|(n, _)| *n == column)
    {
        values.push((column, Value::Integer(user.id)));
    }
    let created = match &model.create_with {
        Some(create_with) => match create_with(site.1.clone(), user.id, values).await {
            Ok(created) => {
                log_created_elsewhere(&site, &model, &user, created.0).await?;
                Ok(created)
            }
            Err(e) if !e.status().is_server_error() => Err(e.message().to_string()),
            Err(e) => return Err(e),
        },
        None => match insert(&site, &model, &user, values).await {
            Ok(Ok((id, label))) => Ok((id, format!("Created {} “{label}”.", model.singular))),
            Ok(Err(message)) => Err(message),
            Err(e) => Err(constraint_message(&e).ok_or(e)?),
        },
    };
    match created {
        Ok((id, message)) => {
            messages.success(message)?;
            Ok(after_save(&model, id, &data))
        }
        Err(message) => refusal(message),
    }
}

/// Inserts the form's values in one transaction with the model's checks and the log
/// entry: the new row's id and label, or why it was refused.
async fn insert(
    site: &Site,
    model: &ModelAdmin,
    user: &Arc<User>,
    values: Vec<(&'static str, Value)>,
) -> Result<Result<(i64, String), String>, DbError> {
    let sink = site.log(model, user);
    let (write_model, write_sink) = (model.clone(), sink.clone());
    let outcome = site
        .db(model)
        .write(move |c| {
            let model = &write_model;
            if let Some(check) = &model.before_change
                && let Err(message) = check(c, Change::Create(&values))?
            {
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
            let record = Record::new(model.slug, id, &label, "created");
            write_sink.write(c, record)?;
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

pub(in crate::contrib::admin) async fn update(
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
                let sets =
                    changed.iter().map(|(n, _)| format!("{} = ?", quote(n))).collect::<Vec<_>>();
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
            }
            let row = fetch_row(c, model, id)?;
            let label = object_label(model, &row);
            let names: Vec<&str> = changed.iter().map(|(n, _)| *n).collect();
            if !names.is_empty() {
                let detail = format!("Changed {}.", names.join(", "));
                let record = Record::new(model.slug, id, &label, "changed").detail(&detail);
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
    // What they typed, with its errors if it had any.
    let typed =
        || submission.clone().err().unwrap_or_else(|| submitted(fields, &data, &Errors::new()));
    match saved {
        Saved::Done(label) => {
            sink.flush().await?;
            messages.success(format!("Saved {} “{label}”.", model.singular))?;
            Ok(after_save(&model, id, &data))
        }
        Saved::Invalid(message) => {
            let mut form = typed();
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
            let mut form = typed();
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
