//! [`TracedResponse`] and [`TracedBody`]: a response future, then its body, that keep their
//! request's spans open, and current while polled, until the body is complete; the
//! response's status is recorded on the spans as it arrives.
//!
//! This module owns only that lifetime rule; the spans come from the tower layers.

use super::http_attrs;
use super::request_context::RequestContext;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// A body that polls its inner body with the request's spans current,
    /// and ends the request's spans when the body ends: at its last frame, an error, or
    /// when it is dropped unfinished (a client that went away).
    ///
    /// Returned (inside the response) by the services of
    /// [`TraceServerLayer`](super::TraceServerLayer) and
    /// [`TraceClientLayer`](super::TraceClientLayer).
    #[derive(Debug)]
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        ctx: Option<RequestContext>,
        // Whether the context's user span is this request's (and so takes its status).
        user: bool,
    }
}

impl<B> TracedBody<B> {
    pub(crate) fn new(inner: B, ctx: RequestContext, user: bool) -> Self {
        Self {
            inner,
            ctx: Some(ctx),
            user,
        }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for TracedBody<B>
where
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = match this.ctx.as_mut() {
            // A body that says it is complete has nothing left to run: the spans end
            // without making the context current once more.
            Some(_) if this.inner.is_end_stream() => Poll::Ready(None),
            Some(ctx) => ctx.enter_and(|| this.inner.as_mut().poll_frame(cx)),
            None => this.inner.as_mut().poll_frame(cx),
        };
        // Ended in place: taking the context out would copy it first.
        match &polled {
            Poll::Ready(None) => *this.ctx = None,
            // The last frame: the body is complete, and a caller that knows it (hyper asks
            // `is_end_stream`) polls no more.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => *this.ctx = None,
            Poll::Ready(Some(Err(error))) => {
                if let Some(ctx) = this.ctx.take() {
                    let message = format!("response body: {error}");
                    http_attrs::set_error(&ctx, message, *this.user);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The response future of [`TraceServer`](super::TraceServer) and
    /// [`TraceClient`](super::TraceClient): polls the inner future with the request's context
    /// current, records the response's status (or error) on its spans, and hands the spans
    /// on to the response's [`TracedBody`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct TracedResponse<F> {
        #[pin]
        inner: F,
        ctx: Option<RequestContext>,
        user: bool,
        // The lowest status that marks the spans as failed.
        error_from: u16,
    }
}

impl<F> TracedResponse<F> {
    pub(super) fn new(inner: F, ctx: RequestContext, user: bool, error_from: u16) -> Self {
        Self {
            inner,
            ctx: Some(ctx),
            user,
            error_from,
        }
    }
}

impl<F, ResB, E> Future for TracedResponse<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<TracedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let ctx = this.ctx.as_mut().expect("polled after completion");
        let (user, error_from) = (*this.user, *this.error_from);
        let Poll::Ready(result) = ctx.enter_and(|| this.inner.poll(cx)) else {
            return Poll::Pending;
        };
        // Straight on the request's spans: no scope needed.
        match &result {
            Ok(response) => http_attrs::set_status(ctx, response.status(), error_from, user),
            Err(error) => http_attrs::set_error(ctx, error.to_string(), user),
        }
        let ctx = this.ctx.take().expect("checked above");
        Poll::Ready(result.map(|response| response.map(|body| TracedBody::new(body, ctx, user))))
    }
}
