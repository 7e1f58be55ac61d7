//! Notes: create, edit, delete, validation, pagination, full-text search, htmx partials.

mod store;

use burrow::axum::extract::{Form, Query, State};
use burrow::axum::http::{HeaderName, HeaderValue, StatusCode, header};
use burrow::axum::response::{IntoResponse, Redirect, Response};
use burrow::axum::routing::get;
use burrow::axum::{Router, routing::post};
use burrow::clap::{Arg, value_parser};
use burrow::contrib::messages::Messages;
use burrow::minijinja::context;
use burrow::minijinja::value::Serde;
use burrow::{
    App, AppContext, BoxError, Command, Db, Dir, Error, Html, NavItem, Paginator, Path, Render,
    Result,
};
use serde::Deserialize;

use store::NoteForm;

static MIGRATIONS: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/src/notes/migrations");
static TEMPLATES: Dir<'static> = burrow::embed_dir!("$CARGO_MANIFEST_DIR/src/notes/templates");

pub struct Notes;

impl App for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }

    /// Notes' templates extend the layout of the pages app; handlers flash messages.
    fn dependencies(&self) -> &'static [&'static str] {
        &["pages", "messages"]
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![
            NavItem::new("Notes", "/notes").order(10),
            NavItem::new("New note", "/notes/new").order(20),
        ]
    }

    fn routes(&self, ctx: &AppContext) -> Router {
        Router::new()
            .route("/notes", get(list).post(create))
            .route("/notes/rows", get(rows))
            .route("/notes/new", get(new))
            .route("/notes/{id}", get(show).post(update).delete(delete_htmx))
            .route("/notes/{id}/edit", get(edit))
            .route("/notes/{id}/delete", post(delete))
            .with_state(ctx.db.clone())
    }

    fn commands(&self) -> Vec<Command> {
        let cli = burrow::clap::Command::new("generate-notes")
            .about("Insert generated notes (for demos and benchmarks)")
            .arg(
                Arg::new("count")
                    .long("count")
                    .value_name("N")
                    .default_value("100")
                    .value_parser(value_parser!(u32).range(1..=10_000_000))
                    .help("How many notes"),
            );
        vec![Command::new(cli, |ctx, args| async move {
            let count = *args.get_one::<u32>("count").expect("count has a default");
            store::insert_many(&ctx.db, generated(count as usize)).await?;
            println!("Inserted {count} notes.");
            Ok(())
        })]
    }

    async fn seed(&self, ctx: &AppContext) -> Result<(), BoxError> {
        let samples = [
            (
                "Welcome to Burrow notes",
                "Notes live in one SQLite file next to the binary. Try the search box: it uses \
                 SQLite's FTS5.",
            ),
            (
                "Deploying",
                "Copy the binary to the server and run it. Use --pid-file and SIGHUP for \
                 zero-downtime restarts.",
            ),
            ("Backups", "Use sqlite3 .backup or Litestream; never cp a live database file."),
            ("Shopping list", "Coffee beans, oat milk, bread, tomatoes."),
            ("Reading", "The SQLite documentation on WAL mode is short and worth reading."),
        ];
        // Seeding twice must not duplicate the samples: those whose title is there are kept.
        let samples: Vec<_> = samples.iter().map(|(t, c)| (t.to_string(), c.to_string())).collect();
        let total = samples.len();
        let added = store::insert_missing(&ctx.db, samples).await?;
        let kept = total - added;
        match kept {
            0 => println!("notes: added {added} sample notes."),
            _ => println!(
                "notes: added {added} sample notes; {kept} already there (same title) were left \
                 as they are."
            ),
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

impl ListQuery {
    /// A bad or missing page number is the first page, not an error.
    fn page(&self) -> Paginator {
        Paginator::parse(&self.page, store::PER_PAGE)
    }
}

async fn list(
    State(db): State<Db>,
    Query(query): Query<ListQuery>,
    render: Render,
) -> Result<Html> {
    let page = store::page(&db, &query.q, query.page()).await?;
    render.page(
        "notes/list.html",
        context! { page => Serde(&page), q => query.q.trim(), form => Serde(NoteForm::default()) },
    )
}

/// The rows of one page, for infinite scroll.
async fn rows(
    State(db): State<Db>,
    Query(query): Query<ListQuery>,
    render: Render,
) -> Result<Html> {
    let page = store::page(&db, &query.q, query.page()).await?;
    render.partial("notes/_rows.html", context! { page => Serde(&page), q => query.q.trim() })
}

async fn new(render: Render) -> Result<Response> {
    form_page(&render, StatusCode::OK, None, &NoteForm::default(), &[])
}

async fn create(
    State(db): State<Db>,
    render: Render,
    messages: Messages,
    Form(form): Form<NoteForm>,
) -> Result<Response> {
    let errors = form.errors();
    if !errors.is_empty() {
        if render.is_htmx() {
            // The inline form on the list page: swap the form itself, not the list.
            let html =
                render.partial("notes/_form.html", form_context(None, &form, &errors, true))?;
            let mut res = (StatusCode::UNPROCESSABLE_ENTITY, html).into_response();
            res.headers_mut().insert(
                HeaderName::from_static("hx-retarget"),
                HeaderValue::from_static("#new-note"),
            );
            res.headers_mut().insert(
                HeaderName::from_static("hx-reswap"),
                HeaderValue::from_static("outerHTML"),
            );
            return Ok(res);
        }
        return form_page(&render, StatusCode::UNPROCESSABLE_ENTITY, None, &form, &errors);
    }
    let note = store::create(&db, form).await?;
    messages.success(format!("Created “{}”.", note.title))?;
    if render.is_htmx() {
        return Ok(render
            .partial("notes/_created.html", context! { note => Serde(&note) })?
            .into_response());
    }
    Ok(Redirect::to(&format!("/notes/{}", note.id)).into_response())
}

async fn show(State(db): State<Db>, Path(id): Path<i64>, render: Render) -> Result<Html> {
    let note = store::get(&db, id).await?.ok_or_else(Error::not_found)?;
    render.page("notes/detail.html", context! { note => Serde(&note) })
}

async fn edit(State(db): State<Db>, Path(id): Path<i64>, render: Render) -> Result<Response> {
    let note = store::get(&db, id).await?.ok_or_else(Error::not_found)?;
    form_page(&render, StatusCode::OK, Some(note.id), &NoteForm::from_note(&note), &[])
}

async fn update(
    State(db): State<Db>,
    Path(id): Path<i64>,
    render: Render,
    messages: Messages,
    Form(form): Form<NoteForm>,
) -> Result<Response> {
    let errors = form.errors();
    if !errors.is_empty() {
        // Editing a note that was deleted meanwhile is a 404, not a validation error.
        store::get(&db, id).await?.ok_or_else(Error::not_found)?;
        return form_page(&render, StatusCode::UNPROCESSABLE_ENTITY, Some(id), &form, &errors);
    }
    let note = store::update(&db, id, form).await?.ok_or_else(Error::not_found)?;
    messages.success("Saved your changes.")?;
    Ok(Redirect::to(&format!("/notes/{}", note.id)).into_response())
}

async fn delete(State(db): State<Db>, Path(id): Path<i64>, messages: Messages) -> Result<Response> {
    let title = store::delete(&db, id).await?.ok_or_else(Error::not_found)?;
    messages.success(format!("Deleted “{title}”."))?;
    Ok(Redirect::to("/notes").into_response())
}

/// `hx-delete` from a list row: the row is replaced by a short confirmation.
async fn delete_htmx(
    State(db): State<Db>,
    Path(id): Path<i64>,
    render: Render,
) -> Result<Response> {
    let title = store::delete(&db, id).await?.ok_or_else(Error::not_found)?;
    let mut res = render.partial("notes/_deleted.html", context! { id, title })?.into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The create/edit page; 422 when re-rendered with validation errors.
fn form_page(
    render: &Render,
    status: StatusCode,
    id: Option<i64>,
    form: &NoteForm,
    errors: &[(&'static str, String)],
) -> Result<Response> {
    let html = render.page("notes/form.html", form_context(id, form, errors, false))?;
    Ok((status, html).into_response())
}

fn form_context(
    id: Option<i64>,
    form: &NoteForm,
    errors: &[(&'static str, String)],
    inline: bool,
) -> burrow::minijinja::Value {
    let messages: Vec<String> = errors.iter().map(|(_, m)| m.clone()).collect();
    let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
    let action = match id {
        Some(id) => format!("/notes/{id}"),
        None => "/notes".to_string(),
    };
    context! { id, form => Serde(form), errors => messages, invalid => fields, action, inline }
}

/// Deterministic sample notes: a small vocabulary, so searches find predictable sets.
fn generated(count: usize) -> Vec<(String, String)> {
    const WORDS: &[&str] = &[
        "alpha", "burrow", "cedar", "delta", "ember", "fjord", "granite", "harbor", "indigo",
        "juniper", "kestrel", "lantern", "meadow", "nectar", "orbit", "pebble", "quartz", "raven",
        "saffron", "tundra", "umber", "violet", "willow", "zephyr",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (1..=count)
        .map(|n| {
            let title = format!(
                "Note {n}: {} {}",
                WORDS[next() as usize % WORDS.len()],
                WORDS[next() as usize % WORDS.len()]
            );
            let content: Vec<&str> =
                (0..40).map(|_| WORDS[next() as usize % WORDS.len()]).collect();
            (title, content.join(" "))
        })
        .collect()
}
