//! Notes: create, edit, delete, validation, pagination, full-text search, htmx partials.

mod store;

use burrow::axum::extract::{Query, State};
use burrow::axum::http::{HeaderValue, header};
use burrow::axum::response::{IntoResponse, Redirect, Response};
use burrow::axum::routing::get;
use burrow::axum::{Router, routing::post};
use burrow::clap::{Arg, value_parser};
use burrow::contrib::messages::Messages;
use burrow::forms::{Form, FormResult, Valid};
use burrow::minijinja::context;
use burrow::minijinja::value::Serde;
use burrow::{
    App, AppContext, AppFiles, BoxError, Command, Db, Error, Html, NavItem, Paginator, Path,
    Render, Result,
};
use serde::Deserialize;

use store::NoteForm;

static FILES: AppFiles = burrow::app_files!("src/notes");

pub struct Notes;

impl App for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }

    /// Notes' templates extend the layout of the pages app; handlers flash messages.
    fn dependencies(&self) -> &'static [&'static str] {
        &["pages", "messages"]
    }

    fn files(&self) -> Option<&'static AppFiles> {
        Some(&FILES)
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
        context! { page => Serde(&page), q => query.q.trim(), form => NoteForm::blank() },
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

async fn new(render: Render) -> Result<Html> {
    render.page("notes/form.html", form_context(None, false))
}

async fn create(
    State(db): State<Db>,
    render: Render,
    messages: Messages,
    form: FormResult<NoteForm>,
) -> Result<Response> {
    let form = match form {
        Ok(Valid(form)) => form,
        // htmx posts only from the inline form of the list page: that form replaces itself
        // (named, not taken from HX-Trigger, since the partial is always that form).
        Err(invalid) if render.is_htmx() => {
            let invalid = invalid.retarget("#new-note");
            return invalid.partial(&render, "notes/_form.html", form_context(None, true));
        }
        Err(invalid) => return invalid.page(&render, "notes/form.html", form_context(None, false)),
    };
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

async fn edit(State(db): State<Db>, Path(id): Path<i64>, render: Render) -> Result<Html> {
    let note = store::get(&db, id).await?.ok_or_else(Error::not_found)?;
    let form = NoteForm::from_note(&note).bound();
    render.page("notes/form.html", context! { form, ..form_context(Some(note.id), false) })
}

async fn update(
    State(db): State<Db>,
    Path(id): Path<i64>,
    render: Render,
    messages: Messages,
    form: FormResult<NoteForm>,
) -> Result<Response> {
    let form = match form {
        Ok(Valid(form)) => form,
        Err(invalid) => {
            // Editing a note that was deleted meanwhile is a 404, not a validation error.
            store::get(&db, id).await?.ok_or_else(Error::not_found)?;
            return invalid.page(&render, "notes/form.html", form_context(Some(id), false));
        }
    };
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

/// What the form templates need besides the form: where it posts, and whether it is the
/// inline form of the list page. A blank form unless the caller puts its own first.
fn form_context(id: Option<i64>, inline: bool) -> burrow::minijinja::Value {
    let action = match id {
        Some(id) => format!("/notes/{id}"),
        None => "/notes".to_string(),
    };
    context! { id, action, inline, form => NoteForm::blank() }
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
