//! Forms: declared once with `#[derive(Form)]`, parsed from a request, validated, and shown
//! again with their errors.
//!
//! A form is a struct; attributes on its fields give the rules, the label and the control.
//! The handler takes a [`FormResult`]: the valid value, or the submission to show again
//! with a 422 (for htmx, with `HX-Retarget`/`HX-Reswap` so the form replaces itself).
//! Templates draw fields with the macros of `forms.html`; docs/forms.md walks through it.
//!
//! ```
//! use burrow::forms::{Clean, Errors, Form, FormData, Message};
//!
//! #[derive(Form)]
//! #[form(clean)]
//! struct Signup {
//!     #[form(required, email, label = "Email address")]
//!     email: String,
//!     #[form(required, min_length = 12, widget = "password", no_trim)]
//!     password: String,
//!     #[form(widget = "password", no_trim)]
//!     again: String,
//!     #[form(min = 13, max = 130)]
//!     age: Option<u32>,
//!     #[form(choices = &[("en", "English"), ("fr", "Français")])]
//!     language: String,
//!     #[form(required, label = "I accept the terms")]
//!     terms: bool,
//! }
//!
//! impl Clean for Signup {
//!     fn clean(&mut self, errors: &mut Errors) {
//!         if self.password != self.again {
//!             errors.add("again", Message::new("password_mismatch"));
//!         }
//!     }
//! }
//!
//! let data: FormData = [
//!     ("email", " ada@example.com "),
//!     ("password", "correct horse battery"),
//!     ("again", "correct horse battery"),
//!     ("age", "36"),
//!     ("language", "en"),
//!     ("terms", "on"),
//!     ("csrf_token", "ignored: forms read only their own fields"),
//! ]
//! .into_iter()
//! .collect();
//! let signup = Signup::from_data(&data).unwrap();
//! assert_eq!((signup.email.as_str(), signup.age), ("ada@example.com", Some(36)));
//!
//! let errors = Signup::from_data(&FormData::default()).err().unwrap();
//! let first = errors.field("email").next().unwrap();
//! assert_eq!(first.code, "required");
//! assert_eq!(first.english(Some("Email address")), "Email address is required.");
//! ```
//!
//! In a handler (`Render` renders the template; `form` is added to its context):
//!
//! ```no_run
//! # use burrow::forms::Form;
//! # #[derive(Form)] struct Signup { #[form(required)] email: String }
//! use burrow::axum::response::{IntoResponse, Redirect, Response};
//! use burrow::forms::{FormResult, Valid};
//! use burrow::minijinja::context;
//! use burrow::{Error, Render};
//!
//! async fn signup(render: Render, form: FormResult<Signup>) -> Result<Response, Error> {
//!     let signup = match form {
//!         Ok(Valid(signup)) => signup,
//!         Err(invalid) => return invalid.page(&render, "signup.html", context! {}),
//!     };
//!     // … store `signup` …
//!     Ok(Redirect::to("/welcome").into_response())
//! }
//! ```
//!
//! Mistakes in a declaration are compile errors: an unknown key,
//!
//! ```compile_fail
//! #[derive(burrow::forms::Form)]
//! struct Note {
//!     #[form(maxlength = 200)] // unknown attribute `form(maxlength)`: a field takes …
//!     title: String,
//! }
//! ```
//!
//! a rule that does not fit the field's type,
//!
//! ```compile_fail
//! #[derive(burrow::forms::Form)]
//! struct Note {
//!     #[form(max_length = 200)] // `i64` is not text: this rule needs a `String` …
//!     count: i64,
//! }
//! ```
//!
//! or a pattern that is not a regular expression:
//!
//! ```compile_fail
//! #[derive(burrow::forms::Form)]
//! struct Note {
//!     #[form(regex = "[a-z")] // `regex` is not a valid pattern: unclosed character class
//!     code: String,
//! }
//! ```
//!
//! Error messages are codes with arguments ([`Message`]), made English by
//! [`Message::english`] only when shown, so they can be translated by code later.

mod bound;
mod data;
mod errors;
pub(crate) mod extract;
mod field;
mod message;
mod rules;
mod upload;

pub use bound::{BoundField, BoundForm, Choice};
pub use burrow_macros::Form;
pub use data::FormData;
pub use errors::Errors;
pub use extract::{FormResult, Invalid, Valid};
pub use field::{Field, FieldValue, FileValue, InputType, NumberValue, Pattern, TextValue};
pub use message::{Arg, Message, ShownMessage};
pub use rules::{is_email, is_url, read_field};
pub(crate) use upload::Spool;
pub use upload::UploadedFile;

/// A form: its fields and how to read them. Implemented by `#[derive(Form)]`; an app
/// writes only [`Clean`], when it needs cross-field checks.
pub trait Form: Clean + Sized {
    /// Every field, in declaration order.
    fn fields() -> &'static [Field];

    /// Reads every field and checks its own rules (not [`Clean::clean`]).
    fn read_fields(data: &FormData) -> Result<Self, Errors>;

    /// Each field's value as an input would show it, in the order of [`Form::fields`].
    fn values(&self) -> Vec<String>;

    /// Each field's value as a column stores it ([`FieldValue::to_value`]), in the order
    /// of [`Form::fields`]: what the admin saves.
    fn db_values(&self) -> Vec<crate::db::Value>;

    /// Reads and validates a submission: the fields' rules, then, if they all pass,
    /// [`Clean::clean`]. Fields that are not the form's (`csrf_token`) are ignored.
    fn from_data(data: &FormData) -> Result<Self, Errors> {
        let mut form = Self::read_fields(data)?;
        let mut errors = Errors::new();
        form.clean(&mut errors);
        if errors.is_empty() { Ok(form) } else { Err(errors) }
    }

    /// An empty form to show (a "new" page).
    fn blank() -> BoundForm {
        BoundForm::blank::<Self>()
    }

    /// This value as a form to show (an "edit" page).
    fn bound(&self) -> BoundForm {
        BoundForm::initial(self)
    }
}

/// Checks across fields, run once every field passed its own rules. `#[derive(Form)]`
/// implements it with no checks unless the struct says `#[form(clean)]`; then the app
/// implements it.
pub trait Clean {
    /// Adds errors to a field ([`Errors::add`]) or to the whole form ([`Errors::add_form`]);
    /// may also normalize values.
    fn clean(&mut self, errors: &mut Errors) {
        let _ = errors;
    }
}

#[cfg(test)]
mod tests;
