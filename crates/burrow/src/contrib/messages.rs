//! Flash messages: kept in the session and shown once, like Django's messages framework.
//!
//! Handlers add them with the [`Messages`] extractor; templates read them with
//! `messages()`, which also removes them, so a message shows on the next page rendered
//! (typically after a redirect) and never again.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use minijinja::value::Value;
use serde::{Deserialize, Serialize};

use super::session::Session;
use crate::app::App;
use crate::error::Error;
use crate::template::{RequestContext, RequestInfo};

const KEY: &str = "_messages";

/// Registers flash messages (needs the session app).
#[derive(Default)]
pub struct FlashMessages;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Success,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub level: Level,
    pub text: String,
}

impl App for FlashMessages {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["session"]
    }

    fn request_context(&self, request: &RequestInfo, context: &mut RequestContext) {
        let session = request.extensions.get::<Session>().cloned();
        context.function("messages", move || -> Value {
            let messages: Vec<Message> =
                session.as_ref().and_then(|s| s.take(KEY)).unwrap_or_default();
            Value::from(minijinja::value::Serde(messages))
        });
    }
}

/// Adds flash messages for the next page.
pub struct Messages(Session);

impl Messages {
    pub fn add(&self, level: Level, text: impl Into<String>) -> Result<(), Error> {
        let mut messages: Vec<Message> = self.0.get(KEY).unwrap_or_default();
        messages.push(Message { level, text: text.into() });
        Ok(self.0.insert(KEY, messages)?)
    }

    pub fn info(&self, text: impl Into<String>) -> Result<(), Error> {
        self.add(Level::Info, text)
    }

    pub fn success(&self, text: impl Into<String>) -> Result<(), Error> {
        self.add(Level::Success, text)
    }

    pub fn warning(&self, text: impl Into<String>) -> Result<(), Error> {
        self.add(Level::Warning, text)
    }

    pub fn error(&self, text: impl Into<String>) -> Result<(), Error> {
        self.add(Level::Error, text)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Messages {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Messages(Session::from_request_parts(parts, state).await?))
    }
}
