//! `POST /i18n/language`: the language switcher's form (`lang`, `next`), as Django's
//! `set_language`. It remembers the choice in the [`LANGUAGE_COOKIE`] for a year and
//! sends the visitor back to `next` (a path on this site) or home.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};

use super::{I18n, LANGUAGE_COOKIE};
use crate::error::Error;
use crate::request::safe_next;

pub(crate) const PATH: &str = "/i18n/language";

const YEAR: u64 = 365 * 24 * 3600;

#[derive(serde::Deserialize)]
struct Choice {
    lang: String,
    #[serde(default)]
    next: String,
}

#[derive(Clone)]
struct Switch {
    i18n: Arc<I18n>,
    secure: bool,
}

/// The route, for a site with more than one language (`None` otherwise).
pub(crate) fn routes(i18n: &Arc<I18n>, secure: bool) -> Option<Router> {
    (i18n.tags.len() > 1).then(|| {
        Router::new().route(PATH, post(choose)).with_state(Switch { i18n: i18n.clone(), secure })
    })
}

async fn choose(
    State(switch): State<Switch>,
    Form(choice): Form<Choice>,
) -> Result<Response, Error> {
    let Some(tag) = switch.i18n.tags.iter().find(|t| t.eq_ignore_ascii_case(&choice.lang)) else {
        return Err(Error::bad_request(format!(
            "This site has no language {:?}; it has {}.",
            choice.lang.chars().take(20).collect::<String>(),
            switch.i18n.tags.join(", ")
        )));
    };
    let secure = if switch.secure { "; Secure" } else { "" };
    let cookie =
        format!("{LANGUAGE_COOKIE}={tag}; Path=/; Max-Age={YEAR}; HttpOnly; SameSite=Lax{secure}");
    let mut response = Redirect::to(safe_next(&choice.next).unwrap_or("/")).into_response();
    let value = HeaderValue::from_str(&cookie).map_err(|e| Error::internal(e.to_string()))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(response)
}
