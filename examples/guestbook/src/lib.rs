//! The guestbook: the app the tutorial in docs/guide/tutorial.md builds, step by step.

use burrow::prelude::*;

static FILES: AppFiles = app_files!("src");

const TITLE: Setting<String> =
    Setting::new("guestbook.title").default("Guestbook").help("The heading of the page");

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

const NEWEST_FIRST: &str = "SELECT name, message, created_at FROM entries ORDER BY id DESC";

async fn list(db: Db, pages: Paginator, render: Render) -> Result<Html> {
    let page: Page<Entry> = db.read(move |c| c.query_page(NEWEST_FIRST, &[], pages)).await?;
    render.page("guestbook.html", context! { page, form => EntryForm::blank() })
}

async fn sign(
    db: Db,
    render: Render,
    messages: Messages,
    form: FormResult<EntryForm>,
) -> Result<Response> {
    let entry = match form {
        Ok(Valid(entry)) => entry,
        Err(invalid) => {
            let first = Paginator::default();
            let page: Page<Entry> =
                db.read(move |c| c.query_page(NEWEST_FIRST, &[], first)).await?;
            return invalid.page(&render, "guestbook.html", context! { page });
        }
    };
    let thanks = format!("Thank you for signing, {}!", entry.name);
    let sql = "INSERT INTO entries (name, message) VALUES (?, ?)";
    db.write(move |c| c.execute(sql, params![entry.name, entry.message])).await?;
    messages.success(thanks)?;
    Ok(Redirect::to("/").into_response())
}

/// The guestbook's server: the default apps (theme, sessions, CSRF, flash messages) and
/// the guestbook app.
pub fn server() -> Server {
    let guestbook = AppBuilder::new("guestbook").files(&FILES).settings(&[&TITLE]);
    Server::new("guestbook", env!("CARGO_PKG_VERSION"))
        .about("A guestbook: the Burrow tutorial's app")
        .defaults("Guestbook")
        .app(guestbook.routes(Router::new().route("/", get(list).post(sign))))
}
