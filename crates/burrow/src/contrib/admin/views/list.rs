//! The dashboard and the list of a model.

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use minijinja::value::Value as Jinja;
use serde::Serialize;

use super::{Cell, Link, Names, can, capitalized, cell, column_label, page, related_rows, ser};
use crate::admin::{AdminRow, FilterKind, ModelAdmin};
use crate::contrib::admin::Site;
use crate::contrib::admin::log;
use crate::contrib::admin::query::quote;
use crate::contrib::admin::query::{ListQuery, Selection, sort_link};
use crate::contrib::auth::{RequireStaff, User};
use crate::db::{Conn, DbError, Value};
use crate::error::Result;
use crate::extract::Path;
use crate::i18n::Locale;
use crate::template::{Html, Render};

pub(in crate::contrib::admin) async fn dashboard(
    State(site): State<Site>,
    RequireStaff(_user): RequireStaff,
    uri: Uri,
    locale: Locale,
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
        let sql = format!("SELECT COUNT(*) FROM {}", quote(model.table));
        let count: i64 = site.db(model).read(move |c| c.query_one(&sql, &[])).await?;
        let (app, title) = (model.app, capitalized(&locale.label(&model.plural)));
        counts.push(Count { app, title, href: format!("/admin/{}/", model.slug), count });
    }
    let recent = site.main_db().read(|c| log::recent(c, 15)).await?;
    let ctx = context! { counts => ser(counts), recent => ser(recent) };
    render.page("admin/dashboard.html", page(&site, &uri, &locale, None, ctx))
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
    /// What the date form carries to keep the rest of the list's state.
    kept: Vec<(String, String)>,
}

fn filter_views(
    model: &ModelAdmin,
    query: &ListQuery,
    related: &[Related],
    locale: &Locale,
) -> Vec<FilterView> {
    model
        .filters
        .iter()
        .map(|filter| {
            let column = filter.column;
            let label = filter.label.clone().unwrap_or_else(|| {
                model
                    .relation_of(column)
                    .map_or_else(|| capitalized(&column.replace('_', " ")), |r| r.label.to_string())
            });
            let label = locale.label(&label).into_owned();
            let options_of = |choices: Vec<(String, String)>| {
                let current = query.filter(column);
                let mut links = vec![Link {
                    label: locale.t("admin-all"),
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
                FilterKind::Choices(choices) => {
                    let translated = (choices.iter())
                        .map(|(value, label)| (value.clone(), locale.label(label).into_owned()));
                    ("choices", options_of(translated.collect()))
                }
                FilterKind::Boolean => (
                    "choices",
                    options_of(vec![
                        ("1".into(), locale.t("admin-yes")),
                        ("0".into(), locale.t("admin-no")),
                    ]),
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
                kept: query.kept_by_form(&[&from_name, &to_name]),
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

pub(in crate::contrib::admin) async fn list(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    uri: Uri,
    locale: Locale,
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
            let sql = selection.rows_sql(model, query, true);
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
                label => column_label(&model, column, &locale),
                sort => ser(sort_link(&model, &query, column.name)),
            }
        })
        .collect();
    let rows: Vec<Jinja> = rows
        .iter()
        .map(|row| {
            let cells: Vec<Cell> = columns.iter().map(|c| cell(&model, row, c, &locale)).collect();
            context! { id => row.id(), href => format!("/admin/{}/{}", model.slug, row.id()), cells => ser(cells) }
        })
        .collect();
    let page_link = |n: usize| format!("?{}", query.with("page", Some(&n.to_string())));
    let actions: Vec<Jinja> = bulk_actions(&model, &user, &locale)
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
        search_kept => query.kept_by_form(&["q"]),
        filters => ser(filter_views(&model, &query, &related, &locale)),
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
    Ok(render
        .page("admin/list.html", page(&site, &uri, &locale, Some(&model), ctx))?
        .into_response())
}

/// A relation filter's column and its choices: the related rows' ids and labels.
type Related = (String, Vec<(i64, String)>);

/// Each relation filter's choices: the related table's rows by label.
fn related_choices(c: &Conn, model: &ModelAdmin) -> Result<Vec<Related>, DbError> {
    let mut out = Vec::new();
    for filter in &model.filters {
        let Some(relation) = model.relation_of(filter.column) else { continue };
        if matches!(filter.kind, FilterKind::Relation) {
            out.push((filter.column.to_string(), related_rows(c, relation)?));
        }
    }
    Ok(out)
}

/// The bulk actions `user` may run: delete (if allowed) and the model's own.
fn bulk_actions(model: &ModelAdmin, user: &User, locale: &Locale) -> Vec<(String, String)> {
    let mut actions = Vec::new();
    if can(user, model.permissions.delete) {
        let label = Names::of(model, locale).say(locale, "admin-delete-selected", &[]);
        actions.push(("delete".to_string(), label));
    }
    for action in &model.actions {
        if can(user, action.access) {
            actions.push((action.name.to_string(), locale.label(&action.label).into_owned()));
        }
    }
    actions
}
