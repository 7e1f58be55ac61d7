//! Registering an account with a passkey: the page (with or without an invitation) and
//! its two JSON steps.

use axum::Json;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::guards::{AuthState, login};
use super::recovery::NEW_CODES;
use super::{ClientIp, invites, options_json, passkeys, verification};
use crate::contrib::messages::Messages;
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::template::Render;

#[derive(Deserialize)]
pub(super) struct InviteQuery {
    invite: Option<String>,
}

pub(super) async fn page(
    auth: AuthState,
    Query(query): Query<InviteQuery>,
    render: Render,
) -> Result<Response> {
    if auth.user().await?.is_some() {
        return Ok(Redirect::to(&auth.config().login_redirect).into_response());
    }
    let config = auth.config();
    let passkeys = config.rp.is_some();
    let token = query.invite.clone().unwrap_or_default();
    let (users, invited) = config
        .db
        .read(move |c| {
            let (users,): (i64,) = c.query_one("SELECT count(*) FROM users", &[])?;
            Ok((users, invites::peek(c, &token)?))
        })
        .await?;
    // The form, unless registering needs an invite this visit does not bring.
    let closed = query.invite.is_some() && invited.is_none()
        || config.invite_only && users > 0 && invited.is_none();
    let context = context! {
        use_email => config.use_email,
        require_verification => config.require_verification,
        passkeys,
        closed,
        invite => invited.is_some().then_some(query.invite),
        invited_email => invited,
    };
    Ok(render.page("auth/register.html", context)?.into_response())
}

#[derive(Deserialize)]
pub(super) struct RegisterBegin {
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    invite: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

pub(super) async fn begin(
    auth: AuthState,
    locale: Locale,
    Json(form): Json<RegisterBegin>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let who = passkeys::Registrant {
        username: &form.username,
        display_name: &form.display_name,
        invite: form.invite.as_deref().filter(|t| !t.is_empty()),
        invite_only: config.invite_only,
        use_email: config.use_email,
        email: form.email.as_deref(),
        require_verification: config.require_verification,
    };
    let rp = config.relying_party(&locale)?;
    let options = passkeys::begin_registration(rp, &config.db, session, &who, &locale).await?;
    Ok(options_json(options))
}

pub(super) async fn finish(
    auth: AuthState,
    ClientIp(ip): ClientIp,
    messages: Messages,
    locale: Locale,
    Json(credential): Json<RegisterPublicKeyCredential>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let rp = config.relying_party(&locale)?;
    // The account's language is the request's (see `guards`).
    let user =
        passkeys::finish_registration(rp, &config.db, session, credential, ip, &locale).await?;
    session.insert(NEW_CODES, true).map_err(|e| Error::internal(e.to_string()))?;
    if verification::must_verify(config, &user) {
        // Signed in once the address is verified (see `verification`).
        session
            .insert(verification::PENDING, user.id)
            .map_err(|e| Error::internal(e.to_string()))?;
        verification::send(config, &user).await?;
        messages.success(locale.t("auth-registered-verify"))?;
        return Ok(Json(serde_json::json!({ "redirect": "/auth/verify-pending" })).into_response());
    }
    login(session, &user)?;
    messages.success(locale.t_args("auth-welcome", &[("name", &user.name())]))?;
    Ok(Json(serde_json::json!({ "redirect": "/auth/recovery-codes/" })).into_response())
}
