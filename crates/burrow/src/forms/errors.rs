//! [`Errors`]: what was wrong with a submission, per field and for the whole form.

use super::message::Message;

/// Validation errors: messages per field, in the order found, and messages about the
/// form as a whole (from [`Clean::clean`](super::Clean::clean)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Errors {
    fields: Vec<(&'static str, Message)>,
    form: Vec<Message>,
}

impl Errors {
    pub fn new() -> Errors {
        Errors::default()
    }

    /// Adds an error to the field `name` (the Rust field's name).
    pub fn add(&mut self, field: &'static str, message: Message) {
        self.fields.push((field, message));
    }

    /// Adds an error about the form as a whole (e.g. "the passwords differ").
    pub fn add_form(&mut self, message: Message) {
        self.form.push(message);
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_empty()
    }

    /// The errors of one field.
    pub fn field(&self, name: &str) -> impl Iterator<Item = &Message> {
        self.fields.iter().filter(move |(n, _)| *n == name).map(|(_, m)| m)
    }

    /// True if the field has at least one error.
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| *n == name)
    }

    /// Every field error as (field, message), in the order found.
    pub fn fields(&self) -> &[(&'static str, Message)] {
        &self.fields
    }

    /// The errors about the whole form.
    pub fn form(&self) -> &[Message] {
        &self.form
    }
}
