//! Invitations: `{base}/auth/register?invite=TOKEN`, valid 7 days, used once. With
//! `--auth-invite-only`, registering needs one (but the very first user's). The table
//! keeps the SHA-256 of the 32 random bytes, never the token; the registration that uses
//! an invite takes it in the transaction that creates the account, so two registrations
//! racing for one invite cannot both win.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::events::{self, Event};
use super::links::hash;
use super::users::User;
use super::users::UserError;
use crate::context::AppContext;
use crate::db::{Conn, DbError, params, utc_at, utc_now};
use crate::mail::{Email, MailError};

/// How long an invite works.
pub(crate) const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A new invite: the token for the URL and when it expires.
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) expires_at: String,
}

/// Creates an invite for `email`, by `by` (none from the command line).
pub(crate) fn create(c: &Conn, email: &str, by: Option<&User>) -> Result<Issued, DbError> {
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes);
    let token = B64.encode(bytes);
    let expires_at = utc_at(time::OffsetDateTime::now_utc() + LIFETIME);
    c.execute(
        "INSERT INTO invites (email, token_hash, created_by, expires_at) VALUES (?, ?, ?, ?)",
        params![email, hash(&token), by.map(|u| u.id), expires_at.as_str()],
    )?;
    let detail = format!("for {email}, expires {expires_at}");
    match by {
        Some(user) => events::record(c, Event::new("invite_created", user).detail(detail))?,
        None => events::record(c, Event::anonymous("invite_created").detail(detail))?,
    }
    Ok(Issued { token, expires_at })
}

/// The email of a valid (unused, unexpired) invite.
pub(crate) fn peek(c: &Conn, token: &str) -> Result<Option<String>, DbError> {
    if token.len() != 43 || B64.decode(token).is_err() {
        return Ok(None);
    }
    let sql =
        "SELECT email FROM invites WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?";
    let row: Option<(String,)> = c.query_opt(sql, params![hash(token), utc_now()])?;
    Ok(row.map(|(email,)| email))
}

/// Uses up a valid invite (by the SHA-256 of its token) for `user` in the caller's
/// transaction; false if it is no longer valid (used meanwhile, or expired).
pub(crate) fn consume_hashed(c: &Conn, token_hash: &str, user: &User) -> Result<bool, DbError> {
    let sql = "UPDATE invites SET used_at = ?, used_by = ? \
               WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?";
    let now = utc_now();
    let used = c.execute(sql, params![now.as_str(), user.id, token_hash, now.as_str()])? == 1;
    if used {
        events::record(c, Event::new("invite_used", user))?;
    }
    Ok(used)
}

/// An invitation to register (what `server create-invite` prints).
#[derive(Clone, Debug)]
pub struct Invite {
    /// Who it is for.
    pub email: String,
    /// `{base URL}/auth/register?invite=…`.
    pub url: String,
    /// When it stops working (UTC): 7 days from now.
    pub expires_at: String,
}

/// Creates an [`Invite`] for `email` (logged in the audit log, the token never).
pub async fn create_invite(ctx: &AppContext, email: &str) -> Result<Invite, UserError> {
    let email = super::users::normalize_email(email).map_err(UserError::Invalid)?;
    let address = email.clone();
    let issued = ctx.db.write(move |c| create(c, &address, None)).await?;
    let base = ctx.settings.base_url.trim_end_matches('/');
    Ok(Invite {
        email,
        url: format!("{base}/auth/register?invite={}", issued.token),
        expires_at: issued.expires_at,
    })
}

/// Mails `invite` to its address in `language` (a tag of the site's languages, e.g. the
/// inviting admin's; empty for the site's default), from the templates
/// `auth/mail/invite.txt` and `.html` (one attempt; mail must be on: `--smtp-host`).
pub async fn mail_invite(
    ctx: &AppContext,
    invite: &Invite,
    language: &str,
) -> Result<(), MailError> {
    let values = minijinja::context! {
        url => &invite.url,
        expires_at => &invite.expires_at,
        base_url => ctx.settings.base_url.trim_end_matches('/'),
    };
    let locale = ctx.templates.i18n().locale(language);
    let email =
        Email::render(&ctx.templates, "auth/mail/invite", &invite.email, locale.with(values))?;
    ctx.mailer.send(&email).await
}
