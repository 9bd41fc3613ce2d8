//! [`TracedBody`]: a response body that keeps its request's spans open, and current, until
//! the body is complete.
//!
//! This module owns only the body's lifetime rule; the spans come from the tower layers.

use crate::telemetry::TelemetryContext;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// A body that polls its inner body with the request's [`TelemetryContext`] current,
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
        ctx: Option<TelemetryContext>,
        // Whether the context's user span is this request's (and so takes its status).
        user: bool,
    }
}

impl<B> TracedBody<B> {
    pub(crate) fn new(inner: B, ctx: TelemetryContext, user: bool) -> Self {
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
        let this = self.project();
        let polled = match this.ctx.as_ref() {
            Some(ctx) => ctx.scope_and(|| this.inner.poll_frame(cx)),
            None => this.inner.poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => drop(this.ctx.take()),
            Poll::Ready(Some(Err(error))) => {
                if let Some(ctx) = this.ctx.take() {
                    let message = format!("response body: {error}");
                    ctx.scope_and(|| super::http_attrs::set_error(message, *this.user));
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
