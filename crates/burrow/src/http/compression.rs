//! Response compression: tower-http's gzip [`Compression`] for the requests that send
//! `Accept-Encoding`, and nothing in the way of those that do not.
//!
//! tower-http's layer parses `Accept-Encoding` on every request and wraps every response's
//! body (which the stack then boxes), whether it compresses or not. Without the header it
//! can only choose the identity encoding, so [`Negotiate`] hands such a request straight to
//! the layer's inner service and only adds the `Vary: Accept-Encoding` that tower-http
//! would have added to a response it could have compressed (caches must not serve it to a
//! client that asks for gzip). Browsers send the header; API clients and load generators
//! often do not.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::Service;
use tower_http::CompressionLevel;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{Compression, ResponseFuture};

/// What is worth compressing: bodies of 1 KiB or more, but not gRPC, images (compressed
/// already; SVG is text) or event streams (which must reach the client as they are
/// written). tower-http's `SizeAbove` and three `NotForContentType`s, which look up the
/// content type once each, with one lookup.
#[derive(Clone, Copy)]
pub(crate) struct Compressible;

/// Below this a body is sent as it is.
const MIN_SIZE: u64 = 1024;

impl Predicate for Compressible {
    fn should_compress<B: http_body::Body>(&self, response: &axum::http::Response<B>) -> bool {
        SizeAbove::new(MIN_SIZE).should_compress(response)
            && compressible_type(response.headers().get(header::CONTENT_TYPE))
    }
}

/// Whether a body of this content type is worth compressing (see [`Compressible`]). As
/// tower-http reads it, a type that is not visible ASCII is none.
fn compressible_type(content_type: Option<&HeaderValue>) -> bool {
    let Some(content_type) = content_type.and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let not = |excluded: &str, except: &str| {
        !content_type.starts_with(excluded)
            || (!except.is_empty() && content_type.starts_with(except))
    };
    not("application/grpc", "application/grpc-web")
        && not("image/", "image/svg+xml")
        && not("text/event-stream", "")
}

/// Whether a response for a client without `Accept-Encoding` must say `Vary:
/// Accept-Encoding`: tower-http would have compressed it for a client that asked (it is
/// [`Compressible`], and not encoded or a range already), and it does not say so yet. One
/// pass over the response's few headers, where the lookups were six.
fn needs_vary(response: &Response) -> bool {
    if !SizeAbove::new(MIN_SIZE).should_compress(response) {
        return false;
    }
    let mut content_type = None;
    for (name, value) in response.headers() {
        if name == header::CONTENT_ENCODING || name == header::CONTENT_RANGE {
            return false;
        }
        if name == header::VARY && names_accept_encoding(value) {
            return false;
        }
        if name == header::CONTENT_TYPE && content_type.is_none() {
            content_type = Some(value);
        }
    }
    compressible_type(content_type)
}

/// Gzip for the clients that accept it ([module docs](self)).
#[derive(Clone)]
pub(crate) struct Negotiate<S>(Compression<S, Compressible>);

impl<S> Negotiate<S> {
    pub(crate) fn new(inner: S) -> Negotiate<S> {
        let compression =
            Compression::new(inner).quality(CompressionLevel::Fastest).compress_when(Compressible);
        Negotiate(compression)
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        self.0.get_mut()
    }
}

impl<S> Service<Request> for Negotiate<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = NegotiateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            NegotiateFuture::Compressed { future: Box::pin(self.0.call(request)) }
        } else {
            NegotiateFuture::Identity { future: self.0.get_mut().call(request) }
        }
    }
}

pin_project! {
    /// Compression's future is boxed: it carries the predicate and the encoding, and as a
    /// variant beside the plain future it would make every request's future (which the
    /// stack's layers move, each into its own) larger by their size.
    #[project = NegotiateProj]
    pub(crate) enum NegotiateFuture<F> {
        Compressed { future: Pin<Box<ResponseFuture<F, Compressible>>> },
        Identity { #[pin] future: F },
    }
}

impl<F> Future for NegotiateFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            NegotiateProj::Compressed { future } => {
                let Ok(response) = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(response.map(Body::new)))
            }
            NegotiateProj::Identity { future } => {
                let Ok(mut response) = ready!(future.poll(cx));
                if needs_vary(&response) {
                    let vary = header::HeaderValue::from_static("accept-encoding");
                    response.headers_mut().append(header::VARY, vary);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// Whether a `Vary` value names `Accept-Encoding` (as tower-http looks for it).
fn names_accept_encoding(vary: &HeaderValue) -> bool {
    let name = header::ACCEPT_ENCODING.as_str().as_bytes();
    vary.as_bytes().windows(name.len()).any(|window| window.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderName;
    use tower_http::compression::predicate::NotForContentType;

    /// Every mix of content type, size and the headers that decide: `Compressible` says
    /// what tower-http's own predicates say, and `needs_vary` what tower-http's compression
    /// tests before it adds `Vary` (its `future.rs`).
    #[test]
    fn compressible_and_needs_vary_decide_as_tower_http() {
        let reference = SizeAbove::new(MIN_SIZE)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE);
        let types: [&[&[u8]]; 10] = [
            &[],
            &[b"text/html; charset=utf-8"],
            &[b"application/json"],
            &[b"image/png"],
            &[b"image/svg+xml"],
            &[b"application/grpc"],
            &[b"application/grpc-web+proto"],
            &[b"text/event-stream"],
            &[b"text/h\xe9ml"],
            &[b"image/png", b"text/html"],
        ];
        let others: [&[(HeaderName, &str)]; 6] = [
            &[],
            &[(header::CONTENT_ENCODING, "br")],
            &[(header::CONTENT_RANGE, "bytes 0-1/2")],
            &[(header::VARY, "Accept-Encoding")],
            &[(header::VARY, "cookie")],
            &[(header::VARY, "origin"), (header::VARY, "Origin, accept-encoding")],
        ];
        let mut checked = 0;
        for content_types in types {
            for size in [0, 1023, 1024, 5000] {
                for headers in others {
                    let mut response = Response::new(axum::body::Body::from(vec![b'a'; size]));
                    for content_type in content_types {
                        let value = HeaderValue::from_bytes(content_type).unwrap();
                        response.headers_mut().append(header::CONTENT_TYPE, value);
                    }
                    for (name, value) in headers {
                        response.headers_mut().append(name, HeaderValue::from_static(value));
                    }
                    let expected = reference.should_compress(&response);
                    let what = format!("{:?}, {size} bytes", response.headers());
                    assert_eq!(Compressible.should_compress(&response), expected, "{what}");
                    let found = response.headers();
                    let vary = !found.contains_key(header::CONTENT_ENCODING)
                        && !found.contains_key(header::CONTENT_RANGE)
                        && expected
                        && !found.get_all(header::VARY).iter().any(names_accept_encoding);
                    assert_eq!(needs_vary(&response), vary, "{what}");
                    checked += usize::from(vary);
                }
            }
        }
        assert!(checked > 0, "some responses need Vary");
    }
}
