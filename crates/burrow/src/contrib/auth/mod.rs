//! The auth app: accounts with passkeys, roles, sign-in and the guards that protect pages.
//!
//! What is here so far: registration and usernameless sign-in with passkeys (WebAuthn,
//! with autofill; ceremonies kept in the database, so they survive a restart), users with
//! roles (`user`, `staff`, `admin`; the very first user is an admin), sessions that sign
//! in and out (and that logout, a role change or a deactivation end everywhere), the
//! guards [`RequireAuth`], [`RequireStaff`] and [`RequireAdmin`], the template functions
//! `current_user()` and `is_authenticated()`, single-use sign-in links for operators, an
//! audit log, recovery codes, a page of one's passkeys, invitations (and invite-only
//! registration, mailed when mail is on), email verification (`verification`), rate
//! limits, and the commands `server users list|create|login-link`, `server set-role` and
//! `server create-invite`. Every page, message and mail is in English and German
//! (`translations/`); mails in the language stored on their user (see `guards`).
//! docs/guide/auth.md is the guide.
//!
//! One module per concept: `users` (accounts, roles), `guards` (who is signed in, the
//! extractors), `signin` and `register` (the pages and their JSON steps), `passkeys` (the
//! WebAuthn ceremonies), `credentials` (one's passkeys), `recovery` (codes), `links`
//! (sign-in links), `invites`, `verification` (email addresses), `limits` (rate limits),
//! `events` (the audit log) and `commands` (the CLI).
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

mod admin;
mod commands;
mod credentials;
mod events;
mod guards;
mod invites;
mod limits;
mod links;
mod passkeys;
mod recovery;
mod register;
mod signin;
pub mod users;
mod verification;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use include_dir::Dir;
use minijinja::value::{Serde, Value};
use webauthn_rs::prelude::Url;

pub(crate) use crate::request::ClientIp;
pub(crate) use guards::signed_in_id;
pub use guards::{CurrentUser, RequireAdmin, RequireAuth, RequireStaff, login, safe_next};
pub use invites::{Invite, create_invite, mail_invite};
pub use links::{LoginLink, login_link};
pub use users::{NewUser, Role, User, UserError};

use self::guards::{AuthConfig, AuthLayer, AuthState};
use self::limits::Limits;
use self::passkeys::{Options, RelyingParty};
use crate::app::App;
use crate::command::Command;
use crate::config::{AnySetting, Config, ConfigError, Optional, Setting, Source, parse_bool};
use crate::context::AppContext;
use crate::error::{Error, Result};
use crate::http::around::AroundLayer;
use crate::settings::Settings;
use crate::template::{TemplateEnv, request_of};

static MIGRATIONS: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/migrations");
static TEMPLATES: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/templates");
static STATIC: Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/static");
pub(crate) static TRANSLATIONS: Dir<'static> =
    crate::embed_dir!("$CARGO_MANIFEST_DIR/src/contrib/auth/translations");

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
pub(crate) const USE_EMAIL: Setting<bool> = Setting::with_parser("auth.use_email", parse_bool)
    .default("false")
    .switch()
    .help("Accounts are named by their email address instead of a username");
const REQUIRE_VERIFICATION: Setting<bool> =
    Setting::with_parser("auth.require_verification", parse_bool)
        .default("false")
        .switch()
        .help("Accounts sign in only once their email address is verified (needs --smtp-host)");
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
    use_email: bool,
    require_verification: bool,
    /// `None` when the base URL has no domain name (passkeys cannot work there).
    rp: Option<Arc<RelyingParty>>,
    /// Read in `configure`.
    limits: Option<Arc<Limits>>,
}

impl Auth {
    pub fn new() -> Auth {
        Auth::default()
    }

    fn limits(&self) -> &Arc<Limits> {
        self.limits.as_ref().expect("configure ran before routes and middleware")
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
        &[
            &LOGIN_REDIRECT,
            &LOGOUT_REDIRECT,
            &INVITE_ONLY,
            &USE_EMAIL,
            &REQUIRE_VERIFICATION,
            &RP_ID,
            &RP_NAME,
            &RP_ORIGIN,
            &limits::CEREMONIES,
            &limits::CODES,
            &limits::CODES_PER_ACCOUNT,
            &limits::MAILS,
            &limits::MAILS_PER_ACCOUNT,
        ]
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
        self.use_email = config.get(&USE_EMAIL)?;
        self.require_verification = config.get(&REQUIRE_VERIFICATION)?;
        self.limits = Some(Arc::new(Limits::from_config(config)?));
        if self.require_verification && config.get(&crate::mail::SMTP_HOST)?.is_none() {
            let reason = "verification mails need mail: set --smtp-host and --smtp-from";
            return Err(config.error(&REQUIRE_VERIFICATION, reason));
        }
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

    fn translations(&self) -> Option<&'static Dir<'static>> {
        Some(&TRANSLATIONS)
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
        let limits = self.limits();
        let ceremony = || limits.ceremonies.clone();
        let code = || limits.codes.clone();
        let mails = || limits.mails.clone();
        Router::new()
            .route("/auth/login", get(signin::page))
            .route("/auth/login/begin", post(signin::begin.layer(ceremony())))
            .route("/auth/login/finish", post(signin::finish.layer(ceremony())))
            .route("/auth/register", get(register::page))
            .route("/auth/register/begin", post(register::begin.layer(ceremony())))
            .route("/auth/register/finish", post(register::finish.layer(ceremony())))
            .route("/auth/logout", post(signin::logout))
            .route("/auth/credentials/", get(credentials::page))
            .route("/auth/credentials/begin", post(credentials::begin.layer(ceremony())))
            .route("/auth/credentials/finish", post(credentials::finish.layer(ceremony())))
            .route("/auth/credentials/{id}/rename", post(credentials::rename))
            .route("/auth/credentials/{id}/delete", post(credentials::delete))
            .route("/auth/recovery", get(recovery::page).post(recovery::sign_in.layer(code())))
            .route("/auth/recovery-codes/", get(recovery::codes_page))
            .route("/auth/recovery-codes/regenerate", post(recovery::regenerate))
            .route("/auth/link", get(links::page).post(links::sign_in.layer(code())))
            .route("/auth/verify-pending", get(verification::pending_page))
            .route("/auth/verify-email", get(verification::verify.layer(code())))
            .route("/auth/resend-verification", post(verification::resend.layer(mails())))
    }

    fn middleware(&self, router: Router, ctx: &AppContext) -> Router {
        let config = AuthConfig {
            db: ctx.db.clone(),
            login_path: LOGIN_PATH,
            login_redirect: self.login_redirect.clone(),
            logout_redirect: self.logout_redirect.clone(),
            invite_only: self.invite_only,
            use_email: self.use_email,
            require_verification: self.require_verification,
            base_url: ctx.settings.base_url.clone(),
            mailer: ctx.mailer.clone(),
            templates: ctx.templates.clone(),
            rp: self.rp.clone(),
            limits: self.limits().clone(),
        };
        router.layer(AroundLayer(AuthLayer(Arc::new(config))))
    }

    fn commands(&self) -> Vec<Command> {
        commands::all()
    }

    fn admin(&self, site: &mut crate::admin::AdminSite) {
        admin::register(site);
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthState {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        AuthState::of(parts)
    }
}

pub(crate) fn options_json(options: Options) -> Response {
    match options {
        Options::Create(options) => Json(options).into_response(),
        Options::Get(options) => Json(options).into_response(),
    }
}
