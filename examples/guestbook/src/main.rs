//! The guestbook: the app the tutorial in docs/guide/tutorial.md builds, step by step.

use burrow::TemplateEnv;
use burrow::axum::extract::RawQuery;
use burrow::contrib::{csrf::Csrf, messages::FlashMessages, session::Sessions, theme::Theme};
use burrow::forms::Form;
use burrow::minijinja::Value;
use burrow::minijinja::value::Serde;
use burrow::prelude::*;
use serde::Serialize;

static MIGRATIONS: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/src/migrations");
static TEMPLATES: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/src/templates");
static STATIC: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/src/static");

const TITLE: Setting<String> =
    Setting::new("guestbook.title").default("Guestbook").help("The heading of the page");

#[derive(Default)]
struct Guestbook {
    title: String,
}

impl App for Guestbook {
    fn name(&self) -> &'static str {
        "guestbook"
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&TITLE]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        self.title = config.get(&TITLE)?;
        Ok(())
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn static_files(&self) -> Option<&'static Dir<'static>> {
        Some(&STATIC)
    }

    fn template_env(&self, env: &mut TemplateEnv) {
        env.add_global("guestbook_title", self.title.clone());
    }

    fn routes(&self, ctx: &AppContext) -> Router {
        Router::new().route("/", get(list).post(sign)).with_state(ctx.db.clone())
    }
}

#[derive(Serialize, FromRow)]
struct Entry {
    name: String,
    message: String,
    created_at: String,
}

#[derive(Form)]
struct EntryForm {
    #[form(required, max_length = 80)]
    name: String,
    #[form(required, max_length = 1000, widget = "textarea")]
    message: String,
}

/// One page of entries, newest first, for `guestbook.html`.
async fn entries(db: &Db, query: Option<String>) -> Result<Value> {
    let paginator = Paginator::from_query(query.as_deref(), 20);
    let (limit, offset) = (paginator.limit(), paginator.offset());
    let sql = "SELECT name, message, created_at FROM entries ORDER BY id DESC LIMIT ? OFFSET ?";
    let rows: Vec<Entry> = db.read(move |c| c.query(sql, params![limit, offset])).await?;
    Ok(context! { page => Serde(paginator.page_of(rows)) })
}

async fn list(State(db): State<Db>, RawQuery(query): RawQuery, render: Render) -> Result<Html> {
    let page = entries(&db, query).await?;
    render.page("guestbook.html", context! { form => EntryForm::blank(), ..page })
}

async fn sign(
    State(db): State<Db>,
    render: Render,
    messages: Messages,
    form: FormResult<EntryForm>,
) -> Result<Response> {
    let entry = match form {
        Ok(Valid(entry)) => entry,
        Err(invalid) => return invalid.page(&render, "guestbook.html", entries(&db, None).await?),
    };
    let thanks = format!("Thank you for signing, {}!", entry.name);
    let sql = "INSERT INTO entries (name, message) VALUES (?, ?)";
    db.write(move |c| c.execute(sql, params![entry.name, entry.message])).await?;
    messages.success(thanks)?;
    Ok(Redirect::to("/").into_response())
}

fn main() -> std::process::ExitCode {
    Server::new("guestbook", env!("CARGO_PKG_VERSION"))
        .about("A guestbook: the Burrow tutorial's app")
        .app(Theme::new("Guestbook"))
        .app(Sessions::new())
        .app(Csrf::new())
        .app(FlashMessages)
        .app(Guestbook::default())
        .run()
}
