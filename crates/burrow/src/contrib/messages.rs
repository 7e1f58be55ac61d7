//! Flash messages: kept in the session and shown once, like Django's messages framework.
//!
//! Handlers add them with the [`Messages`] extractor; templates read them with
//! `messages()`, which also removes them, so a message shows on the next page rendered
//! (typically after a redirect) and never again.
//!
//! The messages travel in the session cookie, which browsers cap at 4096 bytes. Adding one
//! never fails the response (by then the handler's write is usually committed): when the
//! cookie would be too large, the oldest messages are dropped, then the new message's text
//! is shortened, and a warning is logged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use minijinja::value::Value;
use serde::{Deserialize, Serialize};

use super::session::Session;
use crate::app::App;
use crate::error::Error;
use crate::template::{TemplateEnv, request_of};

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

    fn template_env(&self, env: &mut TemplateEnv) {
        env.add_function("messages", |state: &minijinja::State| -> Value {
            let request = request_of(state);
            let session = request.as_ref().and_then(|r| Session::of(&r.extensions));
            let messages: Vec<Message> = session.and_then(|s| s.take(KEY)).unwrap_or_default();
            Value::from(minijinja::value::Serde(messages))
        });
    }
}

/// Adds flash messages for the next page.
pub struct Messages(Session);

impl Messages {
    /// Adds a message for the next page, making room in the cookie if need be (see the
    /// module documentation). Never fails; the `Result` keeps handlers' `?` valid should
    /// adding ever need to fail.
    pub fn add(&self, level: Level, text: impl Into<String>) -> Result<(), Error> {
        let mut messages: Vec<Message> = self.0.get(KEY).unwrap_or_default();
        messages.push(Message { level, text: text.into() });
        let total = messages.len();
        while !self.store(&messages) {
            if messages.len() > 1 {
                messages.remove(0);
                continue;
            }
            // Lengths only in the log: message texts may hold what users typed.
            let dropped = total - 1;
            let last = messages.pop().expect("the new message");
            match self.store_shortened(last) {
                Some(chars) => tracing::warn!(
                    dropped,
                    shortened_to_chars = chars,
                    "a flash message was shortened to fit in the session cookie (4096 bytes)"
                ),
                None => tracing::warn!(
                    dropped = total,
                    "flash messages dropped: the rest of the session leaves no room in the cookie"
                ),
            }
            return Ok(());
        }
        if messages.len() < total {
            tracing::warn!(
                dropped = total - messages.len(),
                "the oldest flash messages were dropped to fit in the session cookie (4096 bytes)"
            );
        }
        Ok(())
    }

    /// Stores the messages; false if they were not stored (the session cookie would be too
    /// large), in which case the session keeps what it held before.
    fn store(&self, messages: &[Message]) -> bool {
        match self.0.insert(KEY, messages) {
            Ok(()) => true,
            Err(e) => {
                if !e.is_too_large() {
                    tracing::error!("flash messages not stored: {e}");
                }
                false
            }
        }
    }

    /// Stores `message` alone, its text cut to the most characters that fit, plus an
    /// ellipsis; returns how many. `None` (and no messages at all) when the rest of the
    /// session leaves no room even for an empty one.
    fn store_shortened(&self, message: Message) -> Option<usize> {
        let Message { level, text: full } = message;
        // A binary search over prefixes: JSON escapes and encryption make the cookie size of
        // a prefix hard to predict, and each try costs one cookie encoding. A failed try
        // leaves the session holding the last one that fitted.
        let (mut fits, mut low, mut too_long) = (None, 0, full.chars().count());
        while low < too_long {
            let mid = low + (too_long - low) / 2;
            let text = full.chars().take(mid).chain(['…']).collect();
            if self.store(&[Message { level, text }]) {
                fits = Some(mid);
                low = mid + 1;
            } else {
                too_long = mid;
            }
        }
        if fits.is_none() {
            self.0.remove(KEY);
        }
        fits
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
