//! Templates: minijinja, embedded per app, layouts, htmx fragments, request-scoped functions.
//!
//! The environment is built once at start-up from every app's embedded templates (a later
//! app overrides an earlier app's template of the same name). Request-scoped functions
//! such as `current_path()`, `nav_links()` or `csrf_token()` are globals of that
//! environment too, registered once; they find the request being rendered with
//! [`request_of`]. A render adds only the request itself to the context (and the values
//! of apps' [`App::request_context`](crate::App::request_context) hooks, if any).
//!
//! Handlers render with the [`Render`] extractor:
//!
//! ```no_run
//! use burrow::{Render, Html, Error};
//! use minijinja::context;
//! async fn home(render: Render) -> Result<Html, Error> {
//!     render.page("home.html", context! { title => "Home" })
//! }
//! ```
//!
//! A page template extends a layout and puts its content in `{% block content %}`. For an
//! htmx request (`HX-Request` without `HX-Boosted`) only that block is rendered.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use minijinja::value::{Value, merge_maps};
use minijinja::{Environment, context};

use crate::error::{Error, Handled, one_line};
use crate::i18n::{self, I18n};
use crate::request::RequestId;

mod escape;
mod filters;

/// The template environment apps add functions, filters and globals to.
pub type TemplateEnv = Environment<'static>;

/// The request as template hooks see it.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Values middleware attached to the request (e.g. the session).
    pub extensions: Extensions,
}

/// The request in a render context, for [`request_of`]; shows nothing to templates.
impl minijinja::value::Object for RequestInfo {}

/// The context key the request is rendered under.
const REQUEST: &str = "__burrow_request";

/// The request being rendered, for template functions that depend on it (registered once
/// with [`App::template_env`](crate::App::template_env)). `None` outside a request's render.
///
/// ```
/// use burrow::template::{TemplateEnv, request_of};
/// fn add_functions(env: &mut TemplateEnv) {
///     env.add_function("method", |state: &burrow::minijinja::State| {
///         request_of(state).map(|r| r.method.to_string()).unwrap_or_default()
///     });
/// }
/// ```
pub fn request_of(state: &minijinja::State) -> Option<Arc<RequestInfo>> {
    state.lookup(REQUEST)?.downcast_object::<RequestInfo>()
}

impl RequestInfo {
    pub fn from_parts(parts: &Parts) -> RequestInfo {
        RequestInfo {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        }
    }

    /// True for an htmx request that wants a fragment (not a boosted full navigation).
    pub fn wants_fragment(&self) -> bool {
        wants_fragment(&self.headers)
    }

    pub fn request_id(&self) -> Option<&str> {
        RequestId::of(&self.extensions).map(|id| id.as_str())
    }
}

/// htmx's request headers, as names known at compile time: looked up by a `&str`, a name is
/// parsed and validated on every call.
pub(crate) const HX_REQUEST: HeaderName = HeaderName::from_static("hx-request");
const HX_BOOSTED: HeaderName = HeaderName::from_static("hx-boosted");

/// True for an htmx request that wants a fragment (not a boosted full navigation).
pub(crate) fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.contains_key(HX_REQUEST) && !headers.contains_key(HX_BOOSTED)
}

/// Request-scoped template values, filled by [`App::request_context`](crate::App::request_context).
#[derive(Default)]
pub struct RequestContext {
    values: BTreeMap<String, Value>,
}

impl RequestContext {
    /// Adds a value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.values.insert(name.into(), value.into());
    }

    /// Adds a function called without arguments, e.g. `{{ csrf_token() }}`. Returned
    /// strings are escaped; use [`Value::from_safe_string`] for markup.
    pub fn function<F, R>(&mut self, name: impl Into<String>, f: F)
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: Into<Value>,
    {
        self.values.insert(name.into(), Value::from_function(move || -> Value { f().into() }));
    }
}

/// A navigation entry contributed by an app, shown by `nav_links()` in templates.
///
/// ```
/// use burrow::NavItem;
/// let items = [
///     NavItem::new("Home", "/"),
///     NavItem::new("Notes", "/notes").order(10).signed_in(),
///     NavItem::new("Admin", "/admin/").order(90).staff(),
/// ];
/// ```
#[derive(Clone, Debug, serde::Serialize)]
pub struct NavItem {
    pub label: &'static str,
    pub path: &'static str,
    /// Lower comes first; ties keep app order.
    pub order: i32,
    /// Who sees it.
    pub audience: Audience,
}

/// Who sees a [`NavItem`]. Who is signed in is the auth app's to say: without it,
/// everyone is anonymous.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Audience {
    #[default]
    Everyone,
    SignedIn,
    Staff,
}

impl NavItem {
    pub const fn new(label: &'static str, path: &'static str) -> Self {
        NavItem { label, path, order: 0, audience: Audience::Everyone }
    }

    pub const fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// Shown to signed-in users only.
    pub const fn signed_in(mut self) -> Self {
        self.audience = Audience::SignedIn;
        self
    }

    /// Shown to staff and admins only.
    pub const fn staff(mut self) -> Self {
        self.audience = Audience::Staff;
        self
    }
}

/// Adds the request-scoped values of every app to a render (the apps'
/// [`App::request_context`](crate::App::request_context) hooks, in app order).
pub(crate) type RequestHooks = Arc<dyn Fn(&RequestInfo, &mut RequestContext) + Send + Sync>;

/// Adds functions, filters and globals to a new environment (the server's and the apps');
/// shared because `--dev` builds the environment again on every change.
pub(crate) type Configure = Arc<dyn Fn(&mut TemplateEnv) + Send + Sync>;

/// Where an app's templates come from.
#[derive(Clone)]
pub(crate) enum TemplateDir {
    /// Compiled into the binary: production, and every app without source folders.
    Embedded(&'static include_dir::Dir<'static>),
    /// Read from disk at each (re)build: `--dev`, for apps with source folders.
    Disk(PathBuf),
}

/// What the templates are built from; the server collects it from the apps, so this
/// module does not know about apps.
#[derive(Clone)]
pub(crate) struct Sources {
    /// Each app's template folder, in app order: a later app's template overrides an
    /// earlier app's template of the same name.
    pub(crate) dirs: Vec<TemplateDir>,
    /// Every app's navigation entries, in app order.
    pub(crate) nav: Vec<NavItem>,
    pub(crate) request_hooks: RequestHooks,
    /// The site's languages, for `t()` and each request's language.
    pub(crate) i18n: Arc<I18n>,
}

/// The compiled templates of every app; cheap to clone.
#[derive(Clone)]
pub struct Templates {
    inner: Arc<Inner>,
    /// `--dev` only: the environment rebuilt on change. `None` in production, where a
    /// render reads `inner` without a lock.
    live: Option<Arc<Live>>,
}

struct Inner {
    env: TemplateEnv,
    request_hooks: RequestHooks,
    i18n: Arc<I18n>,
}

/// The reloadable state of `--dev`.
struct Live {
    sources: Sources,
    configure: Configure,
    /// The last environment that compiled, and the error of the last rebuild if it failed
    /// (then every page but the error page shows it, until a rebuild succeeds).
    current: RwLock<(Arc<Inner>, Option<String>)>,
}

static CORE_TEMPLATES: include_dir::Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The template every error page is rendered with; still rendered, from the last good
/// build, while a `--dev` rebuild is broken, so the page can show what is wrong.
const ERROR_TEMPLATE: &str = "error.html";

impl Templates {
    /// Compiles the core templates, then each app's templates in app order, adds the
    /// framework's filters, then lets `configure` add (or replace) functions, filters and
    /// globals. A syntax error names the template and line. With `live` (`--dev`), the
    /// sources are kept for [`Templates::reload`].
    pub(crate) fn build(
        sources: Sources,
        configure: Configure,
        live: bool,
    ) -> Result<Templates, String> {
        let inner = Arc::new(compile(&sources, &configure)?);
        let live = live.then(|| {
            Arc::new(Live { sources, configure, current: RwLock::new((inner.clone(), None)) })
        });
        Ok(Templates { inner, live })
    }

    /// `--dev`: what rebuilds these templates, holding them only weakly, so that a watcher
    /// stops once the server is gone. `None` in production.
    pub(crate) fn reloader(&self) -> Option<Reloader> {
        self.live.as_ref().map(|live| Reloader(Arc::downgrade(live)))
    }

    /// The site's languages (the same in every `--dev` rebuild).
    pub fn i18n(&self) -> &Arc<I18n> {
        &self.inner.i18n
    }

    /// True in `--dev`, where template errors are shown on the error page.
    pub(crate) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Renders `name` for a request: the whole page, or only its `content` block when
    /// `fragment` is set.
    pub fn render(
        &self,
        name: &str,
        ctx: Value,
        request: &Arc<RequestInfo>,
        fragment: bool,
    ) -> Result<String, minijinja::Error> {
        let Some(live) = &self.live else {
            return self.inner.render(name, ctx, request, fragment);
        };
        let (inner, broken) = live.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        match broken {
            Some(e) if name != ERROR_TEMPLATE => {
                Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
            }
            _ => inner.render(name, ctx, request, fragment),
        }
    }
}

impl Templates {
    /// Renders `name` outside any request (a mail, a file a command writes): the
    /// request's functions see no request. `Ok(None)` when no template has that name.
    pub fn render_detached(
        &self,
        name: &str,
        ctx: Value,
    ) -> Result<Option<String>, minijinja::Error> {
        let inner = match &self.live {
            None => self.inner.clone(),
            Some(live) => live.current.read().unwrap_or_else(|e| e.into_inner()).0.clone(),
        };
        match inner.env.get_template(name) {
            Ok(template) => template.render(ctx).map(Some),
            Err(e) if e.kind() == minijinja::ErrorKind::TemplateNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Rebuilds `--dev` templates (see [`Templates::reloader`]).
pub(crate) struct Reloader(Weak<Live>);

impl Reloader {
    /// Compiles every template again from its source. On an error the last good
    /// environment stays for the error page, and every other render fails with the error
    /// until a reload succeeds. `None` once the templates are gone; else the error, as one
    /// line naming the template and line.
    pub(crate) fn reload(&self) -> Option<Result<(), String>> {
        let live = self.0.upgrade()?;
        let result = compile(&live.sources, &live.configure);
        let mut current = live.current.write().unwrap_or_else(|e| e.into_inner());
        Some(match result {
            Ok(inner) => {
                *current = (Arc::new(inner), None);
                Ok(())
            }
            Err(e) => {
                current.1 = Some(e.clone());
                Err(e)
            }
        })
    }
}

impl Inner {
    fn render(
        &self,
        name: &str,
        ctx: Value,
        request: &Arc<RequestInfo>,
        fragment: bool,
    ) -> Result<String, minijinja::Error> {
        let tmpl = self.env.get_template(name)?;
        let ctx = merge_maps([ctx, self.request_values(request)]);
        if fragment {
            let mut captured = tmpl.render_captured_to(ctx, std::io::sink())?;
            captured.with_state_mut(|state| state.render_block("content"))
        } else {
            tmpl.render(ctx)
        }
    }

    /// What a render adds to the handler's context: the request (for the functions, see
    /// [`request_of`]), its language (for `t()`), `htmx`, and the apps' hook values.
    fn request_values(&self, request: &Arc<RequestInfo>) -> Value {
        let mut rc = RequestContext::default();
        (self.request_hooks)(request, &mut rc);
        let values = RenderValues {
            request: Value::from_dyn_object(request.clone()),
            locale: i18n::RequestLocale::value(),
            htmx: request.wants_fragment(),
        };
        if rc.values.is_empty() {
            return Value::from_object(values);
        }
        rc.values.insert(REQUEST.into(), values.request);
        rc.values.insert(i18n::LOCALE.into(), values.locale);
        rc.values.insert("htmx".into(), Value::from(values.htmx));
        Value::from_pairs(rc.values)
    }
}

/// What a render adds to the context when no app's hook adds values, as one object: a map
/// of three would be built and dropped on every render.
#[derive(Debug)]
struct RenderValues {
    request: Value,
    locale: Value,
    htmx: bool,
}

impl minijinja::value::Object for RenderValues {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            REQUEST => Some(self.request.clone()),
            i18n::LOCALE => Some(self.locale.clone()),
            "htmx" => Some(Value::from(self.htmx)),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&[REQUEST, i18n::LOCALE, "htmx"])
    }
}

/// The request-scoped functions of the core, registered once per environment.
fn add_request_functions(env: &mut TemplateEnv, nav: Arc<[NavItem]>, i18n: &Arc<I18n>) {
    let for_nav = i18n.clone();
    env.add_function("nav_links", move |state: &minijinja::State| -> Vec<Value> {
        let locale = i18n::locale_of(state, &for_nav);
        let request = request_of(state);
        let current = request.as_ref().and_then(|r| current_item(&nav, r.uri.path()));
        let before = request.as_ref().and_then(|r| r.extensions.get::<BeforeRenders>());
        let audience = before.map_or(Audience::Everyone, |b| b.0.audience());
        (nav.iter().enumerate())
            .filter(|(_, item)| item.audience <= audience)
            .map(|(i, item)| {
                let active = current == Some(i);
                let label = locale.label(item.label);
                context! { label => label, path => item.path, active => active }
            })
            .collect()
    });
    env.add_function("current_path", |state: &minijinja::State| {
        request_of(state).map(|r| r.uri.path().to_string()).unwrap_or_default()
    });
    env.add_function("request_id", |state: &minijinja::State| {
        request_of(state).and_then(|r| r.request_id().map(str::to_string)).unwrap_or_default()
    });
}

/// The environment of `sources`: core templates, then each app's in order.
fn compile(sources: &Sources, configure: &Configure) -> Result<Inner, String> {
    let mut env = Environment::new();
    let mut templates: BTreeMap<Cow<'static, str>, Cow<'static, str>> = BTreeMap::new();
    collect(&CORE_TEMPLATES, &mut templates);
    for dir in &sources.dirs {
        match dir {
            TemplateDir::Embedded(dir) => collect(dir, &mut templates),
            TemplateDir::Disk(path) => collect_disk(path, path, &mut templates)?,
        }
    }
    for (name, source) in templates {
        // An embedded template (name and source borrowed) is kept in minijinja's map of
        // borrowed templates, which a render looks up without a lock; one read from disk
        // (`--dev`) in its map of owned ones, which takes a shared mutex and hashes the
        // name on each lookup (a page and its layout are two: bench/README.md, step 51).
        env.add_template_owned(name.clone(), source)
            .map_err(|e| format!("template {name}: {}", one_line(&e)))?;
    }
    // minijinja's escaping with its output, faster; an app's `template_env` may set its own.
    env.set_formatter(escape::formatter);
    filters::register(&mut env);
    let mut nav = sources.nav.clone();
    nav.sort_by_key(|item| item.order);
    add_request_functions(&mut env, nav.into(), &sources.i18n);
    i18n::add_template_functions(&mut env, &sources.i18n);
    configure(&mut env);
    Ok(Inner { env, request_hooks: sources.request_hooks.clone(), i18n: sources.i18n.clone() })
}

/// The one entry the path is under: the longest matching path, so on /notes/new "New note"
/// (/notes/new) is current and "Notes" (/notes) is not. "/" matches only the home page.
fn current_item(nav: &[NavItem], path: &str) -> Option<usize> {
    let under = |item: &NavItem| {
        if item.path == "/" {
            path == "/"
        } else {
            let prefix = item.path.trim_end_matches('/');
            path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }
    };
    // `rev` so that of two entries with the same path the first one wins.
    (nav.iter().enumerate().rev())
        .filter(|(_, item)| under(item))
        .max_by_key(|(_, item)| item.path.len())
        .map(|(i, _)| i)
}

fn collect(
    dir: &'static include_dir::Dir<'static>,
    out: &mut BTreeMap<Cow<'static, str>, Cow<'static, str>>,
) {
    for (name, file) in crate::embed::files(dir) {
        if let Some(source) = file.contents_utf8() {
            out.insert(name, Cow::Borrowed(source));
        }
    }
}

/// The templates under `dir` on disk, named by their `/`-separated path below `root`. A
/// missing folder has none (an app may create it later); hidden files (editors' swap and
/// backup files) are skipped.
fn collect_disk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Cow<'static, str>, Cow<'static, str>>,
) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_disk(root, &path, out)?;
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else { continue };
        let name: Vec<_> = relative.iter().map(|part| part.to_string_lossy()).collect();
        let name = name.join("/");
        match std::fs::read_to_string(&path) {
            Ok(source) => {
                out.insert(Cow::Owned(name), Cow::Owned(source));
            }
            Err(e) => return Err(format!("template {name}: cannot read {}: {e}", path.display())),
        }
    }
    Ok(())
}

/// An HTML response produced by rendering; passes the error renderer untouched, so a
/// handler can answer 422 with its re-rendered form.
#[derive(Debug, Clone)]
pub struct Html(pub String);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut res = Response::new(axum::body::Body::from(self.0));
        // Sized for what a page ends up with (these two, `Content-Length`, a cookie, the
        // request id and the security headers): the map then is allocated once, where
        // axum's first 6 entries grew to 12 in the core layer's end.
        let headers = res.headers_mut();
        *headers = HeaderMap::with_capacity(12);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        // Pages differ for htmx requests (fragment vs whole page).
        headers.insert(header::VARY, HeaderValue::from_static("HX-Request"));
        res.extensions_mut().insert(Handled);
        res
    }
}

/// `text` escaped for HTML, as templates escape values: for HTML built in Rust (e.g. an
/// admin [`Column::html`](crate::admin::Column::html)).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    filters::escape(text, &mut out);
    out
}

/// Extractor that renders templates for the current request.
pub struct Render {
    templates: Templates,
    request: Arc<RequestInfo>,
}

/// Work an app's middleware leaves for a request that renders a page, done when the
/// handler takes its [`Render`]: template functions are synchronous, so what they show
/// must be ready before (the auth app loads the signed-in user for `current_user()`),
/// and requests that render nothing never pay for it.
pub(crate) trait BeforeRender: Send + Sync {
    fn before_render(&self) -> crate::context::BoxFuture<'_, ()>;

    /// Whom the page is for, once [`before_render`](BeforeRender::before_render) ran:
    /// the navigation items it may show.
    fn audience(&self) -> Audience;
}

/// The request extension holding the [`BeforeRender`] work.
#[derive(Clone)]
pub(crate) struct BeforeRenders(pub(crate) Arc<dyn BeforeRender>);

/// What app middleware leaves on an error response for the error page, which the core
/// layer renders outside app middleware from the request it saw: extensions for its
/// request (the auth app's state, so the page shows who is signed in), a
/// [`BeforeRenders`] among them done first.
#[derive(Clone)]
pub(crate) struct ErrorPageExtensions(pub(crate) Extensions);

impl<S: Send + Sync> FromRequestParts<S> for Render {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let templates =
            crate::http::Services::of(&parts.extensions)
                .map(|s| s.templates.clone())
                .ok_or_else(|| Error::internal("templates are not installed on this router"))?;
        if let Some(BeforeRenders(before)) = parts.extensions.get::<BeforeRenders>().cloned() {
            before.before_render().await;
        }
        Ok(Render { templates, request: Arc::new(RequestInfo::from_parts(parts)) })
    }
}

impl Render {
    /// Renders a page: the whole layout, or the `content` block for htmx requests.
    pub fn page(&self, name: &str, ctx: impl Into<Value>) -> Result<Html, Error> {
        self.render(name, ctx.into(), self.request.wants_fragment())
    }

    /// Renders a template as is (a partial used for htmx swaps).
    pub fn partial(&self, name: &str, ctx: impl Into<Value>) -> Result<Html, Error> {
        self.render(name, ctx.into(), false)
    }

    /// True for htmx requests that want a fragment.
    pub fn is_htmx(&self) -> bool {
        self.request.wants_fragment()
    }

    fn render(&self, name: &str, ctx: Value, fragment: bool) -> Result<Html, Error> {
        self.templates.render(name, ctx, &self.request, fragment).map(Html).map_err(|e| {
            let detail = format!("rendering {name}: {}", one_line(&e));
            // In development the page says what is wrong, not only the log.
            if self.templates.is_live() {
                Error::internal_shown(detail)
            } else {
                Error::internal(detail)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_functions_find_the_request_in_pages_and_imported_macros() {
        let mut env = Environment::new();
        let i18n = I18n::english();
        add_request_functions(&mut env, vec![NavItem::new("Notes", "/notes")].into(), &i18n);
        env.add_template("m.txt", "{% macro here() %}[{{ current_path() }}]{% endmacro %}")
            .unwrap();
        let page = "{{ current_path() }} {% import 'm.txt' as m %}{{ m.here() }} \
                    {% for l in nav_links() %}{{ l.label }}{% if l.active %} (here){% endif %}\
                    {% endfor %}";
        env.add_template("page.txt", page).unwrap();
        let inner = Inner { env, request_hooks: Arc::new(|_, _| {}), i18n };
        let request = Arc::new(RequestInfo {
            method: Method::GET,
            uri: Uri::from_static("/notes/3"),
            headers: HeaderMap::new(),
            extensions: Extensions::new(),
        });
        let text = inner.render("page.txt", context! {}, &request, false).unwrap();
        assert_eq!(text, "/notes/3 [/notes/3] Notes (here)");
        // Outside a request's render they are defined and empty.
        let alone = inner.env.render_str("[{{ current_path() }}]", context! {}).unwrap();
        assert_eq!(alone, "[]");
    }

    #[test]
    fn embedded_templates_are_added_borrowed() {
        // minijinja looks borrowed templates up without its owned store's shared mutex;
        // only both name and source borrowed put a template there.
        let mut templates = BTreeMap::new();
        collect(&CORE_TEMPLATES, &mut templates);
        assert!(templates.contains_key("error.html"));
        for (name, source) in &templates {
            assert!(matches!(name, Cow::Borrowed(_)), "{name}: name copied");
            assert!(matches!(source, Cow::Borrowed(_)), "{name}: source copied");
        }
    }

    #[test]
    fn one_nav_item_is_current_the_longest_match() {
        let nav = [
            NavItem::new("Home", "/"),
            NavItem::new("Notes", "/notes"),
            NavItem::new("New note", "/notes/new"),
            NavItem::new("Also notes", "/notes"),
        ];
        let current = |path| current_item(&nav, path).map(|i| nav[i].label);
        assert_eq!(current("/"), Some("Home"));
        assert_eq!(current("/notes"), Some("Notes"));
        assert_eq!(current("/notes/3/edit"), Some("Notes"));
        assert_eq!(current("/notes/new"), Some("New note"));
        assert_eq!(current("/notes/newer"), Some("Notes"));
        assert_eq!(current("/notebook"), None);
        assert_eq!(current("/about"), None);
    }
}
