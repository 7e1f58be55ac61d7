//! Passkeys: registration and sign-in with WebAuthn (webauthn-rs), usernameless.
//!
//! Each ceremony is two requests. `begin` answers the options the browser passes to
//! `navigator.credentials.create()`/`get()` (`{"publicKey": …}`) and keeps the server's
//! half in `auth_ceremonies`, under the SHA-256 of a random id that only the browser's
//! session holds; `finish` takes that row (once: it is deleted in the same transaction)
//! and verifies the browser's answer. Kept in the database, a ceremony begun before a
//! SIGHUP restart, or on another instance, finishes after it; it expires after 5 minutes.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder,
};

use super::events::{self, Event};
use super::invites;
use super::links::hash;
use super::users::{self, NewUser, User, UserError};
use crate::contrib::session::Session;
use crate::db::{Conn, DbError, params, utc_at, utc_now};
use crate::error::Error;
use crate::i18n::Locale;

/// How long a begun ceremony can be finished.
const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Where the session keeps the id of the ceremony in progress.
const SESSION_KEY: &str = "_auth_ceremony";

/// The relying party: who passkeys are for (`--auth-webauthn-rp-id`, its name and origin).
pub(crate) struct RelyingParty {
    pub(crate) webauthn: Webauthn,
}

impl RelyingParty {
    /// Fails (for a start-up error naming the setting) when `rp_id` is not the origin's
    /// host or a parent domain of it; an IP address is never one.
    pub(crate) fn new(rp_id: &str, name: &str, origin: &str) -> Result<RelyingParty, String> {
        let origin = Url::parse(origin).map_err(|e| format!("'{origin}' is not a URL: {e}"))?;
        if origin.domain().is_none() {
            return Err(format!(
                "passkeys need a domain name, not an IP address ('{origin}'): use localhost or \
                 a name"
            ));
        }
        let builder = WebauthnBuilder::new(rp_id, &origin).map_err(|_| {
            format!("'{rp_id}' is not the host of '{origin}' or a parent domain of it")
        })?;
        let webauthn = builder
            .rp_name(name)
            .build()
            .map_err(|e| format!("passkeys cannot be configured: {e}"))?;
        Ok(RelyingParty { webauthn })
    }
}

impl RelyingParty {
    /// The passkey a browser made for a registration or an added passkey, or the 400 that
    /// refuses it.
    fn verify_new(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
        locale: &Locale,
    ) -> Result<Passkey, Error> {
        self.webauthn.finish_passkey_registration(credential, state).map_err(|e| {
            Error::bad_request(locale.t_args("auth-passkey-not-accepted", &[("reason", &e)]))
        })
    }
}

/// What the server keeps of a ceremony between `begin` and `finish`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Ceremony {
    Register {
        username: String,
        display_name: String,
        handle: String,
        /// The invite's email, and the SHA-256 of its token.
        email: Option<String>,
        invite: Option<String>,
        invite_only: bool,
        state: PasskeyRegistration,
    },
    Login {
        state: DiscoverableAuthentication,
    },
    /// Another passkey for a signed-in user.
    Add {
        user_id: i64,
        state: PasskeyRegistration,
    },
}

impl Ceremony {
    fn kind(&self) -> &'static str {
        match self {
            Ceremony::Register { .. } => "register",
            Ceremony::Login { .. } => "login",
            Ceremony::Add { .. } => "add",
        }
    }
}

/// The answer to a `begin`: the options for the browser.
pub(crate) enum Options {
    /// webauthn-rs's `CreationChallengeResponse`, as JSON to ask for a discoverable key.
    Create(serde_json::Value),
    Get(RequestChallengeResponse),
}

/// Who asks to register: the form's fields and the invite they came with.
pub(crate) struct Registrant<'a> {
    pub(crate) username: &'a str,
    pub(crate) display_name: &'a str,
    pub(crate) invite: Option<&'a str>,
    /// `--auth-invite-only`.
    pub(crate) invite_only: bool,
    /// `--auth-use-email`: the username is an email address.
    pub(crate) use_email: bool,
    /// The address typed beside a username (ignored with `use_email` or an invitation).
    pub(crate) email: Option<&'a str>,
    /// `--auth-require-verification`: an address is required.
    pub(crate) require_verification: bool,
}

/// A refusal of what the browser sent, in the request's language.
fn refused(locale: &Locale, key: &str) -> Error {
    Error::bad_request(locale.t(key))
}

/// Rolls a registration back when its invite was used meanwhile.
const INVITE_TAKEN: &str = "the invite was used by another registration";

/// Starts registering a new account with a passkey.
pub(crate) async fn begin_registration(
    rp: &RelyingParty,
    db: &crate::Db,
    session: &Session,
    who: &Registrant<'_>,
    locale: &Locale,
) -> Result<Options, Error> {
    let not_an_email = |_| refused(locale, "auth-email-invalid");
    let username = if who.use_email {
        users::normalize_email(who.username).map_err(not_an_email)?
    } else {
        users::normalize_username(who.username)
            .map_err(|_| refused(locale, "auth-username-invalid"))?
    };
    let display_name = who.display_name;
    let typed = match who.email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(email) => Some(users::normalize_email(email).map_err(not_an_email)?),
        None => None,
    };
    let (taken, invite) = (username.clone(), who.invite.map(str::to_string));
    let wanted = typed.clone();
    let (exists, users, invited) = db
        .read(move |c| {
            let exists = users::by_username(c, &taken)?.is_some()
                || wanted.map(|e| users::by_email(c, &e)).transpose()?.flatten().is_some();
            let (users,): (i64,) = c.query_one("SELECT count(*) FROM users", &[])?;
            let invited = match &invite {
                Some(token) => invites::peek(c, token)?.map(Some),
                None => Some(None),
            };
            Ok((exists, users, invited))
        })
        .await?;
    if exists {
        return Err(refused(locale, "auth-taken"));
    }
    let Some(invited) = invited else { return Err(refused(locale, "auth-bad-invite")) };
    if who.use_email && invited.as_ref().is_some_and(|email| *email != username) {
        return Err(refused(locale, "auth-invite-other-email"));
    }
    // With `--auth-use-email`, the username is the account's email address.
    // Else the address typed beside the username.
    let email = invited.clone().or_else(|| who.use_email.then(|| username.clone())).or(typed);
    if who.require_verification && email.is_none() {
        return Err(refused(locale, "auth-email-required"));
    }
    if who.invite_only && users > 0 && invited.is_none() {
        return Err(Error::forbidden(locale.t("auth-invite-only")));
    }
    let invite = who.invite.filter(|_| invited.is_some()).map(super::links::hash);
    let mut handle = [0u8; 16];
    crate::random::fill(&mut handle);
    let handle = Uuid::from_bytes(handle);
    let shown = if display_name.trim().is_empty() { &username } else { display_name.trim() };
    let (options, state) = creation_options(rp, handle, &username, shown, None)?;
    let ceremony = Ceremony::Register {
        username,
        display_name: display_name.trim().to_string(),
        handle: handle.to_string(),
        email,
        invite,
        invite_only: who.invite_only,
        state,
    };
    store(db, session, ceremony).await?;
    Ok(Options::Create(options))
}

/// Options for creating a discoverable passkey (webauthn-rs asks for none: discoverable
/// credentials are what let people sign in without typing a username), as the JSON the
/// browser gets.
fn creation_options(
    rp: &RelyingParty,
    handle: Uuid,
    username: &str,
    shown: &str,
    exclude: Option<Vec<CredentialID>>,
) -> Result<(serde_json::Value, PasskeyRegistration), Error> {
    let (options, state) = rp
        .webauthn
        .start_passkey_registration(handle, username, shown, exclude)
        .map_err(|e| Error::internal(format!("passkey registration options: {e}")))?;
    let mut options = serde_json::to_value(&options).map_err(|e| Error::internal(e.to_string()))?;
    let selection = &mut options["publicKey"]["authenticatorSelection"];
    selection["residentKey"] = "required".into();
    selection["requireResidentKey"] = true.into();
    Ok((options, state))
}

/// Starts adding a passkey to a signed-in user's account; the passkeys they have are
/// excluded (an authenticator that holds one says so instead of making a second).
pub(crate) async fn begin_adding(
    rp: &RelyingParty,
    db: &crate::Db,
    session: &Session,
    user: &User,
) -> Result<Options, Error> {
    let user_id = user.id;
    let (handle, stored) = db
        .write(move |c| {
            let sql = "SELECT webauthn_id FROM users WHERE id = ?";
            let (handle,): (Option<String>,) = c.query_one(sql, params![user_id])?;
            // Accounts made without a passkey (`server users create`) get their handle now.
            let handle = match handle {
                Some(handle) => handle,
                None => {
                    let mut bytes = [0u8; 16];
                    crate::random::fill(&mut bytes);
                    let handle = Uuid::from_bytes(bytes).to_string();
                    let sql = "UPDATE users SET webauthn_id = ? WHERE id = ?";
                    c.execute(sql, params![handle.as_str(), user_id])?;
                    handle
                }
            };
            let sql = "SELECT passkey FROM credentials WHERE user_id = ?";
            let stored: Vec<(String,)> = c.query(sql, params![user_id])?;
            Ok((handle, stored))
        })
        .await?;
    let handle = Uuid::parse_str(&handle)
        .map_err(|e| Error::internal(format!("user {user_id}: stored WebAuthn handle: {e}")))?;
    let exclude = stored
        .iter()
        .filter_map(|(json,)| serde_json::from_str::<Passkey>(json).ok())
        .map(|passkey| passkey.cred_id().clone())
        .collect();
    let (options, state) =
        creation_options(rp, handle, &user.username, user.name(), Some(exclude))?;
    store(db, session, Ceremony::Add { user_id, state }).await?;
    Ok(Options::Create(options))
}

/// Finishes adding a passkey, named `name`, to the signed-in `user`.
pub(crate) async fn finish_adding(
    rp: &Arc<RelyingParty>,
    db: &crate::Db,
    session: &Session,
    user: &User,
    credential: RegisterPublicKeyCredential,
    ip: Option<std::net::IpAddr>,
    locale: &Locale,
) -> Result<(), Error> {
    let rp = rp.clone();
    let id = ceremony_id(session, locale)?;
    let user = user.clone();
    let locale = locale.clone();
    db.write(move |c| {
        let state = match take(c, &id)? {
            Some(Ceremony::Add { user_id, state }) if user_id == user.id => state,
            _ => return Ok(Err(expired(&locale))),
        };
        let passkey = match rp.verify_new(&credential, &state, &locale) {
            Ok(passkey) => passkey,
            Err(refused) => return Ok(Err(refused)),
        };
        let sql = "SELECT count(*) FROM credentials WHERE user_id = ?";
        let (count,): (i64,) = c.query_one(sql, params![user.id])?;
        insert_credential(c, &user, &passkey, &format!("Passkey {}", count + 1))?;
        events::record(c, Event::new("passkey_added", &user).ip(ip))?;
        Ok(Ok(()))
    })
    .await??;
    session.remove(SESSION_KEY);
    Ok(())
}

/// Finishes a registration: the account and its first passkey, created together.
pub(crate) async fn finish_registration(
    rp: &Arc<RelyingParty>,
    db: &crate::Db,
    session: &Session,
    credential: RegisterPublicKeyCredential,
    ip: Option<std::net::IpAddr>,
    locale: &Locale,
) -> Result<User, Error> {
    let rp = rp.clone();
    let id = ceremony_id(session, locale)?;
    let bad_invite = refused(locale, "auth-bad-invite");
    let locale = locale.clone();
    let user = db
        .write(move |c| {
            let Some(Ceremony::Register {
                username,
                display_name,
                handle,
                email,
                invite,
                invite_only,
                state,
            }) = take(c, &id)?
            else {
                return Ok(Err(expired(&locale)));
            };
            let passkey = match rp.verify_new(&credential, &state, &locale) {
                Ok(passkey) => passkey,
                Err(refused) => return Ok(Err(refused)),
            };
            // Checked again: another registration may have come first since `begin`.
            let (users,): (i64,) = c.query_one("SELECT count(*) FROM users", &[])?;
            if invite_only && users > 0 && invite.is_none() {
                return Ok(Err(Error::forbidden(locale.t("auth-invite-only"))));
            }
            // An invitation mailed to the address proves it.
            let email_verified = invite.is_some();
            let language = locale.lang().to_string();
            let new =
                NewUser { username, display_name, email, email_verified, role: None, language };
            let user = match users::create_with_handle(c, &new, Some(&handle)) {
                Ok(user) => user,
                Err(UserError::Db(e)) => return Err(e),
                // Checked at `begin`; another registration took the name since.
                Err(UserError::Taken(_)) => return Ok(Err(refused(&locale, "auth-taken"))),
                Err(e) => return Ok(Err(Error::bad_request(format!("{e}.")))),
            };
            // Used up with the account, or neither: a failure here rolls both back.
            if let Some(invite) = &invite
                && !invites::consume_hashed(c, invite, &user)?
            {
                return Err(DbError::Other(INVITE_TAKEN.into()));
            }
            insert_credential(c, &user, &passkey, "Passkey")?;
            events::record(
                c,
                Event::new("registered", &user).detail(format!("role {}", user.role)).ip(ip),
            )?;
            Ok(Ok(user))
        })
        .await
        .map_err(|e| match e {
            DbError::Other(why) if why == INVITE_TAKEN => bad_invite,
            e => e.into(),
        })??;
    session.remove(SESSION_KEY);
    Ok(user)
}

/// Starts a usernameless sign-in: any passkey of this site may answer.
pub(crate) async fn begin_login(
    rp: &RelyingParty,
    db: &crate::Db,
    session: &Session,
) -> Result<Options, Error> {
    let (options, state) = rp
        .webauthn
        .start_discoverable_authentication()
        .map_err(|e| Error::internal(format!("passkey sign-in options: {e}")))?;
    store(db, session, Ceremony::Login { state }).await?;
    Ok(Options::Get(options))
}

/// Finishes a sign-in: the user whose passkey signed the challenge. Refused: an unknown
/// passkey, a signature counter that went backwards (a cloned authenticator), an inactive
/// user.
pub(crate) async fn finish_login(
    rp: &Arc<RelyingParty>,
    db: &crate::Db,
    session: &Session,
    credential: PublicKeyCredential,
    ip: Option<std::net::IpAddr>,
    require_verification: bool,
    locale: &Locale,
) -> Result<User, Error> {
    let rp = rp.clone();
    let id = ceremony_id(session, locale)?;
    let locale = locale.clone();
    let user = db
        .write(move |c| {
            let Some(Ceremony::Login { state }) = take(c, &id)? else {
                return Ok(Err(expired(&locale)));
            };
            let unknown = || Ok(Err(refused(&locale, "auth-passkey-unknown")));
            let Ok((handle, credential_id)) =
                rp.webauthn.identify_discoverable_authentication(&credential)
            else {
                return unknown();
            };
            let credential_id = B64.encode(credential_id);
            let Some(user) = users::by_webauthn_id(c, &handle.to_string())? else {
                return unknown();
            };
            let sql = "SELECT id, passkey FROM credentials WHERE credential_id = ? AND user_id = ?";
            let row: Option<(i64, String)> =
                c.query_opt(sql, params![credential_id.as_str(), user.id])?;
            let Some((row_id, stored)) = row else { return unknown() };
            let mut passkey: Passkey = serde_json::from_str(&stored)
                .map_err(|e| DbError::Other(format!("stored passkey {row_id}: {e}")))?;
            let result = match rp.webauthn.finish_discoverable_authentication_v2(
                &credential,
                state,
                &passkey,
            ) {
                Ok(result) => result,
                Err(e) => {
                    let detail = format!("passkey {row_id}: {e}");
                    events::record(c, Event::new("sign_in_failed", &user).detail(detail).ip(ip))?;
                    return Ok(Err(refused(&locale, "auth-passkey-refused")));
                }
            };
            if !user.is_active {
                return Ok(Err(Error::forbidden(locale.t("auth-deactivated"))));
            }
            record_use(c, row_id, &mut passkey, &result)?;
            // An address still to verify: the caller refuses (and logs that) instead.
            if !require_verification || user.email_verified {
                let signed_in = Event::new("signed_in", &user).detail("with a passkey").ip(ip);
                events::record(c, signed_in)?;
            }
            Ok(Ok(user))
        })
        .await??;
    session.remove(SESSION_KEY);
    Ok(user)
}

fn insert_credential(c: &Conn, user: &User, passkey: &Passkey, name: &str) -> Result<(), DbError> {
    let json = serde_json::to_string(passkey).map_err(|e| DbError::Other(e.to_string()))?;
    c.execute(
        "INSERT INTO credentials (user_id, credential_id, passkey, name) VALUES (?, ?, ?, ?)",
        params![user.id, B64.encode(passkey.cred_id()), json, name],
    )?;
    Ok(())
}

fn record_use(
    c: &Conn,
    row_id: i64,
    passkey: &mut Passkey,
    result: &AuthenticationResult,
) -> Result<(), DbError> {
    passkey.update_credential(result);
    let json = serde_json::to_string(passkey).map_err(|e| DbError::Other(e.to_string()))?;
    c.execute(
        "UPDATE credentials SET passkey = ?, sign_count = ?, backup_eligible = ?, \
         backup_state = ?, last_used_at = ? WHERE id = ?",
        params![
            json,
            i64::from(result.counter()),
            result.backup_eligible(),
            result.backup_state(),
            utc_now(),
            row_id
        ],
    )?;
    Ok(())
}

fn expired(locale: &Locale) -> Error {
    refused(locale, "auth-expired")
}

/// Keeps `ceremony` in the database under a new id that only this session knows.
async fn store(db: &crate::Db, session: &Session, ceremony: Ceremony) -> Result<(), Error> {
    let mut raw = [0u8; 32];
    crate::random::fill(&mut raw);
    let raw = B64.encode(raw);
    let key = hash(&raw);
    let kind = ceremony.kind();
    let data = serde_json::to_string(&ceremony).map_err(|e| Error::internal(e.to_string()))?;
    let expires_at = utc_at(time::OffsetDateTime::now_utc() + CEREMONY_LIFETIME);
    db.write(move |c| {
        // Expired ceremonies are cleaned up by whoever starts a new one.
        c.execute("DELETE FROM auth_ceremonies WHERE expires_at <= ?", params![utc_now()])?;
        c.execute(
            "INSERT INTO auth_ceremonies (id, kind, data, expires_at) VALUES (?, ?, ?, ?)",
            params![key, kind, data, expires_at],
        )
    })
    .await?;
    session.insert(SESSION_KEY, raw).map_err(|e| Error::internal(e.to_string()))
}

fn ceremony_id(session: &Session, locale: &Locale) -> Result<String, Error> {
    session.get::<String>(SESSION_KEY).map(|raw| hash(&raw)).ok_or_else(|| expired(locale))
}

/// Takes (deletes and returns) an unexpired ceremony.
fn take(c: &Conn, id: &str) -> Result<Option<Ceremony>, DbError> {
    let sql = "SELECT data FROM auth_ceremonies WHERE id = ? AND expires_at > ?";
    let row: Option<(String,)> = c.query_opt(sql, params![id, utc_now()])?;
    c.execute("DELETE FROM auth_ceremonies WHERE id = ?", params![id])?;
    Ok(row.and_then(|(data,)| serde_json::from_str(&data).ok()))
}
