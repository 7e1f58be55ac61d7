//! Delete (with what cascades), bulk actions over selected rows, and row actions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Value as Jinja;

use super::{Names, fetch_row, object_label, page, require};
use crate::admin::{Change, ModelAdmin};
use crate::contrib::admin::Site;
use crate::contrib::admin::log::{self, Record};
use crate::contrib::admin::query::quote;
use crate::contrib::auth::{RequireStaff, User};
use crate::contrib::messages::Messages;
use crate::db::schema::{self, DeleteEffect};
use crate::db::{Conn, DbError, Value};
use crate::error::{Error, Result};
use crate::extract::Path;
use crate::forms::FormData;
use crate::i18n::Locale;
use crate::template::{Html, Render};

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

fn effects_view(effects: &[DeleteEffect], locale: &Locale) -> Vec<Jinja> {
    effects
        .iter()
        .map(|e| {
            let what = locale.t(match e.on_delete {
                schema::OnDelete::Cascade => "admin-effect-cascade",
                schema::OnDelete::SetNull => "admin-effect-set-null",
                schema::OnDelete::SetDefault => "admin-effect-set-default",
                schema::OnDelete::Restrict | schema::OnDelete::NoAction => "admin-effect-blocks",
            });
            let blocks = matches!(e.on_delete, schema::OnDelete::Restrict | schema::OnDelete::NoAction);
            context! { table => e.table.clone(), via => e.via.clone(), count => e.count, what, blocks, depth => e.depth }
        })
        .collect()
}

pub(in crate::contrib::admin) async fn delete_page(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    locale: Locale,
    render: Render,
) -> Result<Html> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let names = Names::of(&model, &locale);
    require(&user, model.permissions.delete, || names.say(&locale, "admin-may-not-delete", &[]))?;
    let read_model = model.clone();
    let (objects, effects) = db.read(move |c| deletion(c, &read_model, &[id])).await?;
    if objects.is_empty() {
        return Err(Error::not_found());
    }
    let label = names.say(&locale, "admin-delete-one", &[]);
    let ctx = confirm_context(&model, "delete", &label, objects, &effects, &locale);
    let ctx = context! { post_to => format!("/admin/{}/{id}/delete", model.slug), ..ctx };
    render.page("admin/confirm.html", page(&site, &uri, &locale, Some(&model), ctx))
}

fn confirm_context(
    model: &ModelAdmin,
    action: &str,
    label: &str,
    objects: Vec<(i64, String)>,
    effects: &[DeleteEffect],
    locale: &Locale,
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
        effects => effects_view(effects, locale),
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
        let sql = format!("DELETE FROM {} WHERE {} = ?", quote(model.table), quote(model.key));
        deleted += c.execute(&sql, &[Value::Integer(*id)])?;
        let record = Record::new(model.slug, *id, &label, "deleted");
        sink.write(c, record)?;
    }
    for hook in &model.after_change {
        hook(c, Change::Delete(ids))?;
    }
    Ok(Ok(deleted))
}

pub(in crate::contrib::admin) async fn delete(
    State(site): State<Site>,
    Path((slug, id)): Path<(String, i64)>,
    RequireStaff(user): RequireStaff,
    locale: Locale,
    messages: Messages,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let names = Names::of(&model, &locale);
    require(&user, model.permissions.delete, || names.say(&locale, "admin-may-not-delete", &[]))?;
    let write_model = model.clone();
    let sink = site.log(&model, &user);
    let write_sink = sink.clone();
    let outcome = db.write(move |c| delete_rows(c, &write_model, &write_sink, &[id])).await;
    let back = format!("/admin/{}/{id}", model.slug);
    finish_delete(&model, outcome, &sink, &messages, &back, &locale).await
}

/// Tells what a delete did; a refused one (the model's check, or rows that keep it from
/// happening) leaves everything as it was.
async fn finish_delete(
    model: &ModelAdmin,
    outcome: Result<Result<usize, String>, DbError>,
    sink: &log::Sink,
    messages: &Messages,
    back: &str,
    locale: &Locale,
) -> Result<Response> {
    match outcome {
        Ok(Ok(0)) => Err(Error::not_found()),
        Ok(Ok(n)) => {
            sink.flush().await?;
            let names = Names::of(model, locale);
            messages.success(names.say(locale, "admin-deleted", &[("count", &n)]))?;
            Ok(Redirect::to(&format!("/admin/{}/", model.slug)).into_response())
        }
        Ok(Err(message)) => {
            messages.error(locale.get(&message, &[]).unwrap_or(message))?;
            Ok(Redirect::to(back).into_response())
        }
        Err(e @ DbError::Constraint { .. }) => {
            messages.error(locale.t_args("admin-delete-refused", &[("reason", &e)]))?;
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

pub(in crate::contrib::admin) async fn bulk(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    messages: Messages,
    (uri, locale): (Uri, Locale),
    render: Render,
    data: FormData,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let names = Names::of(&model, &locale);
    let list = format!("/admin/{}/", model.slug);
    let ids = selected_ids(&data);
    let name = data.get("action").unwrap_or_default().to_string();
    if ids.is_empty() {
        messages.warning(locale.t("admin-select-first"))?;
        return Ok(Redirect::to(&list).into_response());
    }
    let confirmed = data.get("confirmed").is_some();
    if name == "delete" {
        let refusal = || names.say(&locale, "admin-may-not-delete", &[]);
        require(&user, model.permissions.delete, refusal)?;
        if !confirmed {
            let read_model = model.clone();
            let (objects, effects) = db.read(move |c| deletion(c, &read_model, &ids)).await?;
            let label = names.say(&locale, "admin-delete-count", &[("count", &objects.len())]);
            let ctx = confirm_context(&model, "delete", &label, objects, &effects, &locale);
            return Ok(render
                .page("admin/confirm.html", page(&site, &uri, &locale, Some(&model), ctx))?
                .into_response());
        }
        let write_model = model.clone();
        let sink = site.log(&model, &user);
        let write_sink = sink.clone();
        let outcome = db.write(move |c| delete_rows(c, &write_model, &write_sink, &ids)).await;
        return finish_delete(&model, outcome, &sink, &messages, &list, &locale).await;
    }
    let action = model
        .actions
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| Error::bad_request(locale.t("admin-no-such-action")))?;
    let action_label = locale.label(&action.label).into_owned();
    require(&user, action.access, || {
        locale.t_args("admin-may-not-run", &[("action", &action_label)])
    })?;
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
        let ctx = confirm_context(&model, action.name, &action_label, objects, &[], &locale);
        return Ok(render
            .page("admin/confirm.html", page(&site, &uri, &locale, Some(&model), ctx))?
            .into_response());
    }
    let message = run_action(&site, &model, action, &user, ids, &locale).await?;
    messages.success(message)?;
    Ok(Redirect::to(&list).into_response())
}

/// Runs an action over `ids` in one write transaction, logging it for each row. What the
/// action returns is shown, translated if a catalog has it as a key (with the number of
/// rows as `{count}`).
async fn run_action(
    site: &Site,
    model: &ModelAdmin,
    action: &crate::admin::Action,
    user: &Arc<User>,
    ids: Vec<i64>,
    locale: &Locale,
) -> Result<String> {
    let sink = site.log(model, user);
    let write_sink = sink.clone();
    let (model, run, name) = (model.clone(), action.run.clone(), action.name);
    let locale = locale.clone();
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
            let message = locale.get(&message, &[("count", &ids.len())]).unwrap_or(message);
            for (id, label) in &labels {
                let record = Record::new(model.slug, *id, label, name).detail(&message);
                write_sink.write(c, record)?;
            }
            Ok(message)
        })
        .await?;
    sink.flush().await?;
    Ok(message)
}

pub(in crate::contrib::admin) async fn row_action(
    State(site): State<Site>,
    Path((slug, id, name)): Path<(String, i64, String)>,
    RequireStaff(user): RequireStaff,
    locale: Locale,
    messages: Messages,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    let db = site.db(&model);
    let action =
        model.actions.iter().find(|a| a.name == name && a.row).ok_or_else(Error::not_found)?;
    require(&user, action.access, || {
        locale.t_args("admin-may-not-run", &[("action", &locale.label(&action.label))])
    })?;
    let read_model = model.clone();
    db.read(move |c| fetch_row(c, &read_model, id)).await?;
    let message = run_action(&site, &model, action, &user, vec![id], &locale).await?;
    messages.success(message)?;
    Ok(Redirect::to(&format!("/admin/{}/{id}", model.slug)).into_response())
}
