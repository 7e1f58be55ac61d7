//! `/auth/credentials/`: a signed-in user's passkeys: the list, adding another, renaming,
//! and deleting one (never the last: the account would have no way in but its recovery
//! codes). Deleting a passkey ends the user's other sessions, which it may have opened.

use axum::Json;
use axum::extract::{Form, Path};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::events::{self, Event};
use super::guards::{AuthState, RequireAuth, login};
use super::{ClientIp, passkeys, users};
use crate::contrib::messages::Messages;
use crate::db::{Conn, DbError, FromRow, Row, params};
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::template::{Html, Render};

/// A passkey as the list shows it.
#[derive(Debug, Serialize)]
pub(crate) struct Credential {
    id: i64,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    backup_state: bool,
}

impl FromRow for Credential {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Credential {
            id: row.get("id")?,
            name: row.get("name")?,
            created_at: row.get("created_at")?,
            last_used_at: row.get("last_used_at")?,
            backup_state: row.get("backup_state")?,
        })
    }
}

fn list(c: &Conn, user_id: i64) -> Result<Vec<Credential>, DbError> {
    let sql = "SELECT id, name, created_at, last_used_at, backup_state FROM credentials \
               WHERE user_id = ? ORDER BY id";
    c.query(sql, params![user_id])
}

pub(super) async fn page(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    render: Render,
) -> Result<Html> {
    let id = user.id;
    let credentials = auth.config().db.read(move |c| list(c, id)).await?;
    let passkeys = auth.config().rp.is_some();
    render.page("auth/credentials.html", context! { credentials => Serde(&credentials), passkeys })
}

pub(super) async fn begin(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    locale: Locale,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let rp = config.relying_party(&locale)?;
    let options = passkeys::begin_adding(rp, &config.db, session, &user).await?;
    Ok(super::options_json(options))
}

pub(super) async fn finish(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    ClientIp(ip): ClientIp,
    messages: Messages,
    locale: Locale,
    Json(credential): Json<RegisterPublicKeyCredential>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let rp = config.relying_party(&locale)?;
    passkeys::finish_adding(rp, &config.db, session, &user, credential, ip, &locale).await?;
    messages.success(locale.t("auth-passkey-added"))?;
    Ok(Json(serde_json::json!({ "redirect": "/auth/credentials/" })).into_response())
}

#[derive(Deserialize)]
pub(super) struct Rename {
    #[serde(default)]
    name: String,
}

pub(super) async fn rename(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    messages: Messages,
    locale: Locale,
    Path(id): Path<i64>,
    Form(form): Form<Rename>,
) -> Result<Response> {
    let name: String = form.name.trim().chars().take(64).collect();
    if name.is_empty() {
        messages.error(locale.t("auth-passkey-name-needed"))?;
        return Ok(Redirect::to("/auth/credentials/").into_response());
    }
    let sql = "UPDATE credentials SET name = ? WHERE id = ? AND user_id = ?";
    let user_id = user.id;
    let changed =
        auth.config().db.write(move |c| c.execute(sql, params![name, id, user_id])).await?;
    if changed == 0 {
        return Err(Error::not_found());
    }
    messages.success(locale.t("auth-passkey-renamed"))?;
    Ok(Redirect::to("/auth/credentials/").into_response())
}

pub(super) async fn delete(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    messages: Messages,
    locale: Locale,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Response> {
    let owner = (*user).clone();
    let outcome = auth
        .config()
        .db
        .write(move |c| {
            let mine = list(c, owner.id)?;
            let Some(credential) = mine.iter().find(|k| k.id == id) else {
                return Ok(Err(Error::not_found()));
            };
            if mine.len() == 1 {
                return Ok(Ok(None));
            }
            c.execute("DELETE FROM credentials WHERE id = ?", params![id])?;
            users::end_sessions(c, owner.id)?;
            let detail = format!("'{}'", credential.name);
            events::record(c, Event::new("passkey_removed", &owner).detail(detail).ip(ip))?;
            // This session goes on under the new generation.
            Ok(Ok(users::by_id(c, owner.id)?))
        })
        .await??;
    match outcome {
        None => messages.error(locale.t("auth-passkey-only"))?,
        Some(user) => {
            login(auth.session_or_error()?, &user)?;
            messages.success(locale.t("auth-passkey-deleted"))?;
        }
    }
    Ok(Redirect::to("/auth/credentials/").into_response())
}
