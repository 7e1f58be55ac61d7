//! Sign-in links (`server users login-link NAME`): how an operator lets someone in on a
//! host without a browser, or rescues an admin who lost every passkey and recovery code.
//! A link holds 32 random bytes; the table keeps only their SHA-256, so a copy of the
//! database signs no one in. A link works once, for 15 minutes.
//!
//! Opening the link shows a page with a button; only its POST signs in, so a mail scanner
//! or a browser prefetching the URL cannot use it up.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use axum::extract::{Form, Query};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::ClientIp;
use super::events::{self, Event};
use super::guards::{AuthState, login};
use super::users::{self, User, UserError};
use crate::context::AppContext;
use crate::contrib::messages::Messages;
use crate::db::{Conn, DbError, params, utc_at, utc_now};
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::template::{Html, Render};

/// How long a sign-in link works.
pub(crate) const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

const PURPOSE: &str = "login_link";

/// A new link's token (for the URL) and when it expires.
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) expires_at: String,
}

/// Creates a link for `user` in the caller's write transaction.
pub(crate) fn issue(c: &Conn, user: &User) -> Result<Issued, DbError> {
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes);
    let token = B64.encode(bytes);
    let expires_at = utc_at(time::OffsetDateTime::now_utc() + LINK_LIFETIME);
    c.execute(
        "INSERT INTO auth_tokens (purpose, token_hash, user_id, expires_at) VALUES (?, ?, ?, ?)",
        params![PURPOSE, hash(&token), user.id, expires_at.as_str()],
    )?;
    let detail = format!("expires {expires_at}");
    events::record(c, Event::new("login_link_issued", user).detail(detail))?;
    Ok(Issued { token, expires_at })
}

/// The active user a valid, unexpired link is for (without using it up).
pub(crate) fn peek(c: &Conn, token: &str) -> Result<Option<User>, DbError> {
    let Some(user_id) = valid(c, token)? else { return Ok(None) };
    Ok(users::by_id(c, user_id)?.filter(|u| u.is_active))
}

/// Uses up a link in the caller's write transaction: the user it signs in, or `None` for a
/// link that is unknown, used, expired or for an inactive user.
pub(crate) fn consume(
    c: &Conn,
    token: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Option<User>, DbError> {
    let Some(user_id) = valid(c, token)? else { return Ok(None) };
    c.execute("DELETE FROM auth_tokens WHERE token_hash = ?", params![hash(token)])?;
    let Some(user) = users::by_id(c, user_id)?.filter(|u| u.is_active) else { return Ok(None) };
    events::record(c, Event::new("signed_in", &user).detail("with a sign-in link").ip(ip))?;
    Ok(Some(user))
}

fn valid(c: &Conn, token: &str) -> Result<Option<i64>, DbError> {
    // Not a token we could have made: no query.
    if token.len() != 43 || B64.decode(token).is_err() {
        return Ok(None);
    }
    let row: Option<(i64,)> = c.query_opt(
        "SELECT user_id FROM auth_tokens WHERE token_hash = ? AND purpose = ? AND expires_at > ?",
        params![hash(token), PURPOSE, utc_now()],
    )?;
    Ok(row.map(|(id,)| id))
}

/// Lowercase hex SHA-256: the lookup key of a token. The token has 256 random bits, so a
/// fast hash is enough (there is nothing to guess), and the lookup's timing tells nothing.
pub(super) fn hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A single-use sign-in link (what `server users login-link` prints).
#[derive(Clone, Debug)]
pub struct LoginLink {
    /// `{base URL}/auth/link?token=…`: opening it shows a button that signs in.
    pub url: String,
    /// When it stops working (UTC, as `utc_now` writes it): 15 minutes from now.
    pub expires_at: String,
}

/// Issues a [`LoginLink`] for an active user (logged in the audit log, the token never).
pub async fn login_link(ctx: &AppContext, username: &str) -> Result<LoginLink, UserError> {
    let name = username.to_string();
    let issued = ctx
        .db
        .write(move |c| {
            let Some(user) = users::by_username(c, &name)? else {
                return Ok(Err(UserError::NotFound(name)));
            };
            if !user.is_active {
                return Ok(Err(UserError::Invalid(format!("user '{name}' is deactivated"))));
            }
            Ok(Ok(issue(c, &user)?))
        })
        .await??;
    let base = ctx.settings.base_url.trim_end_matches('/');
    Ok(LoginLink {
        url: format!("{base}/auth/link?token={}", issued.token),
        expires_at: issued.expires_at,
    })
}

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    token: Option<String>,
}

pub(super) async fn page(
    auth: AuthState,
    Query(query): Query<LinkQuery>,
    render: Render,
    locale: Locale,
) -> Result<Html> {
    let token = query.token.unwrap_or_default();
    let wanted = token.clone();
    let user = auth.config().db.read(move |c| peek(c, &wanted)).await?;
    let user = user.ok_or_else(|| Error::bad_request(locale.t("auth-bad-link")))?;
    render.page("auth/link.html", context! { token, username => user.username })
}

pub(super) async fn sign_in(
    auth: AuthState,
    messages: Messages,
    ClientIp(ip): ClientIp,
    locale: Locale,
    Form(form): Form<LinkQuery>,
) -> Result<Response> {
    let token = form.token.unwrap_or_default();
    let user = auth.config().db.write(move |c| consume(c, &token, ip)).await?;
    let mut user = user.ok_or_else(|| Error::bad_request(locale.t("auth-bad-link")))?;
    auth.remember_choice(&mut user).await?;
    let session = auth.session_or_error()?;
    login(session, &user)?;
    messages.success(locale.t_args("auth-link-signed-in", &[("name", &user.name())]))?;
    // Where the user adds a passkey: links are for accounts without one, or that lost theirs.
    Ok(Redirect::to("/auth/credentials/").into_response())
}
