//! Bound forms: each field with its label, value, control and errors, for templates.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};

use super::Form;
use super::data::FormData;
use super::errors::Errors;
use super::field::{Field, InputType, is_checked};
use super::message::{Arg, ShownMessage};

/// A form ready to show: every field in declaration order, with what the user entered and
/// the errors in English. Serializes to `{ fields: [...], field: { name: ... }, errors:
/// [...], has_errors }`, which `forms.html`'s macros read.
#[derive(Clone, Debug)]
pub struct BoundForm {
    fields: Vec<BoundField>,
    errors: Vec<String>,
    /// The same errors for translation (`error_text()` in templates).
    messages: Vec<ShownMessage>,
}

/// One field as a template sees it.
#[derive(Clone, Debug, Serialize)]
pub struct BoundField {
    pub name: &'static str,
    pub label: &'static str,
    pub help: Option<&'static str>,
    /// `text`, `textarea`, `email`, `url`, `number`, `checkbox`, `select`, …
    pub input_type: &'static str,
    /// As entered (not trimmed), so a re-shown form loses nothing.
    pub value: String,
    /// For a checkbox.
    pub checked: bool,
    pub required: bool,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub min: Option<Arg>,
    pub max: Option<Arg>,
    /// `any` for numbers with a fraction.
    pub step: Option<&'static str>,
    pub choices: Vec<Choice>,
    /// For a file: the types it may be (the input's `accept`).
    pub accept: Option<&'static str>,
    /// The field's errors in English.
    pub errors: Vec<String>,
    /// The same errors for translation: `forms.html` shows them with `error_text()`, in
    /// the page's language.
    pub messages: Vec<ShownMessage>,
}

/// One option of a select.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl BoundForm {
    /// An empty form (a "new" page).
    pub fn blank<T: Form>() -> BoundForm {
        BoundForm::build(T::fields(), |_| String::new(), &Errors::new())
    }

    /// A form showing `form`'s values (an "edit" page).
    pub fn initial<T: Form>(form: &T) -> BoundForm {
        let values = form.values();
        BoundForm::build(
            T::fields(),
            |i| values.get(i).cloned().unwrap_or_default(),
            &Errors::new(),
        )
    }

    /// A submission shown again with its errors.
    pub fn submitted<T: Form>(data: &FormData, errors: &Errors) -> BoundForm {
        let fields = T::fields();
        BoundForm::build(fields, |i| data.get(fields[i].name).unwrap_or_default().into(), errors)
    }

    pub(crate) fn build(
        fields: &[Field],
        value: impl Fn(usize) -> String,
        errors: &Errors,
    ) -> BoundForm {
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let value = value(i);
                BoundField {
                    name: field.name,
                    label: field.label,
                    help: field.help,
                    input_type: field.input.as_str(),
                    checked: field.input == InputType::Checkbox && is_checked(&value),
                    required: field.required,
                    min_length: field.min_length,
                    max_length: field.max_length,
                    min: field.min.map(Arg::from),
                    max: field.max.map(Arg::from),
                    step: field.fractional.then_some("any"),
                    choices: field
                        .choices
                        .iter()
                        .map(|(v, label)| Choice {
                            value: v.to_string(),
                            label: label.to_string(),
                            selected: *v == value.trim(),
                        })
                        .collect(),
                    accept: field.accept,
                    errors: errors
                        .field(field.name)
                        .map(|m| m.english(Some(field.label)))
                        .collect(),
                    messages: errors
                        .field(field.name)
                        .map(|m| m.shown(Some(field.label)))
                        .collect(),
                    value,
                }
            })
            .collect();
        BoundForm {
            fields,
            errors: errors.form().iter().map(|m| m.english(None)).collect(),
            messages: errors.form().iter().map(|m| m.shown(None)).collect(),
        }
    }

    /// Adds a field that is not the form type's (the admin's relation selects).
    pub(crate) fn push(&mut self, field: BoundField) {
        self.fields.push(field);
    }

    pub fn fields(&self) -> &[BoundField] {
        &self.fields
    }

    pub fn field(&self, name: &str) -> Option<&BoundField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The errors about the whole form, in English.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.fields.iter().any(|f| !f.errors.is_empty())
    }

    /// Adds an error about the whole form after validation (e.g. a unique title the
    /// database refused), already in English.
    pub fn add_error(&mut self, message: impl Into<String>) {
        let message = super::Message::text(message.into());
        self.errors.push(message.english(None));
        self.messages.push(message.shown(None));
    }
}

impl Serialize for BoundForm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The fields again, by name: `form.field.title` in a template.
        struct ByName<'a>(&'a [BoundField]);
        impl Serialize for ByName<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for field in self.0 {
                    map.serialize_entry(field.name, field)?;
                }
                map.end()
            }
        }
        let mut s = serializer.serialize_struct("BoundForm", 5)?;
        s.serialize_field("fields", &self.fields)?;
        s.serialize_field("field", &ByName(&self.fields))?;
        s.serialize_field("errors", &self.errors)?;
        s.serialize_field("messages", &self.messages)?;
        s.serialize_field("has_errors", &self.has_errors())?;
        s.end()
    }
}

/// So a context can hold a form as is: `context! { form => NoteForm::blank() }`.
impl From<BoundForm> for minijinja::Value {
    fn from(form: BoundForm) -> minijinja::Value {
        minijinja::Value::from(minijinja::value::Serde(form))
    }
}
