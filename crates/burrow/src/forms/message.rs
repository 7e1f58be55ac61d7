//! Validation messages as a code and arguments, rendered to English in one place
//! ([`Message::english`]), so a translation can key on the code alone.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// One validation error: a stable `code` (`"required"`, `"max_length"`, …) and the values
/// its text needs (`("max", 200)`). Rules and `clean` produce these; text is made only when
/// a form is shown ([`Message::english`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    pub code: Cow<'static, str>,
    pub args: Vec<(&'static str, Arg)>,
}

/// An argument of a [`Message`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Arg {
    Int(i64),
    Float(f64),
    Text(Cow<'static, str>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Int(n) => write!(f, "{n}"),
            Arg::Float(x) => write!(f, "{x}"),
            Arg::Text(s) => f.write_str(s),
        }
    }
}

macro_rules! int_args {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(n: $t) -> Arg {
                // Only limits written in code reach here; none is beyond i64.
                Arg::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_args!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl From<f64> for Arg {
    fn from(x: f64) -> Arg {
        // Whole limits print as `10`, not `10.0`.
        if x.fract() == 0.0 && x.abs() < 1e15 { Arg::Int(x as i64) } else { Arg::Float(x) }
    }
}

impl From<&'static str> for Arg {
    fn from(s: &'static str) -> Arg {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(Cow::Owned(s))
    }
}

impl Message {
    /// A message with no arguments yet: `Message::new("too_early").arg("min", "09:00")`.
    pub fn new(code: impl Into<Cow<'static, str>>) -> Message {
        Message { code: code.into(), args: Vec::new() }
    }

    /// Adds an argument.
    pub fn arg(mut self, name: &'static str, value: impl Into<Arg>) -> Message {
        self.args.push((name, value.into()));
        self
    }

    /// A message whose English text is given as is (code `text`, argument `text`): for an
    /// app's own rules before it cares about translation.
    pub fn text(text: impl Into<Cow<'static, str>>) -> Message {
        Message::new("text").arg("text", Arg::Text(text.into()))
    }

    /// The argument `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The English text, for a field labelled `label` (`None` for errors about the whole
    /// form). Every built-in code has a sentence; an unknown code says the value is invalid.
    pub fn english(&self, label: Option<&str>) -> String {
        let subject = label.unwrap_or("This field");
        let arg = |name: &str| self.get(name).map(Arg::to_string).unwrap_or_default();
        match &*self.code {
            "required" => format!("{subject} is required."),
            "max_length" => format!("{subject} must be at most {} characters.", arg("max")),
            "min_length" => format!("{subject} must be at least {} characters.", arg("min")),
            "max" => format!("{subject} must be at most {}.", arg("max")),
            "min" => format!("{subject} must be at least {}.", arg("min")),
            "integer" => format!("{subject} must be a whole number."),
            "number" => format!("{subject} must be a number."),
            "email" => format!("{subject} must be an email address."),
            "url" => format!("{subject} must be a web address starting with http:// or https://."),
            "regex" => format!("{subject} is not in the expected format."),
            "choice" => format!("{subject} must be one of the choices offered."),
            "file_size" => {
                format!("{subject} must be at most {} (this file is {}).", arg("max"), arg("size"))
            }
            "file_type" => format!("{subject} must be a file of type {}.", arg("allowed")),
            "text" => arg("text"),
            _ => format!("{subject} is not valid."),
        }
    }
}

/// A [`Message`] as a template gets it: its code and arguments, which `error_text()`
/// translates (catalog key `validation-CODE`, the field's label as `{field}`), and its
/// English text.
#[derive(Clone, Debug, Serialize)]
pub struct ShownMessage {
    pub code: Cow<'static, str>,
    pub args: std::collections::BTreeMap<&'static str, Arg>,
    pub english: String,
}

impl Message {
    /// This message for a template, for a field labelled `label`.
    pub fn shown(&self, label: Option<&str>) -> ShownMessage {
        ShownMessage {
            code: self.code.clone(),
            args: self.args.iter().cloned().collect(),
            english: self.english(label),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.english(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_an_english_sentence() {
        let title = Some("Title");
        let cases = [
            (Message::new("required"), "Title is required."),
            (
                Message::new("max_length").arg("max", 200usize),
                "Title must be at most 200 characters.",
            ),
            (Message::new("min_length").arg("min", 3usize), "Title must be at least 3 characters."),
            (Message::new("max").arg("max", 10.0), "Title must be at most 10."),
            (Message::new("min").arg("min", 0.5), "Title must be at least 0.5."),
            (Message::new("integer"), "Title must be a whole number."),
            (Message::new("number"), "Title must be a number."),
            (Message::new("email"), "Title must be an email address."),
            (Message::new("url"), "Title must be a web address starting with http:// or https://."),
            (Message::new("regex"), "Title is not in the expected format."),
            (Message::new("choice"), "Title must be one of the choices offered."),
            (
                Message::new("file_size").arg("max", "5 MB").arg("size", "7.5 MB"),
                "Title must be at most 5 MB (this file is 7.5 MB).",
            ),
            (
                Message::new("file_type").arg("allowed", "image/png, image/jpeg"),
                "Title must be a file of type image/png, image/jpeg.",
            ),
            (Message::text("Pick a weekday."), "Pick a weekday."),
            (Message::new("made_up"), "Title is not valid."),
        ];
        for (message, english) in cases {
            assert_eq!(message.english(title), english, "{message:?}");
        }
        assert_eq!(Message::new("required").to_string(), "This field is required.");
    }

    #[test]
    fn messages_serialize_as_code_and_arguments() {
        let m = Message::new("max_length").arg("max", 200usize);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"code":"max_length","args":[["max",200]]}"#
        );
    }
}
