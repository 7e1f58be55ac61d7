//! One language's messages, read from the TOML catalogs apps ship in `translations/`.
//!
//! A catalog maps keys to texts; a text names its arguments in braces (`{name}`, `{{`
//! for a literal brace). A key whose value is a table holds plural forms, chosen by the
//! `count` argument with the language's CLDR rules:
//!
//! ```toml
//! notes-saved = "Note saved."
//! greeting = "Hello, {name}!"
//!
//! [notes-count]
//! one = "{count} note"
//! other = "{count} notes"
//! ```

use std::collections::HashMap;
use std::fmt::Write;

use intl_pluralrules::{PluralCategory, PluralRuleType, PluralRules};

/// A text split at its arguments, parsed once when the catalog loads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Text(Vec<Piece>);

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(String),
    Arg(String),
}

/// The forms a plural message may have, in CLDR's order.
const FORMS: [&str; 6] = ["zero", "one", "two", "few", "many", "other"];

#[derive(Clone, Debug)]
pub(crate) enum Message {
    Text(Text),
    /// Indexed like [`FORMS`]; `other` is always there.
    Plural(Box<[Option<Text>; 6]>),
}

/// The messages of one language, merged from every app's catalog for it.
pub(crate) struct Catalog {
    pub(crate) messages: HashMap<String, Message>,
    plurals: Option<PluralRules>,
}

impl Catalog {
    /// An empty catalog for `tag`; CLDR has plural rules for nearly every language, and a
    /// language it does not know always takes the `other` form.
    pub(crate) fn new(tag: &str) -> Catalog {
        let plurals = tag
            .parse::<unic_langid::LanguageIdentifier>()
            .ok()
            .and_then(|id| PluralRules::create(id, PluralRuleType::CARDINAL).ok());
        Catalog { messages: HashMap::new(), plurals }
    }

    /// Adds the messages of one catalog file; a key already present is replaced (a later
    /// app overrides an earlier app's text, as with templates). `Err` names the key.
    pub(crate) fn load(&mut self, source: &str) -> Result<(), String> {
        let table: toml::Table = source.parse().map_err(|e: toml::de::Error| {
            e.message().lines().next().unwrap_or("not TOML").to_string()
        })?;
        for (key, value) in table {
            let message = match value {
                toml::Value::String(text) => Message::Text(parse(&text).map_err(in_key(&key))?),
                toml::Value::Table(forms) => Message::Plural(plural(forms).map_err(in_key(&key))?),
                _ => return Err(format!("{key}: a text, or a table of plural forms")),
            };
            self.messages.insert(key, message);
        }
        Ok(())
    }

    /// The text of `key` for `count` (which picks a plural form), if the key is here.
    pub(crate) fn text(&self, key: &str, count: Option<&str>) -> Option<&Text> {
        match self.messages.get(key)? {
            Message::Text(text) => Some(text),
            Message::Plural(forms) => {
                let category = count
                    .and_then(|n| self.plurals.as_ref()?.select(n).ok())
                    .unwrap_or(PluralCategory::OTHER);
                let index = match category {
                    PluralCategory::ZERO => 0,
                    PluralCategory::ONE => 1,
                    PluralCategory::TWO => 2,
                    PluralCategory::FEW => 3,
                    PluralCategory::MANY => 4,
                    PluralCategory::OTHER => 5,
                };
                forms[index].as_ref().or(forms[5].as_ref())
            }
        }
    }
}

fn in_key(key: &str) -> impl Fn(String) -> String + '_ {
    move |e| format!("{key}: {e}")
}

fn plural(forms: toml::Table) -> Result<Box<[Option<Text>; 6]>, String> {
    let mut out: Box<[Option<Text>; 6]> = Box::default();
    for (form, text) in forms {
        let Some(index) = FORMS.iter().position(|f| *f == form) else {
            return Err(format!(
                "`{form}` is not a plural form (zero, one, two, few, many, other)"
            ));
        };
        let toml::Value::String(text) = text else {
            return Err(format!("the `{form}` form must be a text"));
        };
        out[index] = Some(parse(&text)?);
    }
    if out[5].is_none() {
        return Err("a plural message needs its `other` form".into());
    }
    Ok(out)
}

/// Splits `{name}` arguments out of a text; `{{` and `}}` are literal braces.
fn parse(text: &str) -> Result<Text, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                let valid = closed
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "`{{{name}` is not an argument like {{name}} (write {{{{ for a brace)"
                    ));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Arg(name));
            }
            '}' => return Err("a lone `}` (write }} for a brace)".into()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(Text(pieces))
}

impl Text {
    /// The text with its arguments filled in from `args`; an argument not given stays
    /// `{name}`, so the gap shows.
    pub(crate) fn format(&self, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Arg(name) => match args.iter().find(|(n, _)| n == name) {
                    Some((_, value)) => {
                        let _ = write!(out, "{value}");
                    }
                    None => {
                        let _ = write!(out, "{{{name}}}");
                    }
                },
            }
        }
        out
    }

    /// The names of the arguments it uses, sorted: a translation should use the same.
    pub(crate) fn args(&self) -> Vec<&str> {
        let mut names: Vec<&str> = (self.0.iter())
            .filter_map(|p| match p {
                Piece::Arg(name) => Some(name.as_str()),
                Piece::Literal(_) => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl Message {
    /// Every argument any of its forms uses.
    pub(crate) fn args(&self) -> Vec<&str> {
        match self {
            Message::Text(text) => text.args(),
            Message::Plural(forms) => {
                let mut names: Vec<&str> = forms.iter().flatten().flat_map(Text::args).collect();
                names.sort_unstable();
                names.dedup();
                names
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(tag: &str, source: &str) -> Catalog {
        let mut c = Catalog::new(tag);
        c.load(source).unwrap();
        c
    }

    #[test]
    fn texts_take_named_arguments_and_literal_braces() {
        let c = catalog("en", "greeting = \"Hello, {name}! {{not an arg}}\"");
        let text = c.text("greeting", None).unwrap();
        assert_eq!(text.format(&[("name", &"Ada")]), "Hello, Ada! {not an arg}");
        assert_eq!(text.format(&[]), "Hello, {name}! {not an arg}");
        assert_eq!(text.args(), ["name"]);
    }

    #[test]
    fn plural_forms_follow_each_languages_rules() {
        let source = "[files]\none = \"{count} file\"\nfew = \"{count} files (few)\"\n\
                      many = \"{count} files (many)\"\nother = \"{count} files\"";
        let en = catalog("en", source);
        let pl = catalog("pl", source);
        let pick =
            |c: &Catalog, n: &str| c.text("files", Some(n)).unwrap().format(&[("count", &n)]);
        assert_eq!(pick(&en, "1"), "1 file");
        assert_eq!(pick(&en, "0"), "0 files");
        assert_eq!(pick(&en, "3"), "3 files");
        // Polish: 1 one, 2–4 few, 5–21 many, 22–24 few again.
        assert_eq!(pick(&pl, "1"), "1 file");
        assert_eq!(pick(&pl, "3"), "3 files (few)");
        assert_eq!(pick(&pl, "5"), "5 files (many)");
        assert_eq!(pick(&pl, "22"), "22 files (few)");
        // No count, or a language without rules: `other`.
        assert_eq!(en.text("files", None).unwrap().format(&[("count", &"?")]), "? files");
        assert_eq!(pick(&catalog("xx-nope", source), "1"), "1 files");
    }

    #[test]
    fn a_bad_catalog_names_the_key() {
        let mut c = Catalog::new("en");
        let cases = [
            ("a = 1", "a: a text, or a table of plural forms"),
            ("b = \"{unclosed\"", "b: `{unclosed` is not an argument"),
            ("c = \"lone } brace\"", "c: a lone `}`"),
            ("[d]\none = \"x\"", "d: a plural message needs its `other` form"),
            ("[e]\nsome = \"x\"\nother = \"y\"", "e: `some` is not a plural form"),
            ("f = ", "string values must be quoted"),
        ];
        for (source, error) in cases {
            let e = c.load(source).unwrap_err();
            assert!(e.contains(error), "{source}: {e}");
        }
    }
}
