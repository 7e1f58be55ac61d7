//! Notes: create, edit, delete, validation, pagination, full-text search, htmx partials.
//! Each note belongs to its author: every page needs a signed-in user ([`RequireAuth`]),
//! and shows only that user's notes (another user's note is a 404, as if it did not exist).
//! `server adopt-notes USERNAME` gives notes without an author (from before accounts) away.
//! "Export" makes a JSON file of the user's notes in the background ([`export`]). Notes
//! carry attached files ([`attachments`]).

mod admin;
mod attachments;
mod export;
mod store;

pub use attachments::SweepAttachments;
pub use export::ExportNotes;

use burrow::axum::extract::{Query, State};
use burrow::axum::http::{HeaderValue, header};
use burrow::axum::response::{IntoResponse, Redirect, Response};
use burrow::axum::routing::get;
use burrow::axum::{Router, routing::post};
use burrow::clap::{Arg, value_parser};
use burrow::contrib::auth::{RequireAuth, users};
use burrow::contrib::messages::Messages;
use burrow::forms::{Form, FormResult, Valid};
use burrow::i18n::Locale;
use burrow::jobs::JobRegistry;
use burrow::minijinja::context;
use burrow::minijinja::value::Serde;
use burrow::{
    App, AppContext, AppFiles, BoxError, Command, Db, Error, Html, NavItem, Paginator, Path,
    Render, Result, Storage,
};
use serde::Deserialize;

use export::ExportNotice;
use store::{Author, NoteForm};

static FILES: AppFiles = burrow::app_files!("src/notes");

pub struct Notes;

impl App for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }

    /// Notes' templates extend the layout of the pages app; handlers flash messages; notes
    /// belong to the auth app's users (whose table its migrations refer to); exports are
    /// made by the job queue.
    fn dependencies(&self) -> &'static [&'static str] {
        &["pages", "messages", "auth", "jobs"]
    }

    fn files(&self) -> Option<&'static AppFiles> {
        Some(&FILES)
    }

    fn admin(&self, site: &mut burrow::admin::AdminSite) {
        admin::register(site);
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![
            NavItem::new("Notes", "/notes").order(10).signed_in(),
            NavItem::new("New note", "/notes/new").order(20).signed_in(),
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
            .route("/notes/{id}/attachments", post(attachments::create))
            .route("/notes/{id}/attachments/{attachment}", get(attachments::download))
            .route("/notes/export", post(export::start))
            .route("/notes/exports/", get(export::list))
            .route("/notes/exports/{id}/download", get(export::download))
            .with_state(ctx.db.clone())
    }

    fn jobs(&self, jobs: &mut JobRegistry) {
        jobs.register::<ExportNotes>();
        jobs.every(SweepAttachments::EVERY, SweepAttachments);
    }

    fn commands(&self) -> Vec<Command> {
        let cli = burrow::clap::Command::new("generate-notes")
            .about("Insert generated notes (for demos and benchmarks)")
            .arg(
                Arg::new("user")
                    .long("user")
                    .value_name("USERNAME")
                    .help("Whose notes they are [default: the first admin]"),
            )
            .arg(
                Arg::new("count")
                    .long("count")
                    .value_name("N")
                    .default_value("100")
                    .value_parser(value_parser!(u32).range(1..=10_000_000))
                    .help("How many notes"),
            );
        let adopt = burrow::clap::Command::new("adopt-notes")
            .about("Give the notes without an author (written before accounts) to a user")
            .arg(Arg::new("username").required(true).help("Who gets them"));
        let adopt = Command::new(adopt, |ctx, args| async move {
            let name = args.get_one::<String>("username").expect("required").clone();
            let wanted = name.clone();
            let user = ctx.db.read(move |c| users::by_username(c, &wanted)).await?;
            let user = user.ok_or_else(|| format!("no user '{name}'"))?;
            let adopted = store::adopt(&ctx.db, Author::of(&user)).await?;
            println!("{adopted} note(s) without an author now belong to {name}.");
            Ok(())
        });
        vec![
            adopt,
            Command::new(cli, |ctx, args| async move {
                let count = *args.get_one::<u32>("count").expect("count has a default");
                let author = match args.get_one::<String>("user") {
                Some(name) => {
                    let wanted = name.clone();
                    let user = ctx.db.read(move |c| users::by_username(c, &wanted)).await?;
                    user.ok_or_else(|| format!("no user '{name}'"))?
                }
                None => store::first_admin(&ctx.db).await?.ok_or(
                    "no account to own the notes: create one (server users create NAME) or pass \
                     --user",
                )?,
            };
                store::insert_many(&ctx.db, Author::of(&author), generated(count as usize)).await?;
                println!("Inserted {count} notes for {}.", author.username);
                Ok(())
            }),
        ]
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
        // Notes need an author: the first admin's, once there is one.
        let Some(admin) = store::first_admin(&ctx.db).await? else {
            println!(
                "notes: no sample notes (they need an author): register the first account, or \
                 `server users create NAME`, then seed again."
            );
            return Ok(());
        };
        let added = store::insert_missing(&ctx.db, Author::of(&admin), samples).await?;
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
    RequireAuth(user): RequireAuth,
    Query(query): Query<ListQuery>,
    export_notice: ExportNotice,
    render: Render,
) -> Result<Html> {
    let page = store::page(&db, Author::of(&user), &query.q, query.page()).await?;
    render.page(
        "notes/list.html",
        context! {
            page => Serde(&page),
            q => query.q.trim(),
            form => NoteForm::blank(),
            export_notice => Serde(export_notice.take()),
        },
    )
}

/// The rows of one page, for infinite scroll.
async fn rows(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Query(query): Query<ListQuery>,
    render: Render,
) -> Result<Html> {
    let page = store::page(&db, Author::of(&user), &query.q, query.page()).await?;
    render.partial("notes/_rows.html", context! { page => Serde(&page), q => query.q.trim() })
}

async fn new(_: RequireAuth, export_notice: ExportNotice, render: Render) -> Result<Html> {
    let export_notice = Serde(export_notice.take());
    render.page("notes/form.html", context! { export_notice, ..form_context(None, false) })
}

async fn create(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    (render, locale): (Render, Locale),
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
    let note = store::create(&db, Author::of(&user), form).await?;
    messages.success(locale.t_args("notes-created", &[("title", &note.title)]))?;
    if render.is_htmx() {
        return Ok(render
            .partial("notes/_created.html", context! { note => Serde(&note) })?
            .into_response());
    }
    Ok(Redirect::to(&format!("/notes/{}", note.id)).into_response())
}

async fn show(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
    export_notice: ExportNotice,
    render: Render,
) -> Result<Html> {
    let note = store::get(&db, Author::of(&user), id).await?.ok_or_else(Error::not_found)?;
    let export_notice = Serde(export_notice.take());
    let page = attachments::page_context(&db, &note).await?;
    render.page("notes/detail.html", context! { export_notice, ..page })
}

async fn edit(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
    export_notice: ExportNotice,
    render: Render,
) -> Result<Html> {
    let note = store::get(&db, Author::of(&user), id).await?.ok_or_else(Error::not_found)?;
    let form = NoteForm::from_note(&note).bound();
    let export_notice = Serde(export_notice.take());
    render.page(
        "notes/form.html",
        context! { form, export_notice, ..form_context(Some(note.id), false) },
    )
}

async fn update(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
    (render, locale): (Render, Locale),
    messages: Messages,
    form: FormResult<NoteForm>,
) -> Result<Response> {
    let form = match form {
        Ok(Valid(form)) => form,
        Err(invalid) => {
            // Editing a note that was deleted meanwhile is a 404, not a validation error.
            store::get(&db, Author::of(&user), id).await?.ok_or_else(Error::not_found)?;
            return invalid.page(&render, "notes/form.html", form_context(Some(id), false));
        }
    };
    let author = Author::of(&user);
    let note = store::update(&db, author, id, form).await?.ok_or_else(Error::not_found)?;
    messages.success(locale.t("notes-saved"))?;
    Ok(Redirect::to(&format!("/notes/{}", note.id)).into_response())
}

async fn delete(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
    storage: Storage,
    locale: Locale,
    messages: Messages,
) -> Result<Response> {
    let title = store::delete(&db, Author::of(&user), id).await?.ok_or_else(Error::not_found)?;
    attachments::sweep(&db, &storage).await?;
    messages.success(locale.t_args("notes-deleted", &[("title", &title)]))?;
    Ok(Redirect::to("/notes").into_response())
}

/// `hx-delete` from a list row: the row is replaced by a short confirmation.
async fn delete_htmx(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
    storage: Storage,
    render: Render,
) -> Result<Response> {
    let title = store::delete(&db, Author::of(&user), id).await?.ok_or_else(Error::not_found)?;
    attachments::sweep(&db, &storage).await?;
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
