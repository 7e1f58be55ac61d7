//! Languages: message catalogs per app, the language of each request, `t()` in templates
//! and handlers.
//!
//! Every app may ship catalogs in a `translations/` folder beside `templates/`, one TOML
//! file per language (`en.toml`, `de.toml`, `pt-BR.toml`; the format is in
//! [`catalog`](self#catalogs)). The framework's own strings (error pages, validation
//! messages, the language switcher) and the contrib apps' come in English and German; a
//! later app's text replaces an earlier app's for the same key.
//!
//! A request's language is the visitor's choice (the [`LANGUAGE_COOKIE`] the theme's
//! switcher sets through `POST /i18n/language`), else the best match for its
//! `Accept-Language` (`de-AT` finds `de`), else `--i18n-default-language`. It is worked
//! out only when something asks: a page render, or a handler taking the [`Locale`]
//! extractor.
//!
//! In templates: `{{ t("notes-saved") }}`, `{{ t("greeting", name=user.name) }}`,
//! `{{ t("notes-count", count=n) }}` (a plural: the form follows the language's rules),
//! `<html lang="{{ lang() }}">`, and `languages()` for a switcher. In handlers:
//!
//! ```
//! use burrow::i18n::Locale;
//!
//! async fn saved(locale: Locale) -> String {
//!     locale.t_args("notes-count", &[("count", &3)])
//! }
//! ```
//!
//! A key no catalog has shows as the key itself; a key the request's language lacks
//! shows in the default language. Either is logged once per key and language.
//!
//! # Catalogs
//!
//! ```toml
//! notes-saved = "Note saved."
//! greeting = "Hello, {name}!"   # {{ and }} are literal braces
//!
//! [notes-count]                 # plural forms: zero, one, two, few, many, other
//! one = "{count} note"
//! other = "{count} notes"
//! ```
//!
//! Labels an app declares in code (navigation items, admin names, columns, filters) are
//! English text that serves as its own key, as with gettext: a catalog translates
//! `"Notes" = "Notizen"`, and without an entry the text shows as written.

mod catalog;
mod negotiate;
mod switch;

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use include_dir::Dir;
use minijinja::value::{Kwargs, Object, Value};

use catalog::Catalog;
pub use negotiate::LANGUAGE_COOKIE;
pub(crate) use switch::routes;

use crate::error::Error;

/// The framework's own catalogs (error pages, validation messages, the switcher).
static CORE: Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/translations");

/// The key each catalog names its language with, in that language (`Deutsch`), for the
/// switcher.
const LANGUAGE_NAME: &str = "language-name";

/// Every language of the site with its messages; built once at start-up, shared.
pub struct I18n {
    /// Lower-case tags (`en`, `pt-br`), in the order `--i18n-languages` gives them.
    tags: Vec<String>,
    catalogs: Vec<Catalog>,
    default: usize,
    /// Keys and languages already logged as missing, so each is logged once.
    logged: Mutex<HashSet<(usize, String)>>,
}

/// A source of catalogs: an app's name (for errors) and its `translations/` folder.
pub(crate) type Source = (&'static str, &'static Dir<'static>);

impl I18n {
    /// The site's languages: `languages` if given (else every language any catalog has),
    /// each with the messages of the core's and then each app's catalogs.
    pub(crate) fn build(
        default: &str,
        languages: Option<&[String]>,
        apps: &[Source],
    ) -> Result<I18n, BuildError> {
        let sources: Vec<Source> =
            std::iter::once(("burrow", &CORE)).chain(apps.iter().copied()).collect();
        let mut files = Vec::new();
        for (app, dir) in &sources {
            for file in dir.files() {
                let path = file.path().display().to_string();
                let Some(tag) = path.strip_suffix(".toml") else { continue };
                let source = file.contents_utf8().ok_or_else(|| {
                    BuildError::Catalog(format!("translations of {app}: {path} is not UTF-8"))
                })?;
                files.push((app, path.clone(), tag.to_ascii_lowercase(), source));
            }
        }
        let default = default.to_ascii_lowercase();
        let tags: Vec<String> = match languages {
            Some(list) => list.iter().map(|t| t.to_ascii_lowercase()).collect(),
            None => {
                let mut tags = vec![default.clone()];
                for (_, _, tag, _) in &files {
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
                tags
            }
        };
        let Some(default_index) = tags.iter().position(|t| *t == default) else {
            let reason =
                format!("{default} is not among the site's languages ({})", tags.join(","));
            return Err(BuildError::DefaultLanguage(reason));
        };
        if !files.iter().any(|(_, _, tag, _)| *tag == default) {
            let mut have: Vec<&str> = files.iter().map(|(_, _, tag, _)| tag.as_str()).collect();
            have.sort_unstable();
            have.dedup();
            let reason = format!("no catalog is in {default} (they are in {})", have.join(","));
            return Err(BuildError::DefaultLanguage(reason));
        }
        let mut catalogs: Vec<Catalog> = tags.iter().map(|t| Catalog::new(t)).collect();
        for (app, path, tag, source) in files {
            if let Some(i) = tags.iter().position(|t| *t == tag) {
                catalogs[i].load(source).map_err(|e| {
                    BuildError::Catalog(format!("translations of {app}: {path}: {e}"))
                })?;
            }
        }
        Ok(I18n { tags, catalogs, default: default_index, logged: Mutex::default() })
    }

    /// English only, from the core's catalog: for code that runs without a server.
    pub fn english() -> Arc<I18n> {
        Arc::new(I18n::build("en", Some(&["en".into()]), &[]).expect("the core catalogs load"))
    }

    /// The language `tag` (as `--i18n-languages` names it), or the default one: for a
    /// mail or a job for a user whose language is stored.
    pub fn locale(self: &Arc<Self>, tag: &str) -> Locale {
        let index = self.tags.iter().position(|t| t.eq_ignore_ascii_case(tag));
        Locale { i18n: self.clone(), index: index.unwrap_or(self.default) }
    }

    /// The language of a request with `headers`: the cookie, `Accept-Language`, the default.
    pub fn negotiate(self: &Arc<Self>, headers: &HeaderMap) -> Locale {
        let index = match self.tags.len() {
            1 => None,
            _ => negotiate::choose(&self.tags, headers),
        };
        Locale { i18n: self.clone(), index: index.unwrap_or(self.default) }
    }

    /// The language the visitor chose with the switcher (the [`LANGUAGE_COOKIE`]), if
    /// the site has it: an explicit choice, unlike `Accept-Language` (which differs from
    /// one device to the next). `None` on a site with one language.
    pub fn chosen(self: &Arc<Self>, headers: &HeaderMap) -> Option<Locale> {
        self.chosen_in(headers.get_all(axum::http::header::COOKIE))
    }

    /// [`I18n::chosen`] for a request whose `Cookie` header values are `cookies`.
    pub(crate) fn chosen_in<'a>(
        self: &Arc<Self>,
        cookies: impl IntoIterator<Item = &'a axum::http::HeaderValue>,
    ) -> Option<Locale> {
        if self.tags.len() == 1 {
            return None;
        }
        let index = negotiate::chosen(&self.tags, cookies)?;
        Some(Locale { i18n: self.clone(), index })
    }

    /// The site's language tags, the default first.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.tags[self.default].as_str()).chain(
            self.tags
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.default)
                .map(|(_, t)| t.as_str()),
        )
    }

    /// For each language other than English, the keys English has that it lacks, and the
    /// keys whose arguments differ from English's: what a catalog test asserts is empty.
    pub fn incomplete(&self) -> Vec<String> {
        let Some(english) = self.tags.iter().position(|t| t == "en") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, catalog) in self.catalogs.iter().enumerate().filter(|(i, _)| *i != english) {
            let tag = &self.tags[i];
            for (key, message) in &self.catalogs[english].messages {
                match catalog.messages.get(key) {
                    None => out.push(format!("{tag}: {key} is missing")),
                    Some(m) if m.args() != message.args() => out.push(format!(
                        "{tag}: {key} uses {{{}}}, English {{{}}}",
                        m.args().join("}, {"),
                        message.args().join("}, {")
                    )),
                    Some(_) => {}
                }
            }
        }
        out.sort();
        out
    }

    fn log_missing(&self, index: usize, key: &str, shown: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: keys come from code and templates, but a template may build one.
        if logged.len() < 10_000 && logged.insert((index, key.to_string())) {
            tracing::warn!(language = %self.tags[index], key, "no translation; showing {shown}");
        }
    }
}

/// Why the languages could not be built.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// `--i18n-default-language` names a language the site cannot show.
    DefaultLanguage(String),
    /// A catalog that does not parse: the app, file and key.
    Catalog(String),
}

/// A language of the site: what [`t`](Locale::t) translates into. A handler takes it as
/// an extractor (the request's language); [`I18n::locale`] gives one for a stored
/// language.
#[derive(Clone)]
pub struct Locale {
    i18n: Arc<I18n>,
    index: usize,
}

impl std::fmt::Debug for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Locale").field(&self.lang()).finish()
    }
}

impl Locale {
    /// The language tag (`en`, `de`, `pt-br`), for `<html lang>` and for storing.
    pub fn lang(&self) -> &str {
        &self.i18n.tags[self.index]
    }

    /// The text of `key`.
    pub fn t(&self, key: &str) -> String {
        self.t_args(key, &[])
    }

    /// The text of `key` with its `{name}` arguments filled in; an argument `count`
    /// also picks the plural form.
    pub fn t_args(&self, key: &str, args: &[(&str, &dyn Display)]) -> String {
        match self.find(key, args) {
            Some((text, false)) => text,
            Some((text, true)) => {
                let shown = format!("the {} text", self.i18n.tags[self.i18n.default]);
                self.i18n.log_missing(self.index, key, &shown);
                text
            }
            None => {
                self.i18n.log_missing(self.index, key, "the key");
                key.to_string()
            }
        }
    }

    /// The text of `key`, or `None` if no catalog has it (nothing is logged): for texts
    /// with a fallback of their own.
    pub fn get(&self, key: &str, args: &[(&str, &dyn Display)]) -> Option<String> {
        self.find(key, args).map(|(text, _)| text)
    }

    /// The text of `key` in this language, else in the default one (then `true`).
    fn find(&self, key: &str, args: &[(&str, &dyn Display)]) -> Option<(String, bool)> {
        let count = args.iter().find(|(n, _)| *n == "count").map(|(_, v)| v.to_string());
        let (text, fallback) = match self.i18n.catalogs[self.index].text(key, count.as_deref()) {
            Some(text) => (text, false),
            None => (self.i18n.catalogs[self.i18n.default].text(key, count.as_deref())?, true),
        };
        Some((text.format(args), fallback))
    }

    /// An English label declared in code, translated if a catalog has it as a key.
    pub fn label<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match self.i18n.catalogs[self.index].text(text, None) {
            Some(translated) => std::borrow::Cow::Owned(translated.format(&[])),
            None => std::borrow::Cow::Borrowed(text),
        }
    }

    /// `ctx` with this language added, for a render outside a request (a mail, a job's
    /// file): `t()` in the templates then speaks it.
    ///
    /// ```ignore
    /// Email::render(&ctx.templates, "auth/mail/invite", to, locale.with(values))?;
    /// ```
    pub fn with(&self, ctx: impl Into<Value>) -> Value {
        minijinja::value::merge_maps([
            Value::from_pairs([(LOCALE, Value::from_object(self.clone()))]),
            ctx.into(),
        ])
    }

    /// The switcher's entries: each language's code, its own name, and whether it is this one.
    fn choices(&self) -> Vec<Value> {
        (self.i18n.tags.iter().enumerate())
            .map(|(i, tag)| {
                let name = self.i18n.catalogs[i].text(LANGUAGE_NAME, None).map(|t| t.format(&[]));
                minijinja::context! {
                    code => tag,
                    name => name.unwrap_or_else(|| tag.clone()),
                    current => i == self.index,
                }
            })
            .collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Locale {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let templates = crate::http::Services::of(&parts.extensions)
            .map(|s| &s.templates)
            .ok_or_else(|| Error::internal("templates are not installed on this router"))?;
        Ok(templates.i18n().negotiate(&parts.headers))
    }
}

/// The context key a render's language is under; see [`Locale::with`].
pub(crate) const LOCALE: &str = "__burrow_locale";

/// In a render context, for the template functions; shows nothing to templates.
impl Object for Locale {}

/// The language of a render: the request's, the one [`Locale::with`] put in, or the
/// default.
pub(crate) fn locale_of(state: &minijinja::State, i18n: &Arc<I18n>) -> Locale {
    let value = state.lookup(LOCALE);
    let given = value.as_ref().and_then(|v| v.downcast_object_ref::<Locale>());
    let negotiated = || {
        let lazy = value.as_ref()?.downcast_object_ref::<RequestLocale>()?;
        let request = crate::template::request_of(state)?;
        Some(lazy.0.get_or_init(|| i18n.negotiate(&request.headers)))
    };
    (given.or_else(negotiated).cloned())
        .unwrap_or_else(|| Locale { i18n: i18n.clone(), index: i18n.default })
}

/// A request's language in its render context, negotiated (from the render's request, by
/// [`locale_of`]) when a template function first asks for it (`t()`, `lang()`, …): a page
/// that translates nothing reads neither the language cookie nor `Accept-Language` (about
/// 1,100 instructions of a page of 190,000).
pub(crate) struct RequestLocale(OnceLock<Locale>);

impl RequestLocale {
    /// The render context's value, not negotiated yet.
    pub(crate) fn value() -> Value {
        Value::from_object(RequestLocale(OnceLock::new()))
    }
}

impl std::fmt::Debug for RequestLocale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestLocale").field(&self.0.get()).finish()
    }
}

/// In a render context, for the template functions; shows nothing to templates.
impl Object for RequestLocale {}

/// `t()`, `lang()` and `languages()`, registered once per template environment.
pub(crate) fn add_template_functions(env: &mut crate::template::TemplateEnv, i18n: &Arc<I18n>) {
    let for_t = i18n.clone();
    env.add_function(
        "t",
        move |state: &minijinja::State,
              key: &str,
              kwargs: Kwargs|
              -> Result<String, minijinja::Error> {
            let locale = locale_of(state, &for_t);
            let names: Vec<&str> = kwargs.args().collect();
            let mut values = Vec::with_capacity(names.len());
            for name in &names {
                values.push(kwargs.get::<Value>(name)?);
            }
            kwargs.assert_all_used()?;
            let args: Vec<(&str, &dyn Display)> =
                names.iter().copied().zip(values.iter().map(|v| v as &dyn Display)).collect();
            Ok(locale.t_args(key, &args))
        },
    );
    let for_lang = i18n.clone();
    env.add_function("lang", move |state: &minijinja::State| {
        locale_of(state, &for_lang).lang().to_string()
    });
    let for_label = i18n.clone();
    env.add_function("translate", move |state: &minijinja::State, text: Option<&str>| {
        text.map(|text| locale_of(state, &for_label).label(text).into_owned()).unwrap_or_default()
    });
    let for_errors = i18n.clone();
    env.add_function(
        "error_text",
        move |state: &minijinja::State, message: Value, label: Option<&str>| {
            error_text(&locale_of(state, &for_errors), &message, label)
        },
    );
    let for_choices = i18n.clone();
    env.add_function("languages", move |state: &minijinja::State| {
        locale_of(state, &for_choices).choices()
    });
}

/// A validation message (a [`ShownMessage`](crate::forms::ShownMessage)) in `locale`:
/// the catalog's `validation-CODE` with the field's label as `{field}`; a message an app
/// wrote as text is translated like a label; the English text if the catalogs have none.
fn error_text(locale: &Locale, message: &Value, label: Option<&str>) -> String {
    let field = |name: &str| message.get_attr(name).ok().filter(|v| !v.is_undefined());
    let english = field("english").map(|v| v.to_string()).unwrap_or_default();
    let Some(code) = field("code").map(|v| v.to_string()) else { return english };
    let args = field("args");
    if code == "text" {
        let text = args.and_then(|a| a.get_attr("text").ok()).map(|v| v.to_string());
        return locale.label(text.as_deref().unwrap_or(&english)).into_owned();
    }
    let subject = match label {
        Some(label) => locale.label(label).into_owned(),
        None => locale.get("validation-this-field", &[]).unwrap_or_else(|| "This field".into()),
    };
    let mut values: Vec<(String, Value)> = Vec::new();
    if let Some(args) = &args
        && let Ok(names) = args.try_iter()
    {
        for name in names {
            let value = args.get_item(&name).unwrap_or_default();
            values.push((name.to_string(), value));
        }
    }
    let mut pairs: Vec<(&str, &dyn Display)> = vec![("field", &subject)];
    pairs.extend(values.iter().map(|(n, v)| (n.as_str(), v as &dyn Display)));
    locale.get(&format!("validation-{code}"), &pairs).unwrap_or(english)
}

#[cfg(test)]
mod tests;
