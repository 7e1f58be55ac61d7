//! Who is signed in: the session holds a user id and the user's session generation; the
//! user is loaded (one indexed query) the first time a request asks — an extractor below,
//! or a page render for `current_user()` — and never for requests that do not.
//!
//! The user's language (`users.language`, the one of their mails) is the request's at
//! registration, then follows the visitor's explicit choice: a request whose language
//! cookie (the switcher's) names another language than the stored one updates it when it
//! loads the user (one `UPDATE` by primary key, once per switch), and so does a sign-in
//! (see [`AuthState::remember_choice`]). `Accept-Language` alone, which differs from one
//! device to the next, never changes it.
//!
//! A session is valid while its generation is the user's current one and the user is
//! active: logout, a role change or a deactivation raise the generation, and every other
//! session of the user (a copied cookie too) is anonymous from its next request on.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::users::{self, User};
use crate::Db;
use crate::context::BoxFuture;
use crate::contrib::session::Session;
use crate::error::Error;
use crate::http::around::Around;
use crate::http::errors::wants_json;
use crate::i18n::Locale;
pub use crate::request::safe_next;
use crate::template::{Audience, BeforeRender, BeforeRenders, ErrorPageExtensions};

/// Where the session keeps the signed-in user.
const SESSION_KEY: &str = "_auth";

#[derive(Serialize, Deserialize)]
struct SignedIn {
    id: i64,
    generation: i64,
}

/// Shared by every request: the database, and where anonymous visitors are sent.
pub(crate) struct AuthConfig {
    pub(crate) db: Db,
    pub(crate) login_path: &'static str,
    /// `--auth-login-redirect` and `--auth-logout-redirect`.
    pub(crate) login_redirect: String,
    pub(crate) logout_redirect: String,
    /// `--auth-invite-only`.
    pub(crate) invite_only: bool,
    /// `--auth-use-email`.
    pub(crate) use_email: bool,
    /// `--auth-require-verification`.
    pub(crate) require_verification: bool,
    /// For the links in mails.
    pub(crate) base_url: String,
    pub(crate) mailer: crate::mail::Mailer,
    pub(crate) templates: crate::template::Templates,
    pub(crate) rp: Option<Arc<super::passkeys::RelyingParty>>,
    pub(crate) limits: Arc<super::limits::Limits>,
}

impl AuthConfig {
    /// The relying party, or the 503 that says why passkeys are off.
    pub(crate) fn relying_party(
        &self,
        locale: &Locale,
    ) -> Result<&Arc<super::passkeys::RelyingParty>, Error> {
        self.rp.as_ref().ok_or_else(|| {
            Error::new(StatusCode::SERVICE_UNAVAILABLE, locale.t("auth-passkeys-off"))
        })
    }

    /// The language of the request with `headers`.
    fn locale(&self, headers: &axum::http::HeaderMap) -> Locale {
        self.templates.i18n().negotiate(headers)
    }
}

/// The request's view of who is signed in; cheap to clone.
#[derive(Clone)]
pub(crate) struct AuthState(Arc<Inner>);

struct Inner {
    config: Arc<AuthConfig>,
    session: Option<Session>,
    user: OnceCell<Option<Arc<User>>>,
}

impl AuthState {
    /// The signed-in user, loaded on first call.
    pub(crate) async fn user(&self) -> Result<Option<Arc<User>>, Error> {
        let inner = &self.0;
        let user =
            inner.user.get_or_try_init(|| async { self.load().await.map(|u| u.map(Arc::new)) });
        Ok(user.await?.clone())
    }

    /// The user if already loaded (templates cannot wait; a render loads it first).
    pub(crate) fn loaded(&self) -> Option<Arc<User>> {
        self.0.user.get().cloned().flatten()
    }

    /// Stores the language the visitor chose with the switcher, if any and if another
    /// one, as `user`'s (the one of their mails), in the database and in `user`: when a
    /// signed-in user's request carries the choice, and at sign-in.
    pub(crate) async fn remember_choice(&self, user: &mut User) -> Result<(), Error> {
        let Some(chosen) = self.chosen() else { return Ok(()) };
        if user.language == chosen.lang() {
            return Ok(());
        }
        let (id, language) = (user.id, chosen.lang().to_string());
        user.language = language.clone();
        self.0.config.db.write(move |c| users::set_language(c, id, &language)).await?;
        Ok(())
    }

    /// The language the request's cookie names (the switcher's choice), if any: read when
    /// it is stored (at sign-in, on a signed-in user's load), not on every request.
    fn chosen(&self) -> Option<Locale> {
        let cookies = self.0.session.as_ref()?.request_cookies();
        self.0.config.templates.i18n().chosen_in(cookies)
    }

    async fn load(&self) -> Result<Option<User>, Error> {
        let Some(session) = &self.0.session else { return Ok(None) };
        let Some(signed_in) = session.get::<SignedIn>(SESSION_KEY) else { return Ok(None) };
        let id = signed_in.id;
        let user = self.0.config.db.read(move |c| users::by_id(c, id)).await?;
        match user {
            Some(mut user) if user.is_active && user.session_generation == signed_in.generation => {
                // A failed write leaves it for the next request; the page goes on.
                if let Err(e) = self.remember_choice(&mut user).await {
                    tracing::warn!("the user's language was not stored: {}", e.message());
                }
                Ok(Some(user))
            }
            // Signed out elsewhere, deactivated or deleted: this session is anonymous now,
            // and its cookie stops claiming otherwise.
            _ => {
                session.remove(SESSION_KEY);
                Ok(None)
            }
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        self.0.session.as_ref()
    }

    /// The session, which sign-in needs (the session app is a dependency, so it is there).
    pub(crate) fn session_or_error(&self) -> Result<&Session, Error> {
        self.session().ok_or_else(|| Error::internal("no session on this request"))
    }

    pub(crate) fn config(&self) -> &AuthConfig {
        &self.0.config
    }

    pub(crate) fn of(parts: &Parts) -> Result<AuthState, Error> {
        parts
            .extensions
            .get::<AuthState>()
            .cloned()
            .ok_or_else(|| Error::internal("the auth app is not registered on this server"))
    }
}

impl BeforeRender for AuthState {
    fn audience(&self) -> Audience {
        match self.loaded() {
            Some(user) if user.is_staff() => Audience::Staff,
            Some(_) => Audience::SignedIn,
            None => Audience::Everyone,
        }
    }

    fn before_render(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // A failed lookup renders the page as anonymous; the extractor that needed the
            // user would have failed the request itself.
            if let Err(e) = self.user().await {
                tracing::warn!("current user not loaded for the page: {}", e.message());
            }
        })
    }
}

/// Puts an [`AuthState`] in every request's extensions (after the session app's layer).
#[derive(Clone)]
pub(crate) struct AuthLayer(pub(crate) Arc<AuthConfig>);

impl Around for AuthLayer {
    type State = (AuthState, BeforeRenders);

    fn before(&self, request: &mut Request) -> Self::State {
        let state = AuthState(Arc::new(Inner {
            config: self.0.clone(),
            session: Session::of(request.extensions()),
            user: OnceCell::new(),
        }));
        let render = BeforeRenders(Arc::new(state.clone()));
        request.extensions_mut().insert(render.clone());
        request.extensions_mut().insert(state.clone());
        (state, render)
    }

    fn after(&self, (state, render): Self::State, mut response: Response) -> Response {
        // The error page is rendered outside this layer, from the request it saw: it gets
        // what `current_user()` and the navigation need to show who is signed in.
        if response.status().as_u16() >= 400 {
            let mut extensions = Extensions::new();
            extensions.insert(render);
            extensions.insert(state);
            response.extensions_mut().insert(ErrorPageExtensions(extensions));
        }
        response
    }
}

/// The user id the session claims, without loading the user: what per-user rate limits
/// count by ([`crate::RateLimit::per_user`]). The claim is signed, so it cannot be made up;
/// it may name a user signed out elsewhere, who is still that user.
pub(crate) fn signed_in_id(extensions: &Extensions) -> Option<i64> {
    let session = Session::of(extensions)?;
    session.get::<SignedIn>(SESSION_KEY).map(|signed_in| signed_in.id)
}

/// Signs `user` in on this session: the session is regenerated (and the CSRF secret with
/// it), so nothing learned about the anonymous session carries over.
pub fn login(session: &Session, user: &User) -> Result<(), Error> {
    session.regenerate();
    let signed_in = SignedIn { id: user.id, generation: user.session_generation };
    session.insert(SESSION_KEY, signed_in).map_err(|e| Error::internal(e.to_string()))
}

/// Signs this session out (the caller ends the user's other sessions).
pub(crate) fn logout(session: &Session) {
    session.remove(SESSION_KEY);
    session.regenerate();
}

/// The signed-in user, if any; never rejects.
///
/// ```no_run
/// use burrow::contrib::auth::CurrentUser;
/// async fn hello(CurrentUser(user): CurrentUser) -> String {
///     match user {
///         Some(user) => format!("Hello, {}!", user.name()),
///         None => "Hello, stranger!".into(),
///     }
/// }
/// ```
pub struct CurrentUser(pub Option<Arc<User>>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Ok(CurrentUser(AuthState::of(parts)?.user().await?))
    }
}

/// A signed-in user, or no handler: anonymous visitors are sent to the login page with
/// `next` set to where they were going (htmx requests get `HX-Redirect`, JSON clients a
/// 401).
pub struct RequireAuth(pub Arc<User>);

/// A signed-in staff member or admin; other signed-in users get the 403 page.
pub struct RequireStaff(pub Arc<User>);

/// A signed-in admin; other signed-in users get the 403 page.
pub struct RequireAdmin(pub Arc<User>);

impl<S: Send + Sync> FromRequestParts<S> for RequireAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        signed_in(parts).await.map(RequireAuth)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireStaff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let user = signed_in(parts).await?;
        if !user.is_staff() {
            return Err(forbidden(parts, "auth-staff-only"));
        }
        Ok(RequireStaff(user))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let user = signed_in(parts).await?;
        if !user.is_admin() {
            return Err(forbidden(parts, "auth-admins-only"));
        }
        Ok(RequireAdmin(user))
    }
}

async fn signed_in(parts: &Parts) -> Result<Arc<User>, Response> {
    let state = AuthState::of(parts).map_err(IntoResponse::into_response)?;
    match state.user().await.map_err(IntoResponse::into_response)? {
        Some(user) => Ok(user),
        None => Err(to_login(parts, state.config())),
    }
}

/// The 403 page of a signed-in user without the role, saying `key` in their language.
fn forbidden(parts: &Parts, key: &str) -> Response {
    match AuthState::of(parts) {
        Ok(state) => Error::forbidden(state.config().locale(&parts.headers).t(key)),
        Err(e) => e,
    }
    .into_response()
}

/// The answer to an anonymous request for a page that needs a user.
fn to_login(parts: &Parts, config: &AuthConfig) -> Response {
    let login_path = config.login_path;
    if wants_json(&parts.headers) {
        let message = config.locale(&parts.headers).t("auth-sign-in-first");
        return Error::new(StatusCode::UNAUTHORIZED, message).into_response();
    }
    let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let query = safe_next(next).and_then(|next| serde_urlencoded::to_string([("next", next)]).ok());
    let location = match query {
        Some(query) => format!("{login_path}?{query}"),
        None => login_path.to_string(),
    };
    if parts.headers.contains_key(crate::template::HX_REQUEST) {
        // htmx would swap a redirect's target into the page; this makes it navigate.
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    let mut response = Redirect::to(&location).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
