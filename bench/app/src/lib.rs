//! The burrow side of `bench/compare.sh`: three endpoints written as an app author would,
//! on the default apps (theme, sessions, CSRF, flash messages) and every default layer.
//! `bench/bare` does the same work directly on axum + rusqlite + minijinja.
//!
//! - `GET /plaintext`: no database, no template.
//! - `GET /entries`: reads `user` from the signed session cookie, selects the 12 newest
//!   entries, sorts them by name, renders the autoescaped `page.html` (with a CSRF field).
//! - `POST /entries`: the CSRF app checks Origin/Referer and the token, the form is
//!   validated, one INSERT, 303 to `/entries`.
//! - `GET /login`: puts `user` in the session, for the benchmark's client (not measured).
//!
//! The table and its 12 rows come from the migration in `bench/files`, which bench-bare
//! runs too; so is the template.
//!
//! [`server`] is the whole app: `src/main.rs` runs it, `benches/workloads.rs` sends the
//! same requests to its router in-process.

use burrow::minijinja::value::Serde;
use burrow::prelude::*;

// Shared with bench-bare: `bench/files/{migrations,templates}`.
static FILES: AppFiles = app_files!("../files");

/// The page's query; bench-bare runs the same text.
const NEWEST: &str = "SELECT id, name, message, created_at FROM entries ORDER BY id DESC LIMIT 12";
const INSERT: &str = "INSERT INTO entries (name, message) VALUES (?, ?)";

// burrow re-exports serde: the app needs no serde dependency of its own.
#[derive(Serialize, FromRow)]
#[serde(crate = "burrow::serde")]
struct Entry {
    id: i64,
    name: String,
    message: String,
    created_at: String,
}

#[derive(Form)]
struct EntryForm {
    #[form(required, max_length = 80)]
    name: String,
    #[form(required, max_length = 1000)]
    message: String,
}

async fn plaintext() -> &'static str {
    "Hello, World!"
}

async fn page(db: Db, session: Session, render: Render) -> Result<Html> {
    let user: String = session.get("user").unwrap_or_else(|| "nobody".to_string());
    let mut entries: Vec<Entry> = db.read(|c| c.query(NEWEST, &[])).await?;
    // A stable sort: the newest first among equal names, as in bench-bare.
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    render.page("page.html", context! { user, entries => Serde(&entries) })
}

async fn sign(db: Db, form: FormResult<EntryForm>) -> Result<Response> {
    let entry = match form {
        Ok(Valid(entry)) => entry,
        // 422 with the errors; the benchmark never sends an invalid form.
        Err(invalid) => return Ok(invalid.into_response()),
    };
    db.write(move |c| c.execute(INSERT, params![entry.name, entry.message])).await?;
    Ok(Redirect::to("/entries").into_response())
}

async fn login(session: Session) -> Result<Redirect> {
    session.insert("user", "bench")?;
    Ok(Redirect::to("/entries"))
}

/// The server of `bench-app`, the default apps and the bench app.
pub fn server() -> Server {
    let bench = AppBuilder::new("bench").files(&FILES).routes(
        Router::new()
            .route("/plaintext", get(plaintext))
            .route("/entries", get(page).post(sign))
            .route("/login", get(login)),
    );
    Server::new("bench-app", env!("CARGO_PKG_VERSION"))
        .about("Issue 13's workloads on burrow (bench/compare.sh)")
        .defaults("Bench")
        .app(bench)
}
