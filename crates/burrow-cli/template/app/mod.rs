//! The {{app}} app: a list of items and a form that adds one. Everything it owns is in this
//! folder, compiled into the binary: its routes (here), `migrations/`, `templates/{{app}}/`
//! and `static/{{app}}/` (named after the app, as apps share one namespace for each).

use burrow::prelude::*;

static FILES: AppFiles = app_files!("src/{{app}}");

/// The page: the list and the form.
const PAGE: &str = "{{app}}/index.html";

const NEWEST_FIRST: &str = "SELECT title, created_at FROM {{app}}_items ORDER BY id DESC";

/// The app, registered in `src/lib.rs`; it serves `{{path}}`.
pub struct {{App}};

impl App for {{App}} {
    fn name(&self) -> &'static str {
        "{{app}}"
    }

    fn files(&self) -> Option<&'static AppFiles> {
        Some(&FILES)
    }

    fn nav_items(&self) -> Vec<NavItem> {
        vec![NavItem::new("{{app_title}}", "{{path}}")]
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new().route("{{path}}", get(list).post(add))
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

/// The list, twenty items a page (`?page=`), newest first, and an empty form.
async fn list(db: Db, pages: Paginator, render: Render) -> Result<Html> {
    let page: Page<Item> = db.read(move |c| c.query_page(NEWEST_FIRST, &[], pages)).await?;
    render.page(PAGE, context! { page, form => ItemForm::blank() })
}

/// Adds an item. An invalid form is shown again, as typed, with its errors (422).
async fn add(
    db: Db,
    render: Render,
    messages: Messages,
    form: FormResult<ItemForm>,
) -> Result<Response> {
    let item = match form {
        Ok(Valid(item)) => item,
        Err(invalid) => {
            let first = Paginator::default();
            let page: Page<Item> =
                db.read(move |c| c.query_page(NEWEST_FIRST, &[], first)).await?;
            return invalid.page(&render, PAGE, context! { page });
        }
    };
    let added = format!("Added “{}”.", item.title);
    let sql = "INSERT INTO {{app}}_items (title) VALUES (?)";
    db.write(move |c| c.execute(sql, params![item.title])).await?;
    messages.success(added)?;
    // A 303 to the list: reloading the page then does not post the form again.
    Ok(Redirect::to("{{path}}").into_response())
}
