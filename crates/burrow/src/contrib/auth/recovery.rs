//! Recovery codes: 8 single-use codes per user, for signing in without a passkey.
//!
//! A code is 12 characters from an alphabet without look-alikes (no `0 1 i l o`), shown
//! as `xxxx-xxxx-xxxx`; typed in any case, with or without the dashes. The table keeps an
//! Argon2id hash of each (19 MiB, 2 passes: a stolen database does not give the codes
//! back), never the code. Checking a code costs the same 8 Argon2 runs whoever asks and
//! whatever they type, so the time of an answer tells nothing; the hashing runs on a
//! blocking thread, outside any database transaction.

use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::Form;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::ClientIp;
use super::events::{self, Event};
use super::guards::{AuthState, RequireAuth, login};
use super::users::{self, User};
use crate::contrib::messages::Messages;
use crate::contrib::securecookie::same_bytes;
use crate::db::{Conn, DbError, params, utc_now};
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::template::{Html, Render};

/// Codes per user.
pub(crate) const COUNT: usize = 8;
const LENGTH: usize = 12;
const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Argon2id: m = 19 MiB, t = 2, p = 1 (OWASP's minimum for Argon2id), 32-byte output.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// New codes, as shown: `xxxx-xxxx-xxxx`.
pub(crate) fn new_codes() -> Vec<String> {
    (0..COUNT).map(|_| new_code()).collect()
}

fn new_code() -> String {
    let mut code = String::with_capacity(LENGTH + 2);
    while code.len() < LENGTH + 2 {
        let mut byte = [0u8; 1];
        crate::random::fill(&mut byte);
        // 248 = 8 × 31: the bytes above it would make some characters likelier.
        if byte[0] < 248 {
            if code.len() == 4 || code.len() == 9 {
                code.push('-');
            }
            code.push(ALPHABET[usize::from(byte[0] % 31)] as char);
        }
    }
    code
}

/// A code as typed, as it was hashed: lowercase, without dashes or spaces; `None` if it
/// cannot be one.
pub(crate) fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

/// `salt$hash`, both hex: what the table stores of a code.
pub(crate) fn hash(code: &str) -> String {
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt);
    let out = derive(code, &salt);
    format!("{}${}", hex(&salt), hex(&out))
}

fn derive(code: &str, salt: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let plain = normalize(code).unwrap_or_default();
    argon2().hash_password_into(plain.as_bytes(), salt, &mut out).expect("Argon2 with valid sizes");
    out
}

/// Which of `stored` (up to [`COUNT`] `(id, salt$hash)`) `typed` matches. Always runs
/// [`COUNT`] derivations and compares in constant time.
pub(crate) fn find(typed: &str, stored: &[StoredCode]) -> Option<i64> {
    let code = normalize(typed);
    let mut found = None;
    for slot in 0..COUNT {
        let (id, salt, expected) =
            match stored.get(slot).and_then(|(id, s)| split(s).map(|p| (*id, p))) {
                Some((id, (salt, expected))) => (Some(id), salt, expected),
                None => (None, vec![0u8; 16], vec![0u8; 32]),
            };
        let got = derive(code.as_deref().unwrap_or("-"), &salt);
        if same_bytes(&got, &expected) && code.is_some() && found.is_none() {
            found = id;
        }
    }
    found
}

fn split(stored: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (salt, hash) = stored.split_once('$')?;
    Some((unhex(salt)?, unhex(hash)?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Replaces the user's codes with `hashes` (made with [`hash`] before the transaction).
pub(crate) fn replace(c: &Conn, user: &User, hashes: &[String]) -> Result<(), DbError> {
    c.execute("DELETE FROM recovery_codes WHERE user_id = ?", params![user.id])?;
    for hash in hashes {
        c.execute(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
            params![user.id, hash.as_str()],
        )?;
    }
    events::record(c, Event::new("recovery_codes_generated", user))
}

/// A stored code: its row id and `salt$hash`.
pub(crate) type StoredCode = (i64, String);

/// The user named `username` (if active) and their unused codes.
pub(crate) fn unused(c: &Conn, username: &str) -> Result<(Option<User>, Vec<StoredCode>), DbError> {
    let Some(user) = users::by_username(c, username)?.filter(|u| u.is_active) else {
        return Ok((None, Vec::new()));
    };
    let sql = "SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL \
               ORDER BY id";
    let codes = c.query(sql, params![user.id])?;
    Ok((Some(user), codes))
}

/// Marks code `id` used; false if another request used it first.
pub(crate) fn use_code(c: &Conn, id: i64) -> Result<bool, DbError> {
    let sql = "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL";
    Ok(c.execute(sql, params![utc_now(), id])? == 1)
}

/// How many unused codes the user has left.
pub(crate) fn remaining(c: &Conn, user_id: i64) -> Result<i64, DbError> {
    let sql = "SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL";
    let (n,): (i64,) = c.query_one(sql, params![user_id])?;
    Ok(n)
}

/// Where the session marks that the next visit of the recovery-codes page makes new codes
/// (after a registration or a regeneration): the codes are shown by the request that
/// made them, and never stored in plain text.
pub(super) const NEW_CODES: &str = "_auth_new_codes";

pub(super) async fn codes_page(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    render: Render,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let db = auth.config().db.clone();
    let mut response = if session.take::<bool>(NEW_CODES).unwrap_or(false) {
        let codes = new_codes();
        let shown = codes.clone();
        let hashes =
            tokio::task::spawn_blocking(move || codes.iter().map(|c| hash(c)).collect::<Vec<_>>())
                .await
                .map_err(|e| Error::internal(format!("hashing recovery codes: {e}")))?;
        let owner = user.clone();
        db.write(move |c| replace(c, &owner, &hashes)).await?;
        render.page("auth/recovery_codes.html", context! { codes => shown })?.into_response()
    } else {
        let id = user.id;
        let remaining = db.read(move |c| remaining(c, id)).await?;
        let context = context! { remaining, total => COUNT };
        render.page("auth/recovery_codes.html", context)?.into_response()
    };
    // Codes on the page: no cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(super) async fn regenerate(
    auth: AuthState,
    RequireAuth(_user): RequireAuth,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    session.insert(NEW_CODES, true).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Redirect::to("/auth/recovery-codes/").into_response())
}

pub(super) async fn page(auth: AuthState, render: Render) -> Result<Html> {
    render.page("auth/recovery.html", context! { use_email => auth.config().use_email })
}

#[derive(Deserialize)]
pub(super) struct RecoveryForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    code: String,
}

pub(super) async fn sign_in(
    auth: AuthState,
    messages: Messages,
    ClientIp(ip): ClientIp,
    render: Render,
    locale: Locale,
    Form(form): Form<RecoveryForm>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let account = users::normalize_username(&form.username).unwrap_or_default();
    if let Err(too_many) = auth.config().limits.code_for(&account) {
        return Ok(too_many.into_response());
    }
    let db = auth.config().db.clone();
    let name = form.username.clone();
    let (user, stored) = db.read(move |c| unused(c, &name)).await?;
    let typed = form.code.clone();
    let found = tokio::task::spawn_blocking(move || find(&typed, &stored))
        .await
        .map_err(|e| Error::internal(format!("checking a recovery code: {e}")))?;
    let signed_in = match (user, found) {
        // A right code, for an address still to verify: refused, the code kept.
        (Some(mut user), Some(_)) if super::verification::must_verify(auth.config(), &user) => {
            // The mail it sends is in the user's language (a choice made now counts).
            auth.remember_choice(&mut user).await?;
            super::verification::refuse(auth.config(), session, &user, ip).await?;
            return Ok(Redirect::to("/auth/verify-pending").into_response());
        }
        (Some(user), Some(code_id)) => {
            db.write(move |c| {
                if !use_code(c, code_id)? {
                    return Ok(None);
                }
                let left = remaining(c, user.id)?;
                let detail = format!("{left} left");
                events::record(
                    c,
                    events::Event::new("recovery_code_used", &user).detail(detail).ip(ip),
                )?;
                events::record(
                    c,
                    events::Event::new("signed_in", &user).detail("with a recovery code").ip(ip),
                )?;
                Ok(Some((user, left)))
            })
            .await?
        }
        _ => None,
    };
    let Some((mut user, left)) = signed_in else {
        let username = form.username;
        let use_email = auth.config().use_email;
        let context = context! { username, failed => true, use_email };
        let page = render.page("auth/recovery.html", context)?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    auth.remember_choice(&mut user).await?;
    login(session, &user)?;
    messages.success(locale.t_args("auth-recovery-signed-in", &[("count", &left)]))?;
    Ok(Redirect::to("/auth/recovery-codes/").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_twelve_unambiguous_characters_in_three_groups() {
        let codes = new_codes();
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!((&code[4..5], &code[9..10]), ("-", "-"), "{code}");
            assert!(normalize(code).is_some(), "{code}");
            assert!(!code.contains(['0', '1', 'i', 'l', 'o']), "{code}");
        }
        assert_ne!(codes[0], codes[1]);
    }

    #[test]
    fn a_code_matches_in_any_case_with_or_without_dashes_and_only_its_own() {
        let codes = new_codes();
        let stored: Vec<(i64, String)> =
            codes.iter().enumerate().take(3).map(|(i, c)| (i as i64 + 1, hash(c))).collect();
        assert_eq!(find(&codes[1], &stored), Some(2));
        assert_eq!(find(&codes[1].to_uppercase().replace('-', ""), &stored), Some(2));
        assert_eq!(find(&format!(" {} ", codes[2].replace('-', " ")), &stored), Some(3));
        assert_eq!(find(&codes[5], &stored), None, "a code that is not stored");
        assert_eq!(find("not-a-code", &stored), None);
        assert_eq!(find(&codes[0], &[]), None);
        assert!(!stored[0].1.contains(&codes[0].replace('-', "")), "only a hash is kept");
    }
}
