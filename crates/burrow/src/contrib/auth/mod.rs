//! The auth app: accounts with passkeys, roles, sign-in and the guards that protect pages.
//!
//! What is here so far: registration and usernameless sign-in with passkeys (WebAuthn,
//! with autofill; ceremonies kept in the database, so they survive a restart), users with
//! roles (`user`, `staff`, `admin`; the very first user is an admin), sessions that sign
//! in and out (and that logout, a role change or a deactivation end everywhere), the
//! guards [`RequireAuth`], [`RequireStaff`] and [`RequireAdmin`], the template functions
//! `current_user()` and `is_authenticated()`, single-use sign-in links for operators, an
//! audit log, recovery codes, a page of one's passkeys, invitations (and invite-only
//! registration), rate limits, and the commands `server users list|create|login-link`,
//! `server set-role` and `server create-invite`. Email verification and mail build on this
//! (issue 14). docs/guide/auth.md is the guide.
//!
//! ```no_run
//! use burrow::contrib::auth::{Auth, RequireAuth};
//! use burrow::contrib::{csrf::Csrf, session::Sessions};
//!
//! async fn secret(RequireAuth(user): RequireAuth) -> String {
//!     format!("Only {} sees this.", user.name())
//! }
//!
//! burrow::Server::new("server", "1.0")
//!     .app(Sessions::new())
//!     .app(Csrf::new())
//!     .app(Auth::new())
//!     .run();
//! ```
//!
//! Anonymous visitors of a guarded page are sent to `/auth/login?next=…` (htmx requests
//! get `HX-Redirect`, JSON clients a 401); signed-in users without the role get the 403
//! page. `next` is only ever a path on this site ([`safe_next`]).

mod commands;
mod credentials;
mod events;
mod guards;
mod invites;
mod limits;
mod links;
mod passkeys;
mod recovery;
pub mod users;

use std::sync::Arc;

use axum::extract::{Form, FromRequestParts, Query};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use include_dir::Dir;
use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Deserialize;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Url};

pub use guards::{CurrentUser, RequireAdmin, RequireAuth, RequireStaff, login, safe_next};
pub use users::{NewUser, Role, User, UserError};

use self::guards::{AuthConfig, AuthLayer, AuthState};
use self::limits::{Limiter, PerIp};
use self::passkeys::{Options, RelyingParty};
use crate::app::App;
use crate::command::Command;
use crate::config::{AnySetting, Config, ConfigError, Optional, Setting, Source, parse_bool};
use crate::context::AppContext;
use crate::contrib::messages::Messages;
use crate::error::{Error, Result};
use crate::http::around::AroundLayer;
use crate::request::PeerAddr;
use crate::settings::Settings;
use crate::template::{Html, Render, TemplateEnv, request_of};

static MIGRATIONS: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/migrations");
static TEMPLATES: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/templates");
static STATIC: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/static");

const LOGIN_REDIRECT: Setting<String> = Setting::new("auth.login_redirect")
    .default("/")
    .help("Where users land after signing in (a path on this site)");
const LOGOUT_REDIRECT: Setting<String> = Setting::new("auth.logout_redirect")
    .default("/auth/login")
    .help("Where users land after signing out (a path on this site)");

const INVITE_ONLY: Setting<bool> = Setting::with_parser("auth.invite_only", parse_bool)
    .default("false")
    .switch()
    .help("Registering needs an invite (`server create-invite EMAIL`), except for the first user");
const RP_ID: Setting<String, Optional> = Setting::new("auth.webauthn_rp_id")
    .optional()
    .default_note("the base URL's host")
    .help("WebAuthn relying party id: the domain passkeys are bound to");
const RP_NAME: Setting<String, Optional> = Setting::new("auth.webauthn_rp_display_name")
    .optional()
    .default_note("the relying party id")
    .help("Name authenticators show for this site's passkeys");
const RP_ORIGIN: Setting<String, Optional> = Setting::new("auth.webauthn_rp_origin")
    .optional()
    .default_note("the base URL")
    .help("Origin browsers sign passkey answers for");

/// Where anonymous visitors of guarded pages are sent.
const LOGIN_PATH: &str = "/auth/login";

/// Registers accounts and sign-in; needs the theme, session, CSRF and flash-message apps
/// before it (`Server::defaults` registers them).
#[derive(Default)]
pub struct Auth {
    login_redirect: String,
    logout_redirect: String,
    invite_only: bool,
    /// `None` when the base URL has no domain name (passkeys cannot work there).
    rp: Option<Arc<RelyingParty>>,
    limits: Arc<Limiter>,
}

impl Auth {
    pub fn new() -> Auth {
        Auth::default()
    }
}

impl App for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn dependencies(&self) -> &'static [&'static str] {
        &["theme", "session", "csrf", "messages"]
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&LOGIN_REDIRECT, &LOGOUT_REDIRECT, &INVITE_ONLY, &RP_ID, &RP_NAME, &RP_ORIGIN]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        for (setting, target) in [
            (&LOGIN_REDIRECT, &mut self.login_redirect),
            (&LOGOUT_REDIRECT, &mut self.logout_redirect),
        ] {
            let path = config.get(setting)?;
            if safe_next(&path).is_none() {
                return Err(config.error(setting, "expected a path on this site, e.g. /notes"));
            }
            *target = path;
        }
        self.invite_only = config.get(&INVITE_ONLY)?;
        let base_url = Settings::from_config(config)?.base_url;
        let origin = config.get(&RP_ORIGIN)?.unwrap_or(base_url);
        let host = Url::parse(&origin).ok().and_then(|u| u.host_str().map(str::to_string));
        let rp_id = config.get(&RP_ID)?.or(host).unwrap_or_default();
        let name = config.get(&RP_NAME)?.unwrap_or_else(|| rp_id.clone());
        self.rp = match RelyingParty::new(&rp_id, &name, &origin) {
            Ok(rp) => Some(Arc::new(rp)),
            // Set explicitly and wrong: an operator's mistake, a start-up error.
            Err(reason) if *config.source(&RP_ID) != Source::Default => {
                return Err(config.error(&RP_ID, &reason));
            }
            Err(reason) if *config.source(&RP_ORIGIN) != Source::Default => {
                return Err(config.error(&RP_ORIGIN, &reason));
            }
            // Derived from a base URL without a domain (a server on an IP address): the
            // server runs, passkeys are off until a name is configured.
            Err(reason) => {
                crate::secrets::warn_once_started(format!(
                    "passkeys are off: {reason} (set --base-url or --auth-webauthn-rp-origin \
                     to a URL with a domain name)"
                ));
                None
            }
        };
        Ok(())
    }

    fn migrations(&self) -> Option<&'static Dir<'static>> {
        Some(&MIGRATIONS)
    }

    fn templates(&self) -> Option<&'static Dir<'static>> {
        Some(&TEMPLATES)
    }

    fn static_files(&self) -> Option<&'static Dir<'static>> {
        Some(&STATIC)
    }

    fn template_env(&self, env: &mut TemplateEnv) {
        // Defined on every page, so layouts can call them; the user is loaded before a
        // page renders (see `guards`), and is absent on error pages.
        fn user(state: &minijinja::State) -> Option<Arc<User>> {
            let request = request_of(state)?;
            request.extensions.get::<AuthState>()?.loaded()
        }
        env.add_function("current_user", |state: &minijinja::State| {
            user(state).map_or(Value::from(()), |u| Value::from(Serde(&*u)))
        });
        env.add_function("is_authenticated", |state: &minijinja::State| user(state).is_some());
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        // Rate limits per client IP, on the routes that verify something: only those
        // requests pay for them.
        let ceremony = || PerIp::layer(&self.limits, limits::CEREMONIES_PER_IP);
        let code = || PerIp::layer(&self.limits, limits::CODES_PER_IP);
        Router::new()
            .route("/auth/login", get(login_page))
            .route("/auth/login/begin", post(login_begin.layer(ceremony())))
            .route("/auth/login/finish", post(login_finish.layer(ceremony())))
            .route("/auth/register", get(register_page))
            .route("/auth/register/begin", post(register_begin.layer(ceremony())))
            .route("/auth/register/finish", post(register_finish.layer(ceremony())))
            .route("/auth/logout", post(logout))
            .route("/auth/credentials/", get(credentials::page))
            .route("/auth/credentials/begin", post(credentials::begin.layer(ceremony())))
            .route("/auth/credentials/finish", post(credentials::finish.layer(ceremony())))
            .route("/auth/credentials/{id}/rename", post(credentials::rename))
            .route("/auth/credentials/{id}/delete", post(credentials::delete))
            .route("/auth/recovery", get(recovery_page).post(use_recovery_code.layer(code())))
            .route("/auth/recovery-codes/", get(recovery_codes_page))
            .route("/auth/recovery-codes/regenerate", post(regenerate_recovery_codes))
            .route("/auth/link", get(link_page).post(use_link.layer(code())))
    }

    fn middleware(&self, router: Router, ctx: &AppContext) -> Router {
        let config = AuthConfig {
            db: ctx.db.clone(),
            login_path: LOGIN_PATH,
            login_redirect: self.login_redirect.clone(),
            logout_redirect: self.logout_redirect.clone(),
            invite_only: self.invite_only,
            rp: self.rp.clone(),
            limits: self.limits.clone(),
        };
        router.layer(AroundLayer(AuthLayer(Arc::new(config))))
    }

    fn commands(&self) -> Vec<Command> {
        commands::all()
    }
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
            Ok(Ok(links::issue(c, &user)?))
        })
        .await??;
    let base = ctx.settings.base_url.trim_end_matches('/');
    Ok(LoginLink {
        url: format!("{base}/auth/link?token={}", issued.token),
        expires_at: issued.expires_at,
    })
}

/// The client's address, for the audit log (none for requests built in-process).
pub(crate) struct ClientIp(pub(crate) Option<std::net::IpAddr>);

/// An invitation to register (what `server create-invite` prints).
#[derive(Clone, Debug)]
pub struct Invite {
    /// `{base URL}/auth/register?invite=…`.
    pub url: String,
    /// When it stops working (UTC): 7 days from now.
    pub expires_at: String,
}

/// Creates an [`Invite`] for `email` (logged in the audit log, the token never).
pub async fn create_invite(ctx: &AppContext, email: &str) -> Result<Invite, UserError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.contains(char::is_whitespace) {
        return Err(UserError::Invalid(format!("'{email}' is not an email address")));
    }
    let issued = ctx.db.write(move |c| invites::create(c, &email, None)).await?;
    let base = ctx.settings.base_url.trim_end_matches('/');
    Ok(Invite {
        url: format!("{base}/auth/register?invite={}", issued.token),
        expires_at: issued.expires_at,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(parts.extensions.get::<PeerAddr>().map(|PeerAddr(addr)| addr.ip())))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthState {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        AuthState::of(parts)
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
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

async fn logout(auth: AuthState, messages: Messages) -> Result<Response> {
    if let Some(user) = auth.user().await? {
        let db = auth.config().db.clone();
        db.write(move |c| {
            users::end_sessions(c, user.id)?;
            events::record(c, events::Event::new("signed_out", &user))
        })
        .await?;
        messages.success("You are signed out.")?;
    }
    if let Some(session) = auth.session() {
        guards::logout(session);
    }
    Ok(Redirect::to(&auth.config().logout_redirect).into_response())
}

#[derive(Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

const BAD_LINK: &str = "This sign-in link is invalid, already used or expired. Ask for a new one.";

async fn link_page(
    auth: AuthState,
    Query(query): Query<LinkQuery>,
    render: Render,
) -> Result<Html> {
    let token = query.token.unwrap_or_default();
    let peek = token.clone();
    let user = auth.config().db.read(move |c| links::peek(c, &peek)).await?;
    let user = user.ok_or_else(|| Error::bad_request(BAD_LINK))?;
    render.page("auth/link.html", context! { token, username => user.username })
}

async fn use_link(
    auth: AuthState,
    messages: Messages,
    ClientIp(ip): ClientIp,
    Form(form): Form<LinkQuery>,
) -> Result<Response> {
    let token = form.token.unwrap_or_default();
    let user = auth.config().db.write(move |c| links::consume(c, &token, ip)).await?;
    let user = user.ok_or_else(|| Error::bad_request(BAD_LINK))?;
    let session = auth.session_or_error()?;
    login(session, &user)?;
    messages
        .success(format!("Signed in as {}. Add a passkey to sign in next time.", user.name()))?;
    // Where the user adds a passkey: links are for accounts without one, or that lost theirs.
    Ok(Redirect::to("/auth/credentials/").into_response())
}

#[derive(Deserialize)]
struct InviteQuery {
    invite: Option<String>,
}

async fn register_page(
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
        passkeys,
        closed,
        invite => invited.is_some().then_some(query.invite),
        invited_email => invited,
    };
    Ok(render.page("auth/register.html", context)?.into_response())
}

#[derive(Deserialize)]
struct RegisterBegin {
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    invite: Option<String>,
}

async fn register_begin(auth: AuthState, Json(form): Json<RegisterBegin>) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let who = passkeys::Registrant {
        username: &form.username,
        display_name: &form.display_name,
        invite: form.invite.as_deref().filter(|t| !t.is_empty()),
        invite_only: config.invite_only,
    };
    let options =
        passkeys::begin_registration(config.relying_party()?, &config.db, session, &who).await?;
    Ok(options_json(options))
}

async fn register_finish(
    auth: AuthState,
    ClientIp(ip): ClientIp,
    messages: Messages,
    Json(credential): Json<RegisterPublicKeyCredential>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let user =
        passkeys::finish_registration(config.relying_party()?, &config.db, session, credential, ip)
            .await?;
    login(session, &user)?;
    session.insert(NEW_CODES, true).map_err(|e| Error::internal(e.to_string()))?;
    messages.success(format!("Welcome, {}! Your passkey is registered.", user.name()))?;
    Ok(Json(serde_json::json!({ "redirect": "/auth/recovery-codes/" })).into_response())
}

async fn login_begin(auth: AuthState) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    Ok(options_json(passkeys::begin_login(config.relying_party()?, &config.db, session).await?))
}

#[derive(Deserialize)]
struct LoginFinish {
    credential: PublicKeyCredential,
    #[serde(default)]
    next: Option<String>,
}

async fn login_finish(
    auth: AuthState,
    ClientIp(ip): ClientIp,
    messages: Messages,
    Json(form): Json<LoginFinish>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let config = auth.config();
    let user =
        passkeys::finish_login(config.relying_party()?, &config.db, session, form.credential, ip)
            .await?;
    login(session, &user)?;
    messages.success(format!("Signed in as {}.", user.name()))?;
    let next = form.next.as_deref().and_then(safe_next).unwrap_or(&config.login_redirect);
    Ok(Json(serde_json::json!({ "redirect": next })).into_response())
}

pub(crate) fn options_json(options: Options) -> Response {
    match options {
        Options::Create(options) => Json(options).into_response(),
        Options::Get(options) => Json(options).into_response(),
    }
}

/// Where the session marks that the next visit of the recovery-codes page makes new codes
/// (after a registration or a regeneration): the codes are shown by the request that
/// made them, and never stored in plain text.
const NEW_CODES: &str = "_auth_new_codes";

async fn recovery_codes_page(
    auth: AuthState,
    RequireAuth(user): RequireAuth,
    render: Render,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let db = auth.config().db.clone();
    let mut response = if session.take::<bool>(NEW_CODES).unwrap_or(false) {
        let codes = recovery::new_codes();
        let shown = codes.clone();
        let hashes = tokio::task::spawn_blocking(move || {
            codes.iter().map(|c| recovery::hash(c)).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::internal(format!("hashing recovery codes: {e}")))?;
        let owner = user.clone();
        db.write(move |c| recovery::replace(c, &owner, &hashes)).await?;
        render.page("auth/recovery_codes.html", context! { codes => shown })?.into_response()
    } else {
        let id = user.id;
        let remaining = db.read(move |c| recovery::remaining(c, id)).await?;
        render.page("auth/recovery_codes.html", context! { remaining })?.into_response()
    };
    // Codes on the page: no cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn regenerate_recovery_codes(
    auth: AuthState,
    RequireAuth(_user): RequireAuth,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    session.insert(NEW_CODES, true).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Redirect::to("/auth/recovery-codes/").into_response())
}

async fn recovery_page(render: Render) -> Result<Html> {
    render.page("auth/recovery.html", context! {})
}

#[derive(Deserialize)]
struct RecoveryForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    code: String,
}

async fn use_recovery_code(
    auth: AuthState,
    messages: Messages,
    ClientIp(ip): ClientIp,
    render: Render,
    Form(form): Form<RecoveryForm>,
) -> Result<Response> {
    let session = auth.session_or_error()?;
    let account = users::normalize_username(&form.username).unwrap_or_default();
    if let Err(too_many) = auth.config().limits.take(limits::CODES_PER_ACCOUNT, &account) {
        return Ok(too_many.into_response());
    }
    let db = auth.config().db.clone();
    let name = form.username.clone();
    let (user, stored) = db.read(move |c| recovery::unused(c, &name)).await?;
    let typed = form.code.clone();
    let found = tokio::task::spawn_blocking(move || recovery::find(&typed, &stored))
        .await
        .map_err(|e| Error::internal(format!("checking a recovery code: {e}")))?;
    let signed_in = match (user, found) {
        (Some(user), Some(code_id)) => {
            db.write(move |c| {
                if !recovery::use_code(c, code_id)? {
                    return Ok(None);
                }
                let left = recovery::remaining(c, user.id)?;
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
    let Some((user, left)) = signed_in else {
        let username = form.username;
        let error = "That username and recovery code do not match an unused code.";
        let page = render.page("auth/recovery.html", context! { username, error })?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    login(session, &user)?;
    messages.success(format!(
        "Signed in with a recovery code. {left} unused code(s) left: add a passkey or make new codes."
    ))?;
    Ok(Redirect::to("/auth/recovery-codes/").into_response())
}
