//! The forms runtime with derived forms: parsing, every rule, `clean`, bound fields, and the
//! template macros.

use super::*;

const COLORS: &[(&str, &str)] = &[("red", "Red"), ("green", "Green")];

fn no_spaces(value: &str) -> Result<(), Message> {
    if value.contains(' ') { Err(Message::new("no_spaces")) } else { Ok(()) }
}

#[derive(Debug, Form)]
struct Everything {
    #[form(required, max_length = 10, label = "Title", help = "Short and sweet.")]
    title: String,
    #[form(min_length = 3, no_trim)]
    raw: String,
    #[form(email)]
    email: Option<String>,
    #[form(url)]
    site: String,
    #[form(regex = "[a-z]{2}-[0-9]+")]
    code: String,
    #[form(min = 1, max = 10)]
    count: i64,
    #[form(min = -0.5, max = 2.5)]
    ratio: Option<f64>,
    subscribe: bool,
    #[form(choices = COLORS)]
    color: String,
    #[form(choices = &[("1", "One"), ("2", "Two")])]
    level: Option<u8>,
    #[form(custom = no_spaces, widget = "textarea")]
    slug: String,
}

fn data(pairs: &[(&str, &str)]) -> FormData {
    pairs.iter().copied().collect()
}

/// A submission that passes every rule, with `changes` applied.
fn submit(changes: &[(&str, &str)]) -> Result<Everything, Errors> {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("title", "  Hello  "),
        ("raw", " ab "),
        ("email", ""),
        ("site", ""),
        ("code", ""),
        ("count", " 3 "),
        ("color", ""),
        ("slug", ""),
        ("csrf_token", "not a field"),
    ];
    for (name, value) in changes {
        pairs.retain(|(n, _)| n != name);
        pairs.push((name, value));
    }
    Everything::from_data(&data(&pairs))
}

/// The codes of the errors of one field.
fn codes(result: Result<Everything, Errors>, field: &str) -> Vec<String> {
    let errors = result.expect_err("invalid");
    errors.field(field).map(|m| m.code.to_string()).collect()
}

#[test]
fn parses_trims_and_ignores_unknown_fields() {
    let form = submit(&[]).unwrap();
    assert_eq!(form.title, "Hello");
    assert_eq!(form.raw, " ab ", "no_trim keeps the spaces");
    assert_eq!(form.email, None, "an empty optional string is None");
    assert_eq!(form.count, 3);
    assert_eq!(form.ratio, None);
    assert!(!form.subscribe, "an absent checkbox is false");
    let form = submit(&[("subscribe", "on"), ("ratio", "1.5"), ("level", "2")]).unwrap();
    assert!(form.subscribe);
    assert_eq!((form.ratio, form.level), (Some(1.5), Some(2)));
}

#[test]
fn required_and_lengths() {
    assert_eq!(codes(submit(&[("title", "   ")]), "title"), ["required"]);
    let missing = Everything::from_data(&data(&[("count", "1")])).unwrap_err();
    assert_eq!(missing.field("title").next().unwrap().code, "required");
    assert_eq!(codes(submit(&[("title", "x".repeat(11).as_str())]), "title"), ["max_length"]);
    // Characters, not bytes.
    assert!(submit(&[("title", "é".repeat(10).as_str())]).is_ok());
    assert_eq!(codes(submit(&[("raw", " a")]), "raw"), ["min_length"]);
    // An optional field left empty is not judged by its rules.
    assert!(submit(&[("raw", "")]).is_ok());
}

#[test]
fn numbers() {
    assert_eq!(codes(submit(&[("count", "")]), "count"), ["required"], "a bare i64 is required");
    assert_eq!(codes(submit(&[("count", "three")]), "count"), ["integer"]);
    assert_eq!(codes(submit(&[("count", "1.5")]), "count"), ["integer"]);
    assert_eq!(codes(submit(&[("count", "0")]), "count"), ["min"]);
    assert_eq!(codes(submit(&[("count", "11")]), "count"), ["max"]);
    assert_eq!(codes(submit(&[("ratio", "NaN")]), "ratio"), ["number"]);
    assert_eq!(codes(submit(&[("ratio", "-1")]), "ratio"), ["min"]);
    assert_eq!(codes(submit(&[("level", "300")]), "level"), ["integer"], "beyond u8");
    let errors = submit(&[("count", "11")]).unwrap_err();
    let message = errors.field("count").next().unwrap();
    assert_eq!(message.english(Some("Count")), "Count must be at most 10.");
}

#[test]
fn email_url_regex_choices_custom() {
    assert_eq!(codes(submit(&[("email", "nope")]), "email"), ["email"]);
    assert!(submit(&[("email", "ada@example.org")]).is_ok());
    assert_eq!(codes(submit(&[("site", "javascript:alert(1)")]), "site"), ["url"]);
    assert!(submit(&[("site", "https://example.org/a?b")]).is_ok());
    assert_eq!(codes(submit(&[("code", "ab-12x")]), "code"), ["regex"], "the whole value");
    assert!(submit(&[("code", "ab-12")]).is_ok());
    assert_eq!(codes(submit(&[("color", "blue")]), "color"), ["choice"]);
    assert!(submit(&[("color", "green")]).is_ok());
    assert_eq!(codes(submit(&[("level", "3")]), "level"), ["choice"]);
    assert_eq!(codes(submit(&[("slug", "a b")]), "slug"), ["no_spaces"]);
}

#[test]
fn every_field_is_reported_at_once() {
    let errors = submit(&[("title", ""), ("count", "x"), ("color", "blue")]).unwrap_err();
    let fields: Vec<&str> = errors.fields().iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["title", "count", "color"]);
}

#[test]
fn email_and_url_checks() {
    for good in ["a@b.co", "first.last+tag@sub.example.org", "ü@exämple.de"] {
        assert!(is_email(good), "{good}");
    }
    for bad in ["", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@b..co", "a@-b.co", "a@b@c.de"] {
        assert!(!is_email(bad), "{bad}");
    }
    for good in ["http://a", "HTTPS://example.org:8080/x?y#z", "https://user@host/"] {
        assert!(is_url(good), "{good}");
    }
    for bad in ["", "example.org", "ftp://x", "https://", "https:// x", "javascript://%0a"] {
        assert!(!is_url(bad), "{bad}");
    }
}

#[derive(Debug, Form)]
#[form(clean)]
struct Passwords {
    #[form(required, no_trim, widget = "password")]
    password: String,
    #[form(no_trim, widget = "password")]
    again: String,
}

impl Clean for Passwords {
    fn clean(&mut self, errors: &mut Errors) {
        if self.password != self.again {
            errors.add_form(Message::text("The passwords differ."));
            errors.add("again", Message::new("mismatch"));
        }
    }
}

#[test]
fn clean_runs_after_the_field_rules() {
    assert!(Passwords::from_data(&data(&[("password", "a"), ("again", "a")])).is_ok());
    let errors = Passwords::from_data(&data(&[("password", "a"), ("again", "b")])).unwrap_err();
    assert_eq!(errors.form()[0].english(None), "The passwords differ.");
    assert!(errors.has("again"));
    // Field errors first: clean does not see a form whose fields failed.
    let errors = Passwords::from_data(&data(&[("again", "b")])).unwrap_err();
    assert!(errors.form().is_empty() && errors.has("password") && !errors.has("again"));
}

#[test]
fn bound_fields_describe_each_control() {
    let blank = Everything::blank();
    let f = |name| blank.field(name).unwrap();
    assert_eq!((f("title").label, f("title").help), ("Title", Some("Short and sweet.")));
    assert_eq!(f("raw").label, "Raw", "the default label is the name, capitalized");
    let kinds: Vec<&str> = blank.fields().iter().map(|f| f.input_type).collect();
    assert_eq!(
        kinds,
        [
            "text", "text", "email", "url", "text", "number", "number", "checkbox", "select",
            "select", "textarea"
        ]
    );
    assert!(f("title").required && f("count").required && !f("ratio").required);
    assert_eq!(f("title").max_length, Some(10));
    assert_eq!((f("count").min.clone(), f("count").step), (Some(Arg::Int(1)), None));
    assert_eq!((f("ratio").min.clone(), f("ratio").step), (Some(Arg::Float(-0.5)), Some("any")));
    assert_eq!(f("color").choices.len(), 2);
    assert!(!blank.has_errors());

    let pairs = [("title", " <b>x</b> "), ("subscribe", "on"), ("color", "green"), ("count", "x")];
    let submitted = data(&pairs);
    let errors = Everything::from_data(&submitted).unwrap_err();
    let bound = BoundForm::submitted::<Everything>(&submitted, &errors);
    let f = |name| bound.field(name).unwrap();
    assert_eq!(f("title").value, " <b>x</b> ", "the value as entered");
    assert!(f("subscribe").checked);
    assert!(f("color").choices.iter().any(|c| c.value == "green" && c.selected));
    assert_eq!(f("count").errors, ["Count must be a whole number."]);
    assert!(bound.has_errors());

    let form = Passwords { password: "p".into(), again: "q".into() };
    let bound = form.bound();
    assert_eq!(bound.field("again").unwrap().value, "q");
    assert_eq!(bound.field("again").unwrap().input_type, "password");
}

/// The macros of templates/forms.html, rendered by minijinja with autoescape as in an app.
fn render(source: &str, form: BoundForm) -> String {
    let mut env = minijinja::Environment::new();
    crate::i18n::add_template_functions(&mut env, &crate::i18n::I18n::english());
    env.add_template("forms.html", include_str!("../../templates/forms.html")).unwrap();
    env.add_template_owned("page.html", source.to_string()).unwrap();
    env.get_template("page.html").unwrap().render(minijinja::context! { form }).unwrap()
}

#[test]
fn macros_render_fields_with_their_errors() {
    let submitted = data(&[("title", "<b>\"x\""), ("count", "x"), ("slug", "a b")]);
    let errors = Everything::from_data(&submitted).unwrap_err();
    let bound = BoundForm::submitted::<Everything>(&submitted, &errors);
    let html = render(
        r#"{% import "forms.html" as forms %}{{ forms.errors(form, prefix="p-") }}{{ forms.fields(form, prefix="p-") }}"#,
        bound,
    );
    assert!(html.contains(r#"<div class="errors" role="alert">"#), "{html}");
    assert!(html.contains(r##"<a href="#p-count">Count must be a whole number.</a>"##), "{html}");
    assert!(html.contains(r#"<label for="p-title">Title</label>"#), "{html}");
    assert!(
        html.contains(
            r#"<input type="text" id="p-title" name="title" required aria-describedby="p-title-help" value="&lt;b&gt;&quot;x&quot;" maxlength="10">"#
        ),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<input type="number" id="p-count" name="count" required class="invalid" aria-invalid="true" aria-describedby="p-count-error" value="x" min="1" max="10">"#
        ),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<p id="p-count-error" class="field-error">Count must be a whole number.</p>"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"<small id="p-title-help" class="hint">Short and sweet.</small>"#));
    assert!(html.contains("<textarea id=\"p-slug\" name=\"slug\" class=\"invalid\" aria-invalid=\"true\" aria-describedby=\"p-slug-error\">\na b</textarea>"), "{html}");
    assert!(
        html.contains(r#"<input type="checkbox" id="p-subscribe" name="subscribe" value="on">"#),
        "{html}"
    );
    assert!(html.contains(r#"<option value="green">Green</option>"#), "{html}");
    assert!(html.contains(r#"step="any""#), "{html}");
}

#[test]
fn macros_render_nothing_for_a_form_without_errors() {
    let html = render(
        r#"{% import "forms.html" as forms %}{{ forms.errors(form) }}"#,
        Everything::blank(),
    );
    assert_eq!(html.trim(), "");
    let html = render(
        r#"{% import "forms.html" as forms %}{{ forms.field(form.field.again) }}"#,
        Passwords { password: "secret".into(), again: String::new() }.bound(),
    );
    assert!(html.contains(r#"<input type="password" id="again" name="again">"#), "{html}");
    let html = render(
        r#"{% import "forms.html" as forms %}{{ forms.field(form.field.password) }}"#,
        Passwords { password: "secret".into(), again: String::new() }.bound(),
    );
    assert!(!html.contains("secret"), "{html}");
}

#[test]
fn urlencoded_bodies() {
    let data = FormData::from_urlencoded(b"title=a+b%26c&tag=x&tag=y&empty=&csrf_token=t").unwrap();
    assert_eq!(data.get("title"), Some("a b&c"));
    assert_eq!(data.get("tag"), Some("x"), "the first of a repeated name");
    assert_eq!(data.get_all("tag").collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!((data.get("empty"), data.get("missing")), (Some(""), None));
    assert_eq!(FormData::from_urlencoded(b"").unwrap(), FormData::default());
}
