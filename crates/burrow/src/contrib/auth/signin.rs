//! Signing in with a passkey, and out: the login page and its two JSON steps, logout.

use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use super::guards::{self, AuthState, login, safe_next};
use super::{ClientIp, events, options_json, passkeys, users, verification};
use crate::contrib::messages::Messages;
use crate::error::Result;
use crate::i18n::Locale;
use crate::template::{Html, Render};

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

pub(super) async fn page(
    auth: AuthState,
    Query(query): Query<NextQuery>,
    render: Render,
) -> Result<Html> {
    let next = query.next.as_deref().and_then(safe_next);
    let user = auth.user().await?;
    let passkeys = auth.config().rp.is_some();
    let signed_in_as = user.map(|u| u.name().to_string());
    render.page("auth/login.html", context! { next, signed_in_as, passkeys })
}

pub(super) async fn logout(
    auth: AuthState,
    messages: Messages,
    locale: Locale,
) -> Result<Response> {
    if let Some(user) = auth.user().await? {
        let db = auth.config().db.clone();
        db.write(move |c| {
            users::end_sessions(c, user.id)?;
            events::record(c, events::Event::new("signed_out", &user))
        })
        .await?;
        messages.success(locale.t("auth-signed-out"))?;
    }
    if let Some(session) = auth.session() {
        guards::logout(session);
    }
    Ok(Redirect::to(&auth.config().logout_redirect).into_response())
}

pub(super) async fn begin(auth: AuthState, locale: Locale) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let rp = config.relying_party(&locale)?;
    Ok(options_json(passkeys::begin_login(rp, &config.db, session).await?))
}

#[derive(Deserialize)]
pub(super) struct LoginFinish {
    credential: PublicKeyCredential,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn finish(
    auth: AuthState,
    ClientIp(ip): ClientIp,
    messages: Messages,
    locale: Locale,
    Json(form): Json<LoginFinish>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let rp = config.relying_party(&locale)?;
    let verify = config.require_verification;
    let credential = form.credential;
    let mut user =
        passkeys::finish_login(rp, &config.db, session, credential, ip, verify, &locale).await?;
    auth.remember_choice(&mut user).await?;
    if verification::must_verify(config, &user) {
        verification::refuse(config, session, &user, ip).await?;
        let error = locale.t("auth-not-verified");
        let body = serde_json::json!({ "error": error, "redirect": "/auth/verify-pending" });
        let mut res = (StatusCode::FORBIDDEN, Json(body)).into_response();
        // The JSON is the answer the page's script reads, not an error page.
        res.extensions_mut().insert(crate::error::Handled);
        return Ok(res);
    }
    login(session, &user)?;
    messages.success(locale.t_args("auth-signed-in-as", &[("name", &user.name())]))?;
    let next = form.next.as_deref().and_then(safe_next).unwrap_or(&config.login_redirect);
    Ok(Json(serde_json::json!({ "redirect": next })).into_response())
}
