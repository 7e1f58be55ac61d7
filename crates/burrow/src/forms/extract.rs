//! The axum side: [`Valid`] extracts a validated form, [`Invalid`] shows it again (422).

use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Value;
use minijinja::value::merge_maps;

use super::Form;
use super::bound::BoundForm;
use super::data::FormData;
use super::errors::Errors;
use super::upload::{Spool, read_multipart};
use crate::error::Error;
use crate::template::{Html, Render};

/// A handler argument that is either the valid form or the submission to show again:
/// `async fn create(form: FormResult<NoteForm>)`, then
/// `match form { Ok(Valid(note)) => …, Err(invalid) => invalid.page(&render, …) }`.
pub type FormResult<T> = Result<Valid<T>, Invalid<T>>;

/// A form that passed every rule and [`Clean::clean`](super::Clean::clean). Taken alone
/// as an argument, an invalid submission answers 422 with the errors as text (for clients
/// that are not browsers); take [`FormResult`] to show the form again instead.
#[derive(Debug)]
pub struct Valid<T>(pub T);

impl<T> Valid<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Valid<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A submission that did not validate, or a body that could not be read at all.
pub struct Invalid<T> {
    outcome: Outcome,
    form: PhantomData<fn() -> T>,
}

enum Outcome {
    Rejected {
        form: BoundForm,
        errors: Errors,
        htmx_target: Option<String>,
    },
    /// 400, 413 or 415: there is no form to show.
    Unreadable(Error),
}

impl<S: Send + Sync, T: Form> FromRequest<S> for Valid<T> {
    type Rejection = Invalid<T>;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Invalid<T>> {
        let htmx_target = htmx_target(&request);
        let data = read(request).await.map_err(Invalid::unreadable)?;
        T::from_data(&data).map(Valid).map_err(|errors| Invalid {
            outcome: Outcome::Rejected {
                form: BoundForm::submitted::<T>(&data, &errors),
                errors,
                htmx_target,
            },
            form: PhantomData,
        })
    }
}

/// The submitted fields: the query string of a GET or HEAD, else a urlencoded or
/// multipart body, parsed once: the CSRF check may have parsed it already.
pub(crate) async fn read(mut request: Request) -> Result<FormData, Error> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return FormData::from_urlencoded(request.uri().query().unwrap_or_default().as_bytes());
    }
    if let Some(Parsed(data)) = request.extensions_mut().remove::<Parsed>() {
        return Ok(data);
    }
    let Some(encoding) = Encoding::of(&request) else {
        return Err(Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "This form takes application/x-www-form-urlencoded or multipart/form-data data.",
        ));
    };
    read_body(request, encoding).await?.0
}

/// The fields of a form body that a middleware (the CSRF check) read before the handler,
/// kept in the request's extensions for [`read`].
#[derive(Clone)]
pub(crate) struct Parsed(pub(crate) FormData);

/// Reads a form body and parses it: the fields, or why they do not parse, and the request
/// for whoever reads it next. A urlencoded body is buffered and kept; a multipart one is
/// read as it streams in (files to disk, see `upload.rs`) and not kept: its fields travel
/// as [`Parsed`]. Going over a body limit is the outer error: a 413.
pub(crate) async fn read_body(
    request: Request,
    encoding: Encoding,
) -> Result<(Result<FormData, Error>, Request), Error> {
    let (parts, body) = request.into_parts();
    match encoding {
        Encoding::Urlencoded => {
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|e| Error::unreadable_body(&e))?;
            let data = FormData::from_urlencoded(&bytes);
            Ok((data, Request::from_parts(parts, axum::body::Body::from(bytes))))
        }
        Encoding::Multipart => {
            let content_type =
                parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let spool = parts.extensions.get::<Spool>().cloned().unwrap_or_default();
            let data = read_multipart(body, content_type.unwrap_or_default(), &spool).await;
            // Too large, or the disk failed: no form to judge.
            if let Err(error) = &data
                && (error.status() == StatusCode::PAYLOAD_TOO_LARGE
                    || error.status().is_server_error())
            {
                return Err(data.unwrap_err());
            }
            Ok((data, Request::from_parts(parts, axum::body::Body::empty())))
        }
    }
}

/// How a form body is encoded, from its `Content-Type`.
pub(crate) enum Encoding {
    Urlencoded,
    Multipart,
}

impl Encoding {
    /// The encoding of `request`'s body; `None` for a body that is not a form.
    pub(crate) fn of(request: &Request) -> Option<Encoding> {
        let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Encoding::Urlencoded)
        } else if essence.eq_ignore_ascii_case("multipart/form-data") {
            Some(Encoding::Multipart)
        } else {
            None
        }
    }
}

/// A handler argument: the submitted fields as they are, unvalidated, with the files of a
/// multipart body (for a handler that takes uploads or reads fields no form declares).
impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<FormData, Error> {
        read(request).await
    }
}

/// For an htmx request (not boosted), the `#id` of the form that sent it: htmx names the
/// element in `HX-Trigger`. Only plain ids, since the value becomes a CSS selector.
fn htmx_target(request: &Request) -> Option<String> {
    let headers = request.headers();
    if !crate::template::wants_fragment(headers) {
        return None;
    }
    let id = headers.get("hx-trigger")?.to_str().ok()?;
    let plain = id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (plain && id.starts_with(|c: char| c.is_ascii_alphabetic())).then(|| format!("#{id}"))
}

impl<T> Invalid<T> {
    fn unreadable(error: Error) -> Invalid<T> {
        Invalid { outcome: Outcome::Unreadable(error), form: PhantomData }
    }

    /// Renders a page with the form as `form` in its context (replacing a `form` that
    /// `context` may hold, such as a blank one), answering 422. An htmx request gets the page's `content` block, as from
    /// [`Render::page`], plus `HX-Retarget` (the form that sent it) and `HX-Reswap:
    /// outerHTML`. A body that could not be read is its error (400, 413, 415) instead.
    pub fn page(
        self,
        render: &Render,
        name: &str,
        context: impl Into<Value>,
    ) -> Result<Response, Error> {
        self.respond(context, |ctx| render.page(name, ctx))
    }

    /// As [`Invalid::page`], rendering the template as is ([`Render::partial`]): for an
    /// htmx request, the form alone, which replaces the form that was sent.
    pub fn partial(
        self,
        render: &Render,
        name: &str,
        context: impl Into<Value>,
    ) -> Result<Response, Error> {
        self.respond(context, |ctx| render.partial(name, ctx))
    }

    /// Replaces the form `selector` names instead of the one that sent the request (htmx).
    pub fn retarget(mut self, selector: impl Into<String>) -> Invalid<T> {
        if let Outcome::Rejected { htmx_target, .. } = &mut self.outcome {
            *htmx_target = Some(selector.into());
        }
        self
    }

    /// The form to show, or `None` when the body could not be read.
    pub fn form(&self) -> Option<&BoundForm> {
        match &self.outcome {
            Outcome::Rejected { form, .. } => Some(form),
            Outcome::Unreadable(_) => None,
        }
    }

    /// The form to show, to change before rendering it (e.g. [`BoundForm::add_error`]).
    pub fn form_mut(&mut self) -> Option<&mut BoundForm> {
        match &mut self.outcome {
            Outcome::Rejected { form, .. } => Some(form),
            Outcome::Unreadable(_) => None,
        }
    }

    /// What was wrong, as codes and arguments; `None` when the body could not be read.
    pub fn errors(&self) -> Option<&Errors> {
        match &self.outcome {
            Outcome::Rejected { errors, .. } => Some(errors),
            Outcome::Unreadable(_) => None,
        }
    }

    fn respond(
        self,
        context: impl Into<Value>,
        render: impl FnOnce(Value) -> Result<Html, Error>,
    ) -> Result<Response, Error> {
        let (form, htmx_target) = match self.outcome {
            Outcome::Rejected { form, htmx_target, .. } => (form, htmx_target),
            Outcome::Unreadable(error) => return Err(error),
        };
        let context = merge_maps([context.into(), minijinja::context! { form }]);
        let html = render(context)?;
        let mut response = (StatusCode::UNPROCESSABLE_ENTITY, html).into_response();
        if let Some(value) = htmx_target.and_then(|t| HeaderValue::try_from(t).ok()) {
            let headers = response.headers_mut();
            headers.insert(HeaderName::from_static("hx-retarget"), value);
            headers.insert(
                HeaderName::from_static("hx-reswap"),
                HeaderValue::from_static("outerHTML"),
            );
        }
        Ok(response)
    }
}

impl<T> std::fmt::Debug for Invalid<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Rejected { errors, .. } => f.debug_tuple("Invalid").field(errors).finish(),
            Outcome::Unreadable(error) => f.debug_tuple("Invalid").field(error).finish(),
        }
    }
}

/// Without a template to show: 422 with every error in English, through the error
/// renderer.
impl<T: Form> IntoResponse for Invalid<T> {
    fn into_response(self) -> Response {
        match self.outcome {
            Outcome::Unreadable(error) => error.into_response(),
            Outcome::Rejected { form, .. } => {
                let mut lines: Vec<String> = form.errors().to_vec();
                lines.extend(form.fields().iter().flat_map(|f| f.errors.iter().cloned()));
                Error::new(StatusCode::UNPROCESSABLE_ENTITY, lines.join(" ")).into_response()
            }
        }
    }
}
