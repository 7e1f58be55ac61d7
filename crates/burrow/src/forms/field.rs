//! What a form declares about each field ([`Field`], built by `#[derive(Form)]` as a
//! `static`), and how a Rust type is read from form input ([`FieldValue`]).

use std::sync::OnceLock;

use serde::Serialize;

use super::message::Message;
use super::upload::UploadedFile;
use crate::db::Value;

/// The HTML control a field is shown as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Text,
    Textarea,
    Email,
    Url,
    Number,
    Checkbox,
    Select,
    Password,
    Hidden,
    Date,
    File,
}

impl InputType {
    pub const fn as_str(self) -> &'static str {
        match self {
            InputType::Text => "text",
            InputType::Textarea => "textarea",
            InputType::Email => "email",
            InputType::Url => "url",
            InputType::Number => "number",
            InputType::Checkbox => "checkbox",
            InputType::Select => "select",
            InputType::Password => "password",
            InputType::Hidden => "hidden",
            InputType::Date => "date",
            InputType::File => "file",
        }
    }
}

/// A `#[form(regex = "…")]` pattern, compiled on first use. The derive checks its syntax
/// at compile time; it must match the whole value, as HTML's `pattern` does.
pub struct Pattern {
    source: &'static str,
    compiled: OnceLock<regex::Regex>,
}

impl Pattern {
    pub const fn new(source: &'static str) -> Pattern {
        Pattern { source, compiled: OnceLock::new() }
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.compiled
            .get_or_init(|| {
                regex::Regex::new(&format!("^(?:{})$", self.source))
                    .expect("#[derive(Form)] checked this pattern's syntax")
            })
            .is_match(text)
    }
}

/// One field of a form: its name in the body, how it is shown, and its rules. Built with
/// the `const` methods below, by `#[derive(Form)]`.
#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub help: Option<&'static str>,
    pub input: InputType,
    pub required: bool,
    /// A number with a fraction ([`FieldValue::FRACTIONAL`]).
    pub fractional: bool,
    /// Surrounding whitespace is removed before parsing and validation.
    pub trim: bool,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub email: bool,
    pub url: bool,
    pub regex: Option<&'static Pattern>,
    /// `(value, label)` pairs; the value must be one of them.
    pub choices: &'static [(&'static str, &'static str)],
    /// A file's size in bytes at most.
    pub max_size: Option<u64>,
    /// The sniffed types a file may have, comma-separated (`image/png,image/*`).
    pub accept: Option<&'static str>,
}

/// Field builders taking the field's type check, at compile time, that a rule fits it
/// (`max_length` on an `i64` is an error naming [`TextValue`]).
impl Field {
    pub const fn new<T: FieldValue>(name: &'static str, label: &'static str) -> Field {
        Field {
            name,
            label,
            help: None,
            input: T::INPUT,
            required: T::REQUIRED,
            fractional: T::FRACTIONAL,
            trim: true,
            min_length: None,
            max_length: None,
            min: None,
            max: None,
            email: false,
            url: false,
            regex: None,
            choices: &[],
            max_size: None,
            accept: None,
        }
    }

    pub const fn help(mut self, help: &'static str) -> Field {
        self.help = Some(help);
        self
    }

    pub const fn widget(mut self, input: InputType) -> Field {
        self.input = input;
        self
    }

    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub const fn no_trim(mut self) -> Field {
        self.trim = false;
        self
    }

    pub const fn min_length<T: TextValue>(mut self, min: usize) -> Field {
        self.min_length = Some(min);
        self
    }

    pub const fn max_length<T: TextValue>(mut self, max: usize) -> Field {
        self.max_length = Some(max);
        self
    }

    pub const fn min<T: NumberValue>(mut self, min: f64) -> Field {
        self.min = Some(min);
        self
    }

    pub const fn max<T: NumberValue>(mut self, max: f64) -> Field {
        self.max = Some(max);
        self
    }

    pub const fn email<T: TextValue>(mut self) -> Field {
        self.email = true;
        if matches!(self.input, InputType::Text) {
            self.input = InputType::Email;
        }
        self
    }

    pub const fn url<T: TextValue>(mut self) -> Field {
        self.url = true;
        if matches!(self.input, InputType::Text) {
            self.input = InputType::Url;
        }
        self
    }

    pub const fn regex<T: TextValue>(mut self, pattern: &'static Pattern) -> Field {
        self.regex = Some(pattern);
        self
    }

    pub const fn max_size<T: FileValue>(mut self, bytes: u64) -> Field {
        self.max_size = Some(bytes);
        self
    }

    pub const fn accept<T: FileValue>(mut self, types: &'static str) -> Field {
        self.accept = Some(types);
        self
    }

    pub const fn choices(mut self, choices: &'static [(&'static str, &'static str)]) -> Field {
        self.choices = choices;
        if matches!(self.input, InputType::Text | InputType::Number) {
            self.input = InputType::Select;
        }
        self
    }
}

/// A type a form field can hold: how it is read from the submitted text and written back
/// into an input.
pub trait FieldValue: Sized {
    /// The control shown unless `#[form(widget = "…")]` says otherwise.
    const INPUT: InputType;
    /// True for types with no empty value (numbers): the field is always required.
    const REQUIRED: bool;
    /// True for numbers with a fraction: the input takes `step="any"`, else browsers
    /// refuse `2.5`.
    const FRACTIONAL: bool = false;

    /// True for uploaded files: the value comes from a file part ([`FieldValue::from_file`]).
    const FILE: bool = false;

    /// Reads the submitted text (already trimmed unless `no_trim`); `None` when the field
    /// was absent.
    fn parse(input: Option<&str>) -> Result<Self, Message>;

    /// Reads a file field from the uploaded file, if one was sent (types with `FILE`).
    fn from_file(file: Option<&UploadedFile>) -> Result<Self, Message> {
        let _ = file;
        Self::parse(None)
    }

    /// The text an input shows for this value.
    fn to_input(&self) -> String;

    /// The value as a number, for `min` and `max`.
    fn number(&self) -> Option<f64> {
        None
    }

    /// The value as a column stores it (the admin saves forms with it): the input's text
    /// unless the type says otherwise.
    fn to_value(&self) -> Value {
        Value::Text(self.to_input())
    }
}

/// Types whose input is text: `min_length`, `max_length`, `email`, `url`, `regex`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not text: this rule needs a `String` or `Option<String>` field",
    label = "a rule for text fields"
)]
pub trait TextValue: FieldValue {}

/// Uploaded files: `max_size` and `accept`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a file: this rule needs an `UploadedFile` or `Option<UploadedFile>` \
               field",
    label = "a rule for file fields"
)]
pub trait FileValue: FieldValue {}

/// A required file.
impl FieldValue for UploadedFile {
    const INPUT: InputType = InputType::File;
    const REQUIRED: bool = true;
    const FILE: bool = true;

    fn parse(_: Option<&str>) -> Result<Self, Message> {
        Err(Message::new("required"))
    }

    fn from_file(file: Option<&UploadedFile>) -> Result<Self, Message> {
        file.cloned().ok_or_else(|| Message::new("required"))
    }

    /// A file input shows nothing (browsers allow no value).
    fn to_input(&self) -> String {
        String::new()
    }

    /// Where the bytes are stored: the app's column holds the hash.
    fn to_value(&self) -> Value {
        Value::Text(self.sha256().to_string())
    }
}
impl FileValue for UploadedFile {}

impl FieldValue for Option<UploadedFile> {
    const INPUT: InputType = InputType::File;
    const REQUIRED: bool = false;
    const FILE: bool = true;

    fn parse(_: Option<&str>) -> Result<Self, Message> {
        Ok(None)
    }

    fn from_file(file: Option<&UploadedFile>) -> Result<Self, Message> {
        Ok(file.cloned())
    }

    fn to_input(&self) -> String {
        String::new()
    }

    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, |f| Value::Text(f.sha256().to_string()))
    }
}
impl FileValue for Option<UploadedFile> {}

/// Numeric types: `min` and `max`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number: `min` and `max` need a number or `Option` of one",
    label = "a rule for number fields"
)]
pub trait NumberValue: FieldValue {}

impl FieldValue for String {
    const INPUT: InputType = InputType::Text;
    const REQUIRED: bool = false;

    fn parse(input: Option<&str>) -> Result<Self, Message> {
        Ok(input.unwrap_or_default().to_string())
    }

    fn to_input(&self) -> String {
        self.clone()
    }
}
impl TextValue for String {}

impl FieldValue for Option<String> {
    const INPUT: InputType = InputType::Text;
    const REQUIRED: bool = false;

    fn parse(input: Option<&str>) -> Result<Self, Message> {
        Ok(input.filter(|s| !s.is_empty()).map(str::to_string))
    }

    fn to_input(&self) -> String {
        self.clone().unwrap_or_default()
    }

    fn to_value(&self) -> Value {
        Value::from(self.clone())
    }
}
impl TextValue for Option<String> {}

/// A checkbox: browsers send it only when checked, so an absent field is `false`.
impl FieldValue for bool {
    const INPUT: InputType = InputType::Checkbox;
    const REQUIRED: bool = false;

    fn parse(input: Option<&str>) -> Result<Self, Message> {
        Ok(is_checked(input.unwrap_or_default()))
    }

    fn to_input(&self) -> String {
        if *self { "on".into() } else { String::new() }
    }

    fn to_value(&self) -> Value {
        Value::Integer(*self as i64)
    }
}

/// What a checked checkbox sends: `on` (no `value` attribute) or a true-ish value.
pub(crate) fn is_checked(input: &str) -> bool {
    matches!(input.trim().to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes")
}

macro_rules! numbers {
    ($code:literal, $fractional:literal: $($t:ty),*) => {$(
        impl FieldValue for $t {
            const INPUT: InputType = InputType::Number;
            const REQUIRED: bool = true;
            const FRACTIONAL: bool = $fractional;

            fn parse(input: Option<&str>) -> Result<Self, Message> {
                let text = input.unwrap_or_default().trim();
                if text.is_empty() {
                    return Err(Message::new("required"));
                }
                number_from(text).ok_or_else(|| Message::new($code))
            }

            fn to_input(&self) -> String {
                self.to_string()
            }

            fn number(&self) -> Option<f64> {
                Some(*self as f64)
            }

            fn to_value(&self) -> Value {
                NumberToValue::to_value(*self)
            }
        }
        impl NumberValue for $t {}

        impl FieldValue for Option<$t> {
            const INPUT: InputType = InputType::Number;
            const REQUIRED: bool = false;
            const FRACTIONAL: bool = $fractional;

            fn parse(input: Option<&str>) -> Result<Self, Message> {
                match input.map(str::trim).filter(|t| !t.is_empty()) {
                    None => Ok(None),
                    Some(text) => number_from(text).map(Some).ok_or_else(|| Message::new($code)),
                }
            }

            fn to_input(&self) -> String {
                self.map(|n| n.to_string()).unwrap_or_default()
            }

            fn number(&self) -> Option<f64> {
                self.map(|n| n as f64)
            }

            fn to_value(&self) -> Value {
                self.map_or(Value::Null, NumberToValue::to_value)
            }
        }
        impl NumberValue for Option<$t> {}
    )*};
}
numbers!("integer", false: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
numbers!("number", true: f32, f64);

/// A number as a column stores it: integers as integers, fractions as reals.
trait NumberToValue {
    fn to_value(self) -> Value;
}

macro_rules! number_to_value {
    (int: $($t:ty),*) => {$(
        impl NumberToValue for $t {
            fn to_value(self) -> Value {
                // A `u64` past `i64::MAX` fits no integer column; it goes as a real.
                i64::try_from(self).map_or(Value::Real(self as f64), Value::Integer)
            }
        }
    )*};
    (float: $($t:ty),*) => {$(
        impl NumberToValue for $t {
            fn to_value(self) -> Value {
                Value::Real(self as f64)
            }
        }
    )*};
}
number_to_value!(int: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
number_to_value!(float: f32, f64);

/// A number from text; infinities and NaN are not numbers a form means.
fn number_from<N: std::str::FromStr + Copy + Into<Finite>>(text: &str) -> Option<N> {
    text.parse::<N>().ok().filter(|n| (*n).into().0)
}

/// Whether a parsed number is finite (integers always are).
struct Finite(bool);

macro_rules! finite {
    (int: $($t:ty),*) => {$(
        impl From<$t> for Finite {
            fn from(_: $t) -> Finite {
                Finite(true)
            }
        }
    )*};
    (float: $($t:ty),*) => {$(
        impl From<$t> for Finite {
            fn from(x: $t) -> Finite {
                Finite(x.is_finite())
            }
        }
    )*};
}
finite!(int: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
finite!(float: f32, f64);
