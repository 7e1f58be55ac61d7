//! A layer made of two synchronous steps, one before the service it wraps and one after
//! it, and an asynchronous check for the requests that need one. axum's `from_fn` boxes a
//! clone of the service below and the middleware's future (over 1 KiB: past glibc's
//! per-thread cache, into its locked arenas) on every request; an [`Around`] layer calls
//! the service below directly and returns its future wrapped, so it allocates nothing of
//! its own, except for a request that needs the check (a boxed future then, as
//! `from_fn`). The session and CSRF apps' middleware are such layers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// A middleware whose work before and after the rest of the stack needs no waiting.
pub(crate) trait Around: Clone + Send + Sync + 'static {
    /// What [`before`](Around::before) hands to [`after`](Around::after).
    type State: Send + 'static;

    fn before(&self, request: &mut Request) -> Self::State;

    fn after(&self, state: Self::State, response: Response) -> Response;

    /// Whether `request` must pass [`check`](Around::check) before the routes see it.
    fn needs_check(&self, _request: &Request) -> bool {
        false
    }

    /// The asynchronous check: the request to pass on, or the answer that refuses it
    /// ([`after`](Around::after) does not run then).
    fn check(
        &self,
        request: Request,
        _state: &Self::State,
    ) -> impl Future<Output = Result<Request, Response>> + Send {
        std::future::ready(Ok(request))
    }
}

/// An [`Around`] that may be absent (an app that is not installed): then a pass-through.
impl<A: Around> Around for Option<A> {
    type State = Option<A::State>;

    fn before(&self, request: &mut Request) -> Self::State {
        self.as_ref().map(|around| around.before(request))
    }

    fn after(&self, state: Self::State, response: Response) -> Response {
        match (self, state) {
            (Some(around), Some(state)) => around.after(state, response),
            _ => response,
        }
    }

    fn needs_check(&self, request: &Request) -> bool {
        self.as_ref().is_some_and(|around| around.needs_check(request))
    }

    fn check(
        &self,
        request: Request,
        state: &Self::State,
    ) -> impl Future<Output = Result<Request, Response>> + Send {
        use tokio_util::either::Either::{Left, Right};
        match (self, state) {
            (Some(around), Some(state)) => Left(around.check(request, state)),
            _ => Right(std::future::ready(Ok(request))),
        }
    }
}

/// The layer of an [`Around`], for `Router::layer`.
#[derive(Clone)]
pub(crate) struct AroundLayer<A>(pub(crate) A);

impl<A: Around, S> Layer<S> for AroundLayer<A> {
    type Service = AroundService<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService { around: self.0.clone(), inner }
    }
}

#[derive(Clone)]
pub(crate) struct AroundService<A, S> {
    around: A,
    inner: S,
}

impl<A, S> Service<Request> for AroundService<A, S>
where
    A: Around,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<AroundFuture<A, A::State, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let around = self.around.clone();
        let state = around.before(&mut request);
        if !around.needs_check(&request) {
            let inner = self.inner.call(request);
            return Either::Direct { future: AroundFuture { inner, around, state: Some(state) } };
        }
        // The service below was made ready for this call: it runs it, a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Checked {
            future: Box::pin(async move {
                let request = match around.check(request, &state).await {
                    Ok(request) => request,
                    Err(refused) => return Ok(refused),
                };
                let Ok(response) = inner.call(request).await;
                Ok(around.after(state, response))
            }),
        }
    }
}

pin_project! {
    /// The inner service's future, then [`Around::after`].
    pub(crate) struct AroundFuture<A, St, F> {
        #[pin]
        inner: F,
        around: A,
        state: Option<St>,
    }
}

impl<A, F> Future for AroundFuture<A, A::State, F>
where
    A: Around,
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let state = this.state.take().expect("AroundFuture polled after it completed");
        Poll::Ready(Ok(this.around.after(state, response)))
    }
}

pin_project! {
    /// The future of an [`AroundService`]: without the check, or boxed with it.
    #[project = EitherProj]
    pub(crate) enum Either<F> {
        Direct { #[pin] future: F },
        Checked { future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Either<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EitherProj::Direct { future } => future.poll(cx),
            EitherProj::Checked { future } => future.as_mut().poll(cx),
        }
    }
}
