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
use axum::http::{HeaderMap, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::Service;
use tower_http::CompressionLevel;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{Compression, ResponseFuture};

/// What is worth compressing: bodies over 1 KiB, but not gRPC, images (compressed
/// already) or event streams (which must reach the client as they are written).
type Compressible =
    And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

fn compressible() -> Compressible {
    SizeAbove::new(1024)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

/// Gzip for the clients that accept it ([module docs](self)).
#[derive(Clone)]
pub(crate) struct Negotiate<S>(Compression<S, Compressible>);

impl<S> Negotiate<S> {
    pub(crate) fn new(inner: S) -> Negotiate<S> {
        let compression = Compression::new(inner)
            .quality(CompressionLevel::Fastest)
            .compress_when(compressible());
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
                // tower-http's test for the identity encoding, in the same order of cost:
                // the predicate first (a small body's size ends it).
                let headers = response.headers();
                let could_compress = compressible().should_compress(&response)
                    && !headers.contains_key(header::CONTENT_ENCODING)
                    && !headers.contains_key(header::CONTENT_RANGE);
                if could_compress && !varies_by_encoding(response.headers()) {
                    let vary = header::HeaderValue::from_static("accept-encoding");
                    response.headers_mut().append(header::VARY, vary);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// Whether a `Vary` header names `Accept-Encoding` already (as tower-http checks it).
fn varies_by_encoding(headers: &HeaderMap) -> bool {
    let name = header::ACCEPT_ENCODING.as_str().as_bytes();
    headers.get_all(header::VARY).iter().any(|value| {
        value.as_bytes().windows(name.len()).any(|window| window.eq_ignore_ascii_case(name))
    })
}
