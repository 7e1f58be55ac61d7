//! Errors in handlers: [`Error`], a status and a message safe to show.
//!
//! An `Error` leaves the handler as a bare status carrying its public message; the error
//! renderer of the core stack (`http/errors.rs`) turns it, like every other error
//! response (404 and 405 from routing, 413 from the body limit, 500 from a panic), into
//! the error page or JSON.

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

/// The public message of an error response, for the error renderer.
#[derive(Clone, Debug)]
pub(crate) struct PublicMessage(pub(crate) String);

/// An error a handler returns: a status and a message safe to show to the client.
/// Details of 5xx errors are logged, never shown.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    message: String,
    detail: Option<String>,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error { status, message: message.into(), detail: None }
    }

    pub fn not_found() -> Error {
        Error::new(StatusCode::NOT_FOUND, NOT_FOUND)
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
                return Error::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
            }
            cause = e.source();
        }
        Error::bad_request("The request body could not be read.")
    }

    /// A 500 whose `detail` is logged with the request id but not shown.
    pub fn internal(detail: impl Into<String>) -> Error {
        Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: SERVER_ERROR.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::NotFound => Error::not_found(),
            // Too slow, cut short by a shutdown, or no database connection to be had (the
            // pool is exhausted, PostgreSQL is restarting): the server is busy, not broken.
            DbError::Timeout(_)
            | DbError::Interrupted
            | DbError::Closed
            | DbError::Unavailable(_) => {
                tracing::warn!("database: {e}");
                Error::new(StatusCode::SERVICE_UNAVAILABLE, BUSY)
            }
            other => Error::internal(format!("database: {other}")),
        }
    }
}

impl From<minijinja::Error> for Error {
    fn from(e: minijinja::Error) -> Error {
        Error::internal(format!("template: {}", one_line(&e)))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.detail {
            tracing::error!(status = self.status.as_u16(), "{detail}");
        }
        let mut res = self.status.into_response();
        res.extensions_mut().insert(PublicMessage(self.message));
        res
    }
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
            assert_eq!(Error::from(e).status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        }
        assert_eq!(Error::from(DbError::NotFound).status, StatusCode::NOT_FOUND);
        assert_eq!(
            Error::from(DbError::Other("x".into())).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
