//! Email verification (`--auth-require-verification`): a link `{base}/auth/verify-email?token=`
//! mailed to the account's address, valid 24 hours, used once. The table keeps the
//! SHA-256 of the 32 random bytes and the address it was sent to, never the token.
//!
//! Until the address is verified the account cannot sign in (passkey or recovery code):
//! the browser is sent to `/auth/verify-pending`, which says so and offers a new link.
//! Opening the link verifies the address; in the browser that registered (or tried to
//! sign in) it also signs in. Asking for a new link answers the same whether or not the
//! address belongs to an account, so the form tells nobody who has one. An invitation
//! mailed to an address verifies it: registering with one needs no second mail.

use std::time::Duration;

use axum::extract::{Form, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use minijinja::context;
use serde::Deserialize;

use super::ClientIp;
use super::events::{self, Event};
use super::guards::{AuthConfig, AuthState, login};
use super::links::hash;
use super::recovery::NEW_CODES;
use super::users::{self, User};
use crate::contrib::messages::Messages;
use crate::contrib::session::Session;
use crate::db::{Conn, DbError, params, utc_at, utc_now};
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::mail::Email;
use crate::template::Render;

/// How long a verification link works.
pub(crate) const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The session's note of whose verification this browser waits for: set by a
/// registration or a refused sign-in (both proved the passkey), read by the pending page
/// and by the link, which then signs in.
pub(super) const PENDING: &str = "_auth_pending_verification";

/// A new link's token for `user`'s address, replacing any earlier one; `None` for an
/// account without an address. In the caller's write transaction.
pub(crate) fn issue(c: &Conn, user: &User) -> Result<Option<String>, DbError> {
    let Some(email) = &user.email else { return Ok(None) };
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes);
    let token = B64.encode(bytes);
    let expires_at = utc_at(time::OffsetDateTime::now_utc() + LIFETIME);
    c.execute("DELETE FROM email_verifications WHERE user_id = ?", params![user.id])?;
    c.execute(
        "INSERT INTO email_verifications (user_id, email, token_hash, expires_at) \
         VALUES (?, ?, ?, ?)",
        params![user.id, email.as_str(), hash(&token), expires_at.as_str()],
    )?;
    events::record(c, Event::new("verification_sent", user).detail(format!("to {email}")))?;
    Ok(Some(token))
}

/// Verifies the address a valid link was sent to: the user, now verified; `None` for a
/// link that is unknown, used, expired, or for an address the account no longer has.
pub(crate) fn consume(
    c: &Conn,
    token: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Option<User>, DbError> {
    if token.len() != 43 || B64.decode(token).is_err() {
        return Ok(None);
    }
    let row: Option<(i64, String)> = c.query_opt(
        "SELECT user_id, email FROM email_verifications WHERE token_hash = ? AND expires_at > ?",
        params![hash(token), utc_now()],
    )?;
    let Some((user_id, email)) = row else { return Ok(None) };
    c.execute("DELETE FROM email_verifications WHERE user_id = ?", params![user_id])?;
    let Some(user) = users::by_id(c, user_id)? else { return Ok(None) };
    if user.email.as_deref() != Some(email.as_str()) || !user.is_active {
        return Ok(None);
    }
    c.execute(
        "UPDATE users SET email_verified = ?, updated_at = ? WHERE id = ?",
        params![true, utc_now(), user.id],
    )?;
    events::record(c, Event::new("email_verified", &user).detail(email).ip(ip))?;
    users::by_id(c, user.id)
}

/// Whether `user` may sign in: not while `--auth-require-verification` waits for their
/// address.
pub(super) fn must_verify(config: &AuthConfig, user: &User) -> bool {
    config.require_verification && !user.email_verified
}

/// Issues a link for `user` and mails it in the background.
pub(super) async fn send(config: &AuthConfig, user: &User) -> Result<()> {
    let owner = user.clone();
    let Some(token) = config.db.write(move |c| issue(c, &owner)).await? else { return Ok(()) };
    let Some(to) = &user.email else { return Ok(()) };
    let base = config.base_url.trim_end_matches('/');
    let values = context! {
        name => user.name(),
        url => format!("{base}/auth/verify-email?token={token}"),
        hours => LIFETIME.as_secs() / 3600,
        base_url => base,
    };
    // In the user's language, whoever's request sends it.
    let locale = config.templates.i18n().locale(&user.language);
    let email = Email::render(&config.templates, "auth/mail/verify_email", to, locale.with(values))
        .map_err(|e| Error::internal(e.to_string()))?;
    config.mailer.deliver(email).await.map_err(|e| Error::internal(e.to_string()))?;
    Ok(())
}

/// Refuses a sign-in that waits for verification: the browser remembers whose it is, a
/// new link goes out, and the answer says where to go.
pub(super) async fn refuse(
    config: &AuthConfig,
    session: &Session,
    user: &User,
    ip: Option<std::net::IpAddr>,
) -> Result<()> {
    session.insert(PENDING, user.id).map_err(|e| Error::internal(e.to_string()))?;
    let key = user.email.clone().unwrap_or_default();
    let mail = config.limits.mail_to(&key).is_ok();
    let owner = user.clone();
    let refused = move |c: &Conn| {
        let refused = Event::new("sign_in_refused", &owner).detail("email not verified").ip(ip);
        events::record(c, refused)
    };
    config.db.write(refused).await?;
    // A new link, unless this address got its share lately.
    if mail { send(config, user).await } else { Ok(()) }
}

/// The address this browser waits to see verified, if any.
async fn pending_user(auth: &AuthState) -> Result<Option<User>> {
    let Some(id) = auth.session().and_then(|s| s.get::<i64>(PENDING)) else { return Ok(None) };
    let user = auth.config().db.read(move |c| users::by_id(c, id)).await?;
    Ok(user.filter(|u| u.is_active && !u.email_verified))
}

pub(super) async fn pending_page(auth: AuthState, render: Render) -> Result<Response> {
    let user = pending_user(&auth).await?;
    let email = user.and_then(|u| u.email);
    Ok(render
        .page("auth/verify_pending.html", context! { email, hours => LIFETIME.as_secs() / 3600 })?
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

pub(super) async fn verify(
    auth: AuthState,
    messages: Messages,
    ClientIp(ip): ClientIp,
    Query(query): Query<TokenQuery>,
    render: Render,
    locale: Locale,
) -> Result<Response> {
    let token = query.token.unwrap_or_default();
    let config = auth.config();
    let Some(mut user) = config.db.write(move |c| consume(c, &token, ip)).await? else {
        let page = render.page(
            "auth/verify_pending.html",
            context! { invalid_link => true, hours => LIFETIME.as_secs() / 3600 },
        )?;
        return Ok((StatusCode::BAD_REQUEST, page).into_response());
    };
    let session = auth.session_or_error()?;
    // The browser that registered or tried to sign in proved the passkey: it signs in.
    if session.get::<i64>(PENDING) == Some(user.id) {
        session.remove(PENDING);
        // Set by the registration: its recovery codes are shown now.
        let codes = session.get::<bool>(NEW_CODES).unwrap_or(false);
        auth.remember_choice(&mut user).await?;
        login(session, &user)?;
        messages.success(locale.t_args("auth-verified-welcome", &[("name", &user.name())]))?;
        let next = if codes { "/auth/recovery-codes/" } else { config.login_redirect.as_str() };
        return Ok(Redirect::to(next).into_response());
    }
    messages.success(locale.t("auth-verified-sign-in"))?;
    Ok(Redirect::to(config.login_path).into_response())
}

#[derive(Deserialize)]
pub(super) struct ResendForm {
    #[serde(default)]
    email: String,
}

pub(super) async fn resend(
    auth: AuthState,
    messages: Messages,
    locale: Locale,
    Form(form): Form<ResendForm>,
) -> Result<Response> {
    let config = auth.config();
    let email = users::normalize_email(&form.email).unwrap_or_default();
    // The same answer whoever asks: an address with an unverified account gets a new
    // link, any other address nothing, and the page says the same.
    let shown = if email.is_empty() {
        locale.t("auth-resend-sent-any")
    } else {
        locale.t_args("auth-resend-sent", &[("email", &email)])
    };
    if !email.is_empty() {
        if let Err(too_many) = config.limits.mail_to(&email) {
            return Ok(too_many.into_response());
        }
        let wanted = email.clone();
        let user = config.db.read(move |c| users::by_email(c, &wanted)).await?;
        if let Some(user) = user.filter(|u| u.is_active && !u.email_verified) {
            send(config, &user).await?;
        }
    }
    messages.info(shown)?;
    Ok(Redirect::to("/auth/verify-pending").into_response())
}
