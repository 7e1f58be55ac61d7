//! Errors in handlers: [`Error`], a status and a message safe to show.
//!
//! An `Error` leaves the handler as a bare status carrying its public message; the error
//! renderer of the core stack (`http/errors.rs`) turns it, like every other error
//! response (404 and 405 from routing, 413 from the body limit, 500 from a panic), into
//! the error page or JSON.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::db::DbError;

/// Marks a response whose body the handler rendered itself (e.g. a 422 form): the error
/// renderer passes it untouched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handled;

pub(crate) const NOT_FOUND: &str = "The page you asked for does not exist.";
pub(crate) const SERVER_ERROR: &str = "Something went wrong on our side.";
const BUSY: &str = "The server is too busy to answer this request. Try again in a moment.";
pub(crate) const TOO_LARGE: &str = "The request body is larger than this server accepts.";

/// The message of a 429 (a rate limit), which says when to come back.
pub(crate) fn too_many_requests(retry_after_seconds: u64) -> String {
    format!("Too many requests. Try again in {retry_after_seconds} seconds.")
}

/// The public message of an error response, for the error renderer: English, and the
/// catalog key of its translation if it has one.
#[derive(Clone, Debug)]
pub(crate) struct PublicMessage(pub(crate) String, pub(crate) Option<Translation>);

/// The catalog key of a message and the values of its `{arguments}`.
#[derive(Clone, Debug)]
pub(crate) struct Translation {
    pub(crate) key: Cow<'static, str>,
    pub(crate) args: Vec<(&'static str, String)>,
}

/// What went wrong behind a 5xx, for the log only: the error renderer logs it with the
/// request id, which the handler that failed does not know.
#[derive(Clone, Debug)]
pub(crate) struct LogDetail(pub(crate) String);

/// `Result<T, burrow::Error>`, what handlers return: `?` works on any error (see
/// [`Error`]'s `From` impl).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a handler returns: a status and a message safe to show to the client.
/// Details of 5xx errors are logged with the request id, never shown.
///
/// `?` converts any error: [`DbError::NotFound`] is a 404, a database that is busy, down or
/// shutting down a 503, and anything else a 500 whose cause is logged.
///
/// ```
/// use burrow::{Error, Result};
///
/// fn read_config(path: &str) -> Result<String> {
///     // An io::Error: a logged 500, "Something went wrong on our side." for the client.
///     Ok(std::fs::read_to_string(path)?)
/// }
/// let err = read_config("/no/such/file").unwrap_err();
/// assert_eq!(err.status(), 500);
/// ```
///
/// `Error` is not itself a `std::error::Error` (like `anyhow::Error`, so that the blanket
/// `From` is possible), but converts into a [`BoxError`](crate::BoxError) for commands.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    message: String,
    /// The catalog key of the message's translation (see [`Error::translate`]).
    key: Option<Translation>,
    detail: Option<String>,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error { status, message: message.into(), key: None, detail: None }
    }

    /// The page (or JSON) shows the text of `key` in the request's language (see
    /// [`i18n`](crate::i18n)) instead of `message`, which stays for logs and as the text
    /// when no catalog has the key:
    ///
    /// ```
    /// use burrow::Error;
    /// let e = Error::forbidden("This note is not yours.").translate("notes-not-yours");
    /// assert_eq!(e.message(), "This note is not yours.");
    /// ```
    pub fn translate(mut self, key: impl Into<Cow<'static, str>>) -> Error {
        self.key = Some(Translation { key: key.into(), args: Vec::new() });
        self
    }

    /// Like [`translate`](Error::translate), with values for the text's `{arguments}`.
    pub fn translate_with(
        mut self,
        key: impl Into<Cow<'static, str>>,
        args: &[(&'static str, &dyn std::fmt::Display)],
    ) -> Error {
        let args = args.iter().map(|(name, value)| (*name, value.to_string())).collect();
        self.key = Some(Translation { key: key.into(), args });
        self
    }

    pub fn not_found() -> Error {
        Error::new(StatusCode::NOT_FOUND, NOT_FOUND).translate("error-not-found")
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(StatusCode::FORBIDDEN, message)
    }

    /// A request body that could not be read: 413 when it went over `--max-body-size` (an
    /// `http_body_util::LengthLimitError` in the error's source chain: a chunked body is cut
    /// off while it is read, not refused from its headers), 400 for anything else (e.g. the
    /// client went away mid-body).
    pub fn unreadable_body(error: &(dyn std::error::Error + 'static)) -> Error {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if e.is::<http_body_util::LengthLimitError>() {
                return Error::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)
                    .translate("error-too-large");
            }
            cause = e.source();
        }
        Error::bad_request("The request body could not be read.").translate("error-unreadable-body")
    }

    /// A 500 whose `detail` is logged with the request id but not shown.
    pub fn internal(detail: impl Into<String>) -> Error {
        Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: SERVER_ERROR.into(),
            key: Some(Translation { key: Cow::Borrowed("error-server"), args: Vec::new() }),
            detail: Some(detail.into()),
        }
    }

    /// A 500 whose `detail` is logged and also shown: `--dev`'s template errors.
    pub(crate) fn internal_shown(detail: String) -> Error {
        Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: detail.clone(),
            key: None,
            detail: Some(detail),
        }
    }

    /// Any error, as `?` converts it (a boxed error, which `?` cannot take: std may one day
    /// make `Box<dyn Error>` an error itself): database and template errors keep their meaning
    /// (see [`Error`]), anything else is a 500 logging the error and its sources.
    pub fn from_boxed(error: Box<dyn std::error::Error + Send + Sync>) -> Error {
        let error = match error.downcast::<DbError>() {
            Ok(db) => return Error::from_db(*db),
            Err(other) => other,
        };
        let error = match error.downcast::<minijinja::Error>() {
            Ok(t) => return Error::internal(format!("template: {}", one_line(&t))),
            Err(other) => other,
        };
        Error::internal(with_sources(&*error))
    }

    fn from_db(e: DbError) -> Error {
        match e {
            DbError::NotFound => Error::not_found(),
            // Too slow, cut short by a shutdown, or no database connection to be had (the
            // pool is exhausted, PostgreSQL is restarting): the server is busy, not broken.
            DbError::Timeout(_)
            | DbError::Interrupted
            | DbError::Closed
            | DbError::Unavailable(_) => Error {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: BUSY.into(),
                key: Some(Translation { key: Cow::Borrowed("error-busy"), args: Vec::new() }),
                detail: Some(format!("database: {e}")),
            },
            other => Error::internal(format!("database: {other}")),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// What is logged (never shown) for this error, if anything.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)?;
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Error {
        Error::from_boxed(Box::new(e))
    }
}

/// So that a command (whose errors are [`BoxError`](crate::BoxError)s) can use `?` on a
/// function that returns `burrow::Result`.
impl From<Error> for Box<dyn std::error::Error + Send + Sync> {
    fn from(e: Error) -> Self {
        Box::new(AsStdError(e))
    }
}

#[derive(Debug)]
struct AsStdError(Error);

impl std::fmt::Display for AsStdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AsStdError {}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(PublicMessage(self.message, self.key));
        if let Some(detail) = self.detail {
            res.extensions_mut().insert(LogDetail(detail));
        }
        res
    }
}

/// An error and its sources on one line: `a: b: c`, without repeating a source that the
/// error's own message already includes.
fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out.replace('\n', " ")
}

/// A template error on one line, naming the template and line when minijinja knows them.
pub(crate) fn one_line(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let (Some(name), Some(line)) = (e.name(), e.line())
        && !msg.contains(name)
    {
        msg = format!("{msg} ({name} line {line})");
    }
    msg.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_that_mean_busy_are_503() {
        for e in [
            DbError::Unavailable("no database connection became free within 1 s".into()),
            DbError::Timeout(std::time::Duration::from_secs(1)),
            DbError::Interrupted,
            DbError::Closed,
        ] {
            let what = format!("{e:?}");
            assert_eq!(Error::from(e).status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
        }
        assert_eq!(Error::from(DbError::NotFound).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            Error::from(DbError::Other("x".into())).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn question_mark_keeps_database_meanings_and_hides_the_rest() {
        fn db(e: DbError) -> Result<()> {
            Err(e)?
        }
        assert_eq!(db(DbError::NotFound).unwrap_err().status(), StatusCode::NOT_FOUND);
        for busy in [DbError::Interrupted, DbError::Closed] {
            let err = db(busy).unwrap_err();
            assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(err.detail().is_some_and(|d| d.starts_with("database: ")), "{err}");
        }

        fn io() -> Result<String> {
            Ok(std::fs::read_to_string("/no/such/file/anywhere")?)
        }
        let err = io().unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.message(), SERVER_ERROR, "the cause is never shown");
        assert!(err.detail().is_some_and(|d| d.contains("No such file")), "{err}");

        fn parse() -> Result<i64> {
            Ok("x".parse::<i64>()?)
        }
        assert_eq!(parse().unwrap_err().status(), StatusCode::INTERNAL_SERVER_ERROR);

        fn boxed() -> Result<()> {
            let e: Box<dyn std::error::Error + Send + Sync> = Box::new(DbError::NotFound);
            Err(Error::from_boxed(e))
        }
        assert_eq!(boxed().unwrap_err().status(), StatusCode::NOT_FOUND, "downcast from a box");
    }

    #[test]
    fn an_error_goes_back_into_a_box_for_commands() {
        fn command() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
            Err(Error::not_found())?
        }
        assert!(command().unwrap_err().to_string().starts_with("404"));
    }

    #[test]
    fn sources_are_logged_once() {
        let io = std::io::Error::other(std::fmt::Error);
        assert_eq!(with_sources(&io), "an error occurred when formatting an argument");
    }
}

pin_project_lite::pin_project! {
    /// The future of a layer that may refuse a request before the routes see it (the body
    /// limit's 413, a rate limit's 429): the routes' future, or the refusal at once.
    #[project = OrRefusedProjection]
    pub enum OrRefused<F> {
        Admitted { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F> OrRefused<F> {
    pub(crate) fn refused(response: impl IntoResponse) -> OrRefused<F> {
        OrRefused::Refused { response: Some(response.into_response()) }
    }
}

impl<F, R> std::future::Future for OrRefused<F>
where
    F: std::future::Future<Output = Result<R, std::convert::Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project() {
            OrRefusedProjection::Admitted { future } => {
                future.poll(cx).map(|result| result.map(IntoResponse::into_response))
            }
            OrRefusedProjection::Refused { response } => std::task::Poll::Ready(Ok(response
                .take()
                .expect("OrRefused polled after it completed"))),
        }
    }
}
