use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use include_dir::{Dir, DirEntry, File};
use minijinja::{Environment, context};

use super::*;

static APP: Dir<'static> = Dir::new(
    "",
    &[
        DirEntry::File(File::new(
            "en.toml",
            b"greeting = \"Hello, {name}!\"\nerror-not-found = \"No such page.\"\n\
              only-english = \"Only here\"\n\"Notes\" = \"Notes\"\n\
              [notes-count]\none = \"{count} note\"\nother = \"{count} notes\"\n",
        )),
        DirEntry::File(File::new(
            "de.toml",
            b"greeting = \"Hallo, {name}!\"\n\"Notes\" = \"Notizen\"\n\
              [notes-count]\none = \"{count} Notiz\"\nother = \"{count} Notizen\"\n",
        )),
        DirEntry::File(File::new("README.md", b"not a catalog")),
    ],
);

fn site() -> Arc<I18n> {
    Arc::new(I18n::build("en", None, &[("app", &APP)]).unwrap())
}

fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(name.clone(), HeaderValue::from_static(value));
    }
    map
}

#[test]
fn the_framework_catalogs_are_complete() {
    let i18n = I18n::build("en", None, &crate::contrib::translations()).unwrap();
    assert!(i18n.languages().any(|l| l == "de"));
    assert_eq!(i18n.incomplete(), Vec::<String>::new());
}

#[test]
fn incomplete_names_missing_keys_and_changed_arguments() {
    static BROKEN: Dir<'static> = Dir::new(
        "",
        &[
            DirEntry::File(File::new("en.toml", b"a = \"{x} and {y}\"\nb = \"B\"")),
            DirEntry::File(File::new("de.toml", b"a = \"{x} und {z}\"")),
        ],
    );
    let i18n = I18n::build("en", Some(&["en".into(), "de".into()]), &[("app", &BROKEN)]).unwrap();
    let mut found = i18n.incomplete();
    found.retain(|line| line.contains(": a ") || line.contains(": b "));
    assert_eq!(found, ["de: a uses {x}, {z}, English {x}, {y}", "de: b is missing"]);
}

#[test]
fn texts_arguments_plurals_and_fallbacks() {
    let i18n = site();
    let de = i18n.locale("de");
    assert_eq!(de.lang(), "de");
    assert_eq!(de.t_args("greeting", &[("name", &"Ada")]), "Hallo, Ada!");
    assert_eq!(de.t_args("notes-count", &[("count", &1)]), "1 Notiz");
    assert_eq!(de.t_args("notes-count", &[("count", &2)]), "2 Notizen");
    assert_eq!(i18n.locale("en").t_args("notes-count", &[("count", &1)]), "1 note");
    // German lacks it: the default language's text.
    assert_eq!(de.t("only-english"), "Only here");
    // No catalog has it: the key.
    assert_eq!(de.t("no-such-key"), "no-such-key");
    assert_eq!(de.get("no-such-key", &[]), None);
    // A later app's text replaces the core's.
    assert_eq!(i18n.locale("en").t("error-not-found"), "No such page.");
    assert_eq!(de.t("error-not-found"), "Die angeforderte Seite gibt es nicht.");
    // Labels are their own keys.
    assert_eq!(de.label("Notes"), "Notizen");
    assert_eq!(de.label("Unknown label"), "Unknown label");
    // A language the site does not have: the default.
    assert_eq!(i18n.locale("fr").lang(), "en");
}

#[test]
fn each_request_gets_the_cookie_then_accept_language_then_the_default() {
    let i18n = site();
    assert_eq!(i18n.negotiate(&HeaderMap::new()).lang(), "en");
    let german = headers(&[(header::ACCEPT_LANGUAGE, "de-AT,de;q=0.9,en;q=0.5")]);
    assert_eq!(i18n.negotiate(&german).lang(), "de");
    let chosen =
        headers(&[(header::ACCEPT_LANGUAGE, "de-AT,de;q=0.9"), (header::COOKIE, "lang=en")]);
    assert_eq!(i18n.negotiate(&chosen).lang(), "en");
    // Only the languages given are the site's.
    let english_only = Arc::new(I18n::build("en", Some(&["en".into()]), &[("app", &APP)]).unwrap());
    assert_eq!(english_only.negotiate(&german).lang(), "en");
    assert_eq!(english_only.languages().collect::<Vec<_>>(), ["en"]);
}

#[test]
fn the_default_language_must_have_catalogs_and_be_a_site_language() {
    let err = |default: &str, languages: Option<&[String]>| match I18n::build(
        default,
        languages,
        &[("app", &APP)],
    ) {
        Err(BuildError::DefaultLanguage(reason)) => reason,
        Err(BuildError::Catalog(reason)) => panic!("catalog error {reason}"),
        Ok(_) => panic!("{default} accepted"),
    };
    assert_eq!(err("fr", None), "no catalog is in fr (they are in de,en)");
    assert_eq!(err("de", Some(&["en".into()])), "de is not among the site's languages (en)");
    static BAD: Dir<'static> =
        Dir::new("", &[DirEntry::File(File::new("de.toml", b"broken = \"{oops\""))]);
    match I18n::build("en", None, &[("blog", &BAD)]) {
        Err(BuildError::Catalog(reason)) => {
            assert!(reason.starts_with("translations of blog: de.toml: broken: "), "{reason}")
        }
        _ => panic!("a broken catalog was accepted"),
    }
}

#[test]
fn templates_translate_with_the_renders_language() {
    let i18n = site();
    let mut env = Environment::new();
    add_template_functions(&mut env, &i18n);
    let source = "{{ lang() }}|{{ t('greeting', name='<Ada>') }}|{{ t('notes-count', count=n) }}|\
                  {{ translate('Notes') }}|{% for l in languages() %}{{ l.code }}={{ l.name }}\
                  {% if l.current %}*{% endif %} {% endfor %}";
    let german = i18n.locale("de").with(context! { n => 3 });
    env.add_template("page.html", source).unwrap();
    let page = env.get_template("page.html").unwrap();
    assert_eq!(
        page.render(german).unwrap(),
        "de|Hallo, &lt;Ada&gt;!|3 Notizen|Notizen|en=English de=Deutsch* "
    );
    // Without a language in the context (a render outside a request): the default.
    assert_eq!(
        page.render(context! { n => 1 }).unwrap(),
        "en|Hello, &lt;Ada&gt;!|1 note|Notes|en=English* de=Deutsch "
    );
    // A validation message, with its field's label translated.
    let message = crate::forms::Message::new("max_length").arg("max", 20usize).shown(Some("Notes"));
    let ctx = i18n
        .locale("de")
        .with(context! { m => minijinja::value::Value::from(minijinja::value::Serde(&message)) });
    assert_eq!(
        env.render_str("{{ error_text(m, 'Notes') }}|{{ error_text(m) }}", ctx).unwrap(),
        "Notizen darf höchstens 20 Zeichen lang sein.|Dieses Feld darf höchstens 20 Zeichen lang sein."
    );
}

/// Every key the auth app's code and templates name is in its English catalog (the
/// completeness test then finds it in German): a key missing everywhere would show as the
/// key itself.
#[test]
fn every_key_the_auth_app_names_is_in_its_catalog() {
    fn sources(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "html" || e == "txt") {
                found.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/contrib/auth");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let i18n = Arc::new(I18n::build("en", None, &crate::contrib::translations()).unwrap());
    let english = i18n.locale("en");
    let mut named = 0;
    let mut missing = Vec::new();
    for (path, text) in &files {
        for (at, _) in text.match_indices("auth-") {
            let quote = text[..at].chars().next_back();
            // A quoted key; not an element's id (`id="auth-username"`, `for="…"`).
            let attribute = text[..at].ends_with("id=\"") || text[..at].ends_with("for=\"");
            if !matches!(quote, Some('"' | '\'')) || attribute {
                continue;
            }
            let key: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            named += 1;
            if english.get(&key, &[("count", &1)]).is_none() {
                missing.push(format!("{path}: {key}"));
            }
        }
    }
    assert!(named > 100, "only {named} keys found: is the scan still right?");
    assert_eq!(missing, Vec::<String>::new());
}
