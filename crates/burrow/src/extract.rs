//! Extractors whose rejections are the framework's errors: [`Path`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// axum's `Path`, except that a segment that does not parse (`/notes/abc` for a
/// `Path<i64>`, an id too large for it) is the 404 page, not a 400: to a visitor, a
/// malformed URL is a page that does not exist. The error goes through the error renderer
/// like every other, as HTML or JSON.
///
/// ```no_run
/// use burrow::prelude::*;
///
/// async fn show(Path(id): Path<i64>) -> burrow::Result<String> {
///     Ok(format!("note {id}"))
/// }
/// let routes: Router = Router::new().route("/notes/{id}", get(show));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            // What axum calls the client's fault (a 400): a segment that does not parse.
            Err(rejection) if rejection.status().is_client_error() => {
                tracing::debug!("path {}: {}: 404", parts.uri.path(), rejection.body_text());
                Err(Error::not_found())
            }
            // A route without the parameters its handler extracts, or a type a path cannot
            // give: a bug, not a bad URL.
            Err(rejection) => Err(Error::internal(format!(
                "path {}: {} (does the route declare the parameter?)",
                parts.uri.path(),
                rejection.body_text()
            ))),
        }
    }
}

impl<T> std::ops::Deref for Path<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Path<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::error::PublicMessage;

    async fn status(router: &Router, uri: &str) -> (StatusCode, Option<String>) {
        let res =
            router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        (res.status(), res.extensions().get::<PublicMessage>().map(|m| m.0.clone()))
    }

    #[tokio::test]
    async fn a_segment_that_does_not_parse_is_a_404() {
        let router = Router::new()
            .route("/notes/{id}", get(|Path(id): Path<i64>| async move { id.to_string() }))
            .route(
                "/pairs/{a}/{b}",
                get(|Path((a, b)): Path<(u8, String)>| async move { b + &a.to_string() }),
            );
        assert_eq!(status(&router, "/notes/42").await.0, StatusCode::OK);
        assert_eq!(status(&router, "/pairs/7/x").await.0, StatusCode::OK);
        for bad in ["/notes/abc", "/notes/1.5", "/notes/99999999999999999999999", "/pairs/300/x"] {
            let (code, message) = status(&router, bad).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{bad}");
            assert_eq!(message.as_deref(), Some(crate::error::NOT_FOUND), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_route_without_the_parameter_is_a_bug_not_a_404() {
        let router =
            Router::new().route("/notes", get(|Path(id): Path<i64>| async move { id.to_string() }));
        assert_eq!(status(&router, "/notes").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
