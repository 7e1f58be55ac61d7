//! What apps declare for the admin: a [`ModelAdmin`] per table, registered in the
//! [`App::admin`](crate::App::admin) hook on an [`AdminSite`].
//!
//! The declarations live here, below the apps; the `admin` contrib app
//! ([`contrib::admin`](crate::contrib::admin)) turns them into pages under `/admin/`: a
//! list with search, filters, sorting and pages, create and edit with the app's form
//! rules, delete with the rows that cascade, bulk actions and CSV/JSON exports.
//!
//! ```
//! use burrow::admin::{AdminSite, Filter, ModelAdmin};
//! use burrow::forms::Form;
//!
//! #[derive(Form)]
//! struct NoteForm {
//!     #[form(required, max_length = 200)]
//!     title: String,
//!     #[form(widget = "textarea")]
//!     content: String,
//! }
//!
//! fn admin(site: &mut AdminSite) {
//!     site.register(
//!         ModelAdmin::new("notes")
//!             .names("note", "notes")
//!             .form::<NoteForm>()
//!             .list(&["title", "user_id", "updated_at"])
//!             .label_column("title")
//!             .ordering("-updated_at")
//!             .sortable(&["title", "updated_at"])
//!             .search(&["title", "content"])
//!             .relation("user_id", "Author", "users", "username")
//!             .filter(Filter::relation("user_id"))
//!             .filter(Filter::date_range("updated_at", "Updated"))
//!             .readonly(&["created_at", "updated_at"]),
//!     );
//! }
//! # let mut site = AdminSite::default();
//! # admin(&mut site);
//! ```
//!
//! Only what is declared reaches SQL: a sort, filter or column named in a request is
//! looked up among the declared ones, and ignored when it is not there. Names are quoted
//! identifiers, values are always bound parameters.

use std::sync::Arc;

use crate::context::{AppContext, BoxFuture};
use crate::db::search::SearchIndex;
use crate::db::{Conn, Db, DbError, Value};
use crate::error::Error;
use crate::forms::{Errors, Field, Form, FormData};
use crate::i18n::Locale;
/// For [`Column::html`] functions: `text` escaped for HTML.
pub use crate::template::escape;

/// Every admin page the apps registered, grouped by app, for the `admin` contrib app.
#[derive(Default)]
pub struct AdminSite {
    pub(crate) models: Vec<ModelAdmin>,
    pub(crate) links: Vec<AdminLink>,
    /// The app whose hook runs: the group of what it registers.
    pub(crate) app: &'static str,
}

/// A page of an app's own in the admin's sidebar (its handler guards it with
/// `RequireStaff` and extends `admin/base.html`).
#[derive(Clone, Debug)]
pub struct AdminLink {
    pub(crate) app: &'static str,
    pub(crate) label: String,
    pub(crate) path: String,
}

impl AdminSite {
    /// Adds a table's pages under `/admin/{slug}/`.
    pub fn register(&mut self, mut model: ModelAdmin) {
        model.app = self.app;
        self.models.push(model);
    }

    /// Adds a link to a page of the app's own (`path` is on this site, e.g. `/admin/invites/new`).
    pub fn link(&mut self, label: impl Into<String>, path: impl Into<String>) {
        self.links.push(AdminLink { app: self.app, label: label.into(), path: path.into() });
    }

    pub(crate) fn for_app(&mut self, app: &'static str) -> &mut AdminSite {
        self.app = app;
        self
    }

    /// Two models under one slug: the later one would be unreachable.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (i, model) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|m| m.slug == model.slug) {
                return Err(format!(
                    "admin: the slug {:?} is registered twice (by {} and {})",
                    model.slug,
                    self.models.iter().find(|m| m.slug == model.slug).map_or("?", |m| m.app),
                    model.app
                ));
            }
            if !model.slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("admin: the slug {:?} is not a URL segment", model.slug));
            }
            let undeclared = model.relation_fields.iter().find(|c| model.relation_of(c).is_none());
            if let Some(column) = undeclared {
                return Err(format!(
                    "admin: {} edits the relation {column:?}, which it does not declare                      with .relation()",
                    model.slug
                ));
            }
            if model.relation_fields.iter().any(|_| model.form.is_none()) {
                return Err(format!("admin: {} edits relations but has no .form()", model.slug));
            }
        }
        Ok(())
    }
}

/// Who may do something in the admin. Every admin page needs staff; some changes need
/// more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Staff,
    Admin,
    Nobody,
}

impl Access {
    /// Whether a user with these roles has this access.
    pub fn allows(self, is_staff: bool, is_admin: bool) -> bool {
        match self {
            Access::Staff => is_staff || is_admin,
            Access::Admin => is_admin,
            Access::Nobody => false,
        }
    }
}

/// What each role may do with a model (reading its pages needs staff).
#[derive(Clone, Copy, Debug)]
pub struct Permissions {
    pub create: Access,
    pub edit: Access,
    pub delete: Access,
    pub export: Access,
}

impl Default for Permissions {
    fn default() -> Permissions {
        Permissions {
            create: Access::Staff,
            edit: Access::Staff,
            delete: Access::Staff,
            export: Access::Staff,
        }
    }
}

/// A table's admin: how it is listed, searched, filtered, edited and deleted.
#[derive(Clone)]
pub struct ModelAdmin {
    pub(crate) app: &'static str,
    pub(crate) slug: &'static str,
    pub(crate) table: &'static str,
    pub(crate) key: &'static str,
    pub(crate) singular: String,
    pub(crate) plural: String,
    pub(crate) columns: Vec<Column>,
    pub(crate) label_column: Option<&'static str>,
    /// The default order: a column and whether it descends.
    pub(crate) ordering: Option<(&'static str, bool)>,
    pub(crate) sortable: Vec<&'static str>,
    pub(crate) page_size: usize,
    pub(crate) search: Vec<&'static str>,
    pub(crate) search_index: Option<SearchIndex>,
    pub(crate) filters: Vec<Filter>,
    pub(crate) relations: Vec<Relation>,
    pub(crate) choices: Vec<(&'static str, &'static [(&'static str, &'static str)])>,
    pub(crate) form: Option<FormSpec>,
    pub(crate) readonly: Vec<&'static str>,
    pub(crate) permissions: Permissions,
    pub(crate) actions: Vec<Action>,
    pub(crate) before_change: Option<BeforeChange>,
    pub(crate) after_change: Vec<AfterChange>,
    pub(crate) created_by: Option<&'static str>,
    pub(crate) shown: Vec<(&'static str, Shown)>,
    pub(crate) database: Option<fn(&AppContext) -> Db>,
    pub(crate) create_with: Option<CreateWith>,
    /// Relations edited on the form, as selects of the related rows.
    pub(crate) relation_fields: Vec<&'static str>,
}

/// Creates a row from a valid submission instead of the admin's `INSERT` (for tables whose
/// rows need more than their form's values, e.g. an invite's token): gets the server's
/// context, the id of the staff user creating it, the language of their request and the
/// form's values by column; returns the new row's id and what to tell the user.
pub type CreateWith = Arc<
    dyn Fn(
            AppContext,
            i64,
            Locale,
            Vec<(&'static str, Value)>,
        ) -> BoxFuture<'static, Result<(i64, String), Error>>
        + Send
        + Sync,
>;

/// A check of a change against the database, run in the write transaction that makes it,
/// before it: `Ok(Err(message))` refuses it with that message (e.g. "the last admin
/// cannot be demoted"), shown in the user's language when the message is a catalog key. It
/// may also write (what it writes is rolled back with the change).
pub type BeforeChange =
    Arc<dyn Fn(&Conn, Change<'_>) -> Result<Result<(), String>, DbError> + Send + Sync>;

/// Work done in the write transaction of a change, after it.
pub type AfterChange = Arc<dyn Fn(&Conn, Change<'_>) -> Result<(), DbError> + Send + Sync>;

/// How a column is shown, when not as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// JSON text, indented on a row's page.
    Json,
    /// Milliseconds since the Unix epoch, as a UTC time.
    UnixMillis,
}

/// A change the admin is about to make (to [`BeforeChange`]) or made (to [`AfterChange`]).
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// A new row with these columns and values.
    Create(&'a [(&'static str, Value)]),
    /// Row `id` gets these columns and values.
    Edit(i64, &'a [(&'static str, Value)]),
    /// Rows deleted (one, or a bulk delete).
    Delete(&'a [i64]),
}

/// The editable fields of a model and how a submission becomes column values: a
/// `#[derive(Form)]` type's, so the admin validates with the app's own rules.
#[derive(Clone, Copy)]
pub(crate) struct FormSpec {
    pub(crate) fields: fn() -> &'static [Field],
    pub(crate) read: fn(&FormData) -> Result<Vec<Value>, Errors>,
}

fn read_form<F: Form>(data: &FormData) -> Result<Vec<Value>, Errors> {
    F::from_data(data).map(|form| form.db_values())
}

/// A column of the list.
#[derive(Clone)]
pub struct Column {
    pub(crate) name: &'static str,
    pub(crate) label: Option<String>,
    pub(crate) computed: Option<Computed>,
}

/// A column computed from the row: text (escaped when shown) or trusted HTML.
#[derive(Clone)]
pub(crate) struct Computed {
    pub(crate) html: bool,
    pub(crate) f: Arc<dyn Fn(&AdminRow) -> String + Send + Sync>,
}

impl Column {
    /// A column of the table, shown as stored (relations and choices by their label).
    pub fn field(name: &'static str) -> Column {
        Column { name, label: None, computed: None }
    }

    /// Text computed from the row, escaped when shown.
    pub fn computed(
        name: &'static str,
        label: impl Into<String>,
        f: impl Fn(&AdminRow) -> String + Send + Sync + 'static,
    ) -> Column {
        let computed = Some(Computed { html: false, f: Arc::new(f) });
        Column { name, label: Some(label.into()), computed }
    }

    /// HTML computed from the row, shown as is: the function escapes what it puts in
    /// ([`escape`]).
    pub fn html(
        name: &'static str,
        label: impl Into<String>,
        f: impl Fn(&AdminRow) -> String + Send + Sync + 'static,
    ) -> Column {
        let computed = Some(Computed { html: true, f: Arc::new(f) });
        Column { name, label: Some(label.into()), computed }
    }

    pub fn label(mut self, label: impl Into<String>) -> Column {
        self.label = Some(label.into());
        self
    }
}

/// A row as the admin read it: every column of the table, by name.
#[derive(Clone, Debug, Default)]
pub struct AdminRow {
    pub(crate) columns: Arc<[String]>,
    pub(crate) values: Vec<Value>,
}

impl AdminRow {
    pub fn get(&self, column: &str) -> Option<&Value> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.values.get(i)
    }

    /// The column as text (`""` for NULL, numbers in decimal).
    pub fn text(&self, column: &str) -> String {
        self.get(column).map(value_text).unwrap_or_default()
    }

    pub fn id(&self) -> i64 {
        match self.values.first() {
            Some(Value::Integer(id)) => *id,
            _ => 0,
        }
    }
}

/// Columns of types burrow cannot read (PostgreSQL's `tsvector` of a search index, …) are
/// left out: the admin shows and exports what it can read.
impl crate::db::FromRow for AdminRow {
    fn from_row(row: &crate::db::Row) -> Result<Self, DbError> {
        let mut columns = Vec::with_capacity(row.len());
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            match row.value_at(i) {
                Ok(value) => {
                    columns.push(row.column_name(i).unwrap_or_default().to_string());
                    values.push(value);
                }
                Err(DbError::Decode { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(AdminRow { columns: columns.into(), values })
    }
}

/// A value as the admin shows and exports it.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("({} bytes)", b.len()),
    }
}

/// How many related rows a relation's filter and select offer.
pub const RELATED_CHOICES: usize = 500;

/// A column that points at another table's row, shown by that row's label.
#[derive(Clone, Debug)]
pub(crate) struct Relation {
    pub(crate) column: &'static str,
    pub(crate) label: &'static str,
    pub(crate) table: &'static str,
    pub(crate) key: &'static str,
    pub(crate) label_column: &'static str,
}

/// A filter of the list, in its sidebar; its values arrive as query parameters.
#[derive(Clone, Debug)]
pub struct Filter {
    pub(crate) column: &'static str,
    pub(crate) label: Option<String>,
    pub(crate) kind: FilterKind,
}

#[derive(Clone, Debug)]
pub(crate) enum FilterKind {
    /// `?column=value`, one of these.
    Choices(Vec<(String, String)>),
    /// `?column=1|0`.
    Boolean,
    /// `?column__from=YYYY-MM-DD&column__to=YYYY-MM-DD` (both days included).
    DateRange(Stored),
    /// `?column=id`, the related rows as choices.
    Relation,
}

/// How a date column stores its instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// UTC text, RFC 3339 (`2026-12-03T10:00:00Z`, burrow's default), or PostgreSQL
    /// timestamps.
    Text,
    /// Milliseconds since the Unix epoch (the jobs table).
    UnixMillis,
}

impl Filter {
    /// A column whose value is one of `choices` (`(value, label)` pairs).
    pub fn choices(column: &'static str, label: &str, choices: &[(&str, &str)]) -> Filter {
        let choices = choices.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect();
        Filter { column, label: Some(label.into()), kind: FilterKind::Choices(choices) }
    }

    /// A 0/1 column: yes or no.
    pub fn boolean(column: &'static str, label: &str) -> Filter {
        Filter { column, label: Some(label.into()), kind: FilterKind::Boolean }
    }

    /// A date column, from one day to another.
    pub fn date_range(column: &'static str, label: &str) -> Filter {
        Filter { column, label: Some(label.into()), kind: FilterKind::DateRange(Stored::Text) }
    }

    /// A date range over a column of Unix milliseconds.
    pub fn date_range_millis(column: &'static str, label: &str) -> Filter {
        let kind = FilterKind::DateRange(Stored::UnixMillis);
        Filter { column, label: Some(label.into()), kind }
    }

    /// A column declared with [`ModelAdmin::relation`]: its rows as choices.
    pub fn relation(column: &'static str) -> Filter {
        Filter { column, label: None, kind: FilterKind::Relation }
    }
}

/// An action on selected rows (bulk, from the list) or on one row (a button on its page).
#[derive(Clone)]
pub struct Action {
    pub(crate) name: &'static str,
    pub(crate) label: String,
    pub(crate) access: Access,
    /// Shown on each row's page too.
    pub(crate) row: bool,
    /// Asks for confirmation first.
    pub(crate) confirm: bool,
    pub(crate) run: ActionFn,
}

/// Runs in one write transaction over the selected ids; returns what to tell the user.
pub type ActionFn = Arc<dyn Fn(&Conn, &[i64]) -> Result<ActionMessage, DbError> + Send + Sync>;

/// What an action tells the user: a text, or the key of a catalog text with arguments,
/// shown in the user's language (the number of rows the action ran on is `{count}`, which
/// also picks the plural form). A `String` or `&str` converts into it: a catalog key is
/// translated, other text shown as it is.
#[derive(Clone, Debug)]
pub struct ActionMessage {
    text: String,
    args: Vec<(&'static str, String)>,
}

impl ActionMessage {
    /// The catalog text `key`; add its arguments with [`arg`](Self::arg).
    pub fn key(key: impl Into<String>) -> ActionMessage {
        ActionMessage { text: key.into(), args: Vec::new() }
    }

    /// Fills in `{name}` with `value`.
    pub fn arg(mut self, name: &'static str, value: impl std::fmt::Display) -> ActionMessage {
        self.args.push((name, value.to_string()));
        self
    }

    /// The text in `locale`'s language, for an action that ran on `count` rows.
    pub(crate) fn say(&self, locale: &crate::i18n::Locale, count: usize) -> String {
        let mut args: Vec<(&str, &dyn std::fmt::Display)> = vec![("count", &count)];
        args.extend(self.args.iter().map(|(name, value)| (*name, value as &dyn std::fmt::Display)));
        locale.get(&self.text, &args).unwrap_or_else(|| self.text.clone())
    }
}

impl From<String> for ActionMessage {
    fn from(text: String) -> ActionMessage {
        ActionMessage::key(text)
    }
}

impl From<&str> for ActionMessage {
    fn from(text: &str) -> ActionMessage {
        ActionMessage::key(text)
    }
}

impl Action {
    /// An action named `name` (in URLs and the admin log), labelled `label`, that runs `run`
    /// over the selected ids in one write transaction and returns a message for the user.
    pub fn new<M>(
        name: &'static str,
        label: impl Into<String>,
        run: impl Fn(&Conn, &[i64]) -> Result<M, DbError> + Send + Sync + 'static,
    ) -> Action
    where
        M: Into<ActionMessage>,
    {
        Action {
            name,
            label: label.into(),
            access: Access::Staff,
            row: false,
            confirm: false,
            run: Arc::new(move |c, ids| run(c, ids).map(Into::into)),
        }
    }

    /// Also a button on each row's page.
    pub fn on_rows(mut self) -> Action {
        self.row = true;
        self
    }

    /// Asks for confirmation, listing the rows, before it runs.
    pub fn confirm(mut self) -> Action {
        self.confirm = true;
        self
    }

    pub fn access(mut self, access: Access) -> Action {
        self.access = access;
        self
    }
}

impl ModelAdmin {
    /// The admin of table `slug` (the table's name and the URL's; see [`table`](Self::table)),
    /// keyed by the integer column `id`, listed 20 to a page, read only until
    /// [`form`](Self::form) declares what can be edited.
    pub fn new(slug: &'static str) -> ModelAdmin {
        ModelAdmin {
            app: "",
            slug,
            table: slug,
            key: "id",
            singular: slug.trim_end_matches('s').replace('_', " "),
            plural: slug.replace('_', " "),
            columns: Vec::new(),
            label_column: None,
            ordering: None,
            sortable: Vec::new(),
            page_size: 20,
            search: Vec::new(),
            search_index: None,
            filters: Vec::new(),
            relations: Vec::new(),
            choices: Vec::new(),
            form: None,
            readonly: Vec::new(),
            permissions: Permissions::default(),
            actions: Vec::new(),
            before_change: None,
            after_change: Vec::new(),
            created_by: None,
            shown: Vec::new(),
            database: None,
            create_with: None,
            relation_fields: Vec::new(),
        }
    }

    /// The table, when it is not named like the slug.
    pub fn table(mut self, table: &'static str) -> Self {
        self.table = table;
        self
    }

    /// The integer key column, when it is not `id`.
    pub fn key(mut self, key: &'static str) -> Self {
        self.key = key;
        self
    }

    /// How one row and many are called ("note", "notes").
    pub fn names(mut self, singular: impl Into<String>, plural: impl Into<String>) -> Self {
        self.singular = singular.into();
        self.plural = plural.into();
        self
    }

    /// The list's columns, in order (besides computed ones added with [`column`](Self::column)).
    pub fn list(mut self, columns: &[&'static str]) -> Self {
        self.columns.extend(columns.iter().map(|c| Column::field(c)));
        self
    }

    /// One more list column, e.g. [`Column::computed`].
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// The column that names a row (in titles, the log, confirmations); else `#id`.
    pub fn label_column(mut self, column: &'static str) -> Self {
        self.label_column = Some(column);
        self
    }

    /// The default order: a column, `-column` for descending. Ties go by key.
    pub fn ordering(mut self, column: &'static str) -> Self {
        self.ordering = Some(match column.strip_prefix('-') {
            Some(column) => (column, true),
            None => (column, false),
        });
        self
    }

    /// Columns the list can be sorted by (`?sort=column` or `?sort=-column`).
    pub fn sortable(mut self, columns: &[&'static str]) -> Self {
        self.sortable.extend_from_slice(columns);
        self
    }

    pub fn page_size(mut self, rows: usize) -> Self {
        self.page_size = rows.max(1);
        self
    }

    /// Columns `?q=` searches: every word must appear in one of them (case-insensitive
    /// `LIKE`, with `%` and `_` taken literally).
    pub fn search(mut self, columns: &[&'static str]) -> Self {
        self.search.extend_from_slice(columns);
        self
    }

    /// Searches with the table's full-text index instead of `LIKE` ([`SearchIndex`]).
    pub fn search_index(mut self, index: SearchIndex) -> Self {
        self.search_index = Some(index);
        self
    }

    pub fn filter(mut self, filter: Filter) -> Self {
        self.filters.push(filter);
        self
    }

    /// `column` holds the key of a row of `table` (its `key` column), shown by that row's
    /// `label_column`, and labelled `label`.
    pub fn relation(
        mut self,
        column: &'static str,
        label: &'static str,
        table: &'static str,
        label_column: &'static str,
    ) -> Self {
        self.relations.push(Relation { column, label, table, key: "id", label_column });
        self
    }

    /// `column` (declared with [`relation`](Self::relation)) is edited on the form too,
    /// after the form type's fields: a select of the related rows by label (the first
    /// [`RELATED_CHOICES`]). A value that is not a related row's key is refused.
    pub fn edit_relation(mut self, column: &'static str) -> Self {
        self.relation_fields.push(column);
        self
    }

    /// `column`'s values are shown by these labels.
    pub fn choices(
        mut self,
        column: &'static str,
        choices: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.choices.push((column, choices));
        self
    }

    /// The fields that can be created and edited, with their rules: a `#[derive(Form)]`
    /// type whose fields are named like the table's columns.
    pub fn form<F: Form + 'static>(mut self) -> Self {
        self.form = Some(FormSpec { fields: F::fields, read: read_form::<F> });
        self
    }

    /// Columns shown (not editable) on a row's page.
    pub fn readonly(mut self, columns: &[&'static str]) -> Self {
        self.readonly.extend_from_slice(columns);
        self
    }

    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// An action on selected rows (and, with [`Action::on_rows`], on a row's page).
    pub fn action(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// A check of every change against the database, in its write transaction, before it
    /// ([`BeforeChange`]).
    pub fn before_change(
        mut self,
        f: impl Fn(&Conn, Change<'_>) -> Result<Result<(), String>, DbError> + Send + Sync + 'static,
    ) -> Self {
        self.before_change = Some(Arc::new(f));
        self
    }

    /// Work in the write transaction of every change, after it.
    pub fn after_change(
        mut self,
        f: impl Fn(&Conn, Change<'_>) -> Result<(), DbError> + Send + Sync + 'static,
    ) -> Self {
        self.after_change.push(Arc::new(f));
        self
    }

    /// Rows created in the admin get the creating user's id in `column` (Django's
    /// `obj.author = request.user` in `save_model`); when the column is also an
    /// [`edit_relation`](Self::edit_relation), the creating user is its first choice.
    pub fn created_by(mut self, column: &'static str) -> Self {
        self.created_by = Some(column);
        self
    }

    /// The database the table is in, when it is not the server's (the jobs table with
    /// `--jobs-database`). Changes are logged in the server's database once they commit.
    pub fn database(mut self, db_of: fn(&AppContext) -> Db) -> Self {
        self.database = Some(db_of);
        self
    }

    /// Creates rows with `f` instead of an `INSERT` of the form's values ([`CreateWith`]).
    pub fn create_with<Fut>(
        mut self,
        f: impl Fn(AppContext, i64, Locale, Vec<(&'static str, Value)>) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: std::future::Future<Output = Result<(i64, String), Error>> + Send + 'static,
    {
        self.create_with =
            Some(Arc::new(move |ctx, user, locale, values| Box::pin(f(ctx, user, locale, values))));
        self
    }

    /// Shows `columns` as [`Shown`] says (JSON indented, Unix milliseconds as times).
    pub fn show(mut self, columns: &[&'static str], shown: Shown) -> Self {
        self.shown.extend(columns.iter().map(|c| (*c, shown)));
        self
    }

    pub(crate) fn shown_as(&self, column: &str) -> Option<Shown> {
        self.shown.iter().find(|(c, _)| *c == column).map(|(_, s)| *s)
    }

    pub(crate) fn relation_of(&self, column: &str) -> Option<&Relation> {
        self.relations.iter().find(|r| r.column == column)
    }

    pub(crate) fn choices_of(
        &self,
        column: &str,
    ) -> Option<&'static [(&'static str, &'static str)]> {
        self.choices.iter().find(|(c, _)| *c == column).map(|(_, choices)| *choices)
    }
}
