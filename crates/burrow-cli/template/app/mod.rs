//! The {{app}} app: a list of items and a form that adds one. Everything it owns is in this
//! folder, compiled into the binary: its routes (here), `migrations/`, `templates/{{app}}/`
//! and `static/{{app}}/` (named after the app, as apps share one namespace for each).

use burrow::axum::extract::RawQuery;
use burrow::forms::Form;
use burrow::minijinja::Value;
use burrow::minijinja::value::Serde;
use burrow::prelude::*;
use serde::Serialize;

static MIGRATIONS: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/src/{{app}}/migrations");
static TEMPLATES: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/src/{{app}}/templates");
static STATIC: Dir<'static> = embed_dir!("$CARGO_MANIFEST_DIR/src/{{app}}/static");

/// The page: the list and the form.
const PAGE: &str = "{{app}}/index.html";

/// The app, registered in `src/lib.rs`; it serves `{{path}}`.
pub struct {{App}};

impl App for {{App}} {
    fn name(&self) -> &'static str {
        "{{app}}"
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

    fn nav_items(&self) -> Vec<NavItem> {
        vec![NavItem::new("{{app_title}}", "{{path}}")]
    }

    fn routes(&self, ctx: &AppContext) -> Router {
        Router::new().route("{{path}}", get(list).post(add)).with_state(ctx.db.clone())
    }
}

/// A row of `{{app}}_items`, as the template shows it.
#[derive(Serialize, FromRow)]
struct Item {
    title: String,
    created_at: String,
}

/// The form that adds an item: the rules are checked here and also given to the browser.
#[derive(Form)]
struct ItemForm {
    #[form(required, max_length = 200)]
    title: String,
}

/// One page of items, newest first, for the page.
async fn items(db: &Db, query: Option<String>) -> Result<Value> {
    let paginator = Paginator::from_query(query.as_deref(), 20);
    let (limit, offset) = (paginator.limit(), paginator.offset());
    let sql = "SELECT title, created_at FROM {{app}}_items ORDER BY id DESC LIMIT ? OFFSET ?";
    let rows: Vec<Item> = db.read(move |c| c.query(sql, params![limit, offset])).await?;
    Ok(context! { page => Serde(paginator.page_of(rows)) })
}

async fn list(State(db): State<Db>, RawQuery(query): RawQuery, render: Render) -> Result<Html> {
    let page = items(&db, query).await?;
    render.page(PAGE, context! { form => ItemForm::blank(), ..page })
}

/// Adds an item. An invalid form is shown again, as typed, with its errors (422).
async fn add(
    State(db): State<Db>,
    render: Render,
    messages: Messages,
    form: FormResult<ItemForm>,
) -> Result<Response> {
    let item = match form {
        Ok(Valid(item)) => item,
        Err(invalid) => return invalid.page(&render, PAGE, items(&db, None).await?),
    };
    let added = format!("Added “{}”.", item.title);
    let sql = "INSERT INTO {{app}}_items (title) VALUES (?)";
    db.write(move |c| c.execute(sql, params![item.title])).await?;
    messages.success(added)?;
    // A 303 to the list: reloading the page then does not post the form again.
    Ok(Redirect::to("{{path}}").into_response())
}
