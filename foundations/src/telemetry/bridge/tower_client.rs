//! [`TraceClientLayer`]: a tower layer that gives every outbound HTTP request a client span
//! and sends the W3C trace context with it.
//!
//! This module decides which pipeline's context is sent; spans are opened through the
//! public span API, and carried to the response future and body by the request's context
//! (`request_context`).

use super::http_attrs;
use super::request_context::RequestContext;
use super::traced_body::{TracedBody, TracedResponse};
use crate::telemetry::tracing::{self as ftracing, TraceState, TraceparentContext};
use http::header::{HeaderMap, HeaderValue};
use http::{Request, Response};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Which trace an outbound request continues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Propagate {
    /// The internal trace: the next hop is the operator's own service.
    #[default]
    Internal,
    /// The current user trace: the next hop is the customer's (feature `user-tracing`).
    #[cfg(feature = "user-tracing")]
    User,
}

/// A tower layer that traces outbound HTTP requests (feature `tower`).
///
/// Per request, the service it makes opens a span of kind client named `"{METHOD}"`, a
/// child of the current span, with the attributes `http.request.method`, `url.full`,
/// `server.address`, `server.port` and, once known, `http.response.status_code` (a 4xx or
/// 5xx response, or an error, sets status Error). It sets the request's `traceparent` (and
/// `tracestate`, when the trace has one) to continue the trace under that span, replacing
/// any the request had. The span ends when the response body is complete.
///
/// By default the internal trace is sent. With [`user`](Self::user), the customer's user
/// trace is: the request also gets a user span, and its context is what is sent; without
/// an active user trace nothing is sent, so that internal ids never reach a customer's
/// origin.
///
/// ```
/// use foundations::telemetry::TelemetryContext;
/// use foundations::telemetry::bridge::TraceClientLayer;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A stand-in for an HTTP client: answers with the traceparent it was sent.
/// let client = ServiceBuilder::new().layer(TraceClientLayer::new()).service_fn(
///     |req: Request<String>| async move {
///         let sent = req.headers()["traceparent"].to_str().unwrap().to_owned();
///         Ok::<_, std::convert::Infallible>(Response::new(sent))
///     },
/// );
///
/// let ctx = TelemetryContext::test();
/// let _scope = ctx.scope();
/// let _root = tracing::start_trace("job", StartTraceOptions::default());
/// let request = Request::get("http://backend/items").body(String::new()).unwrap();
/// let response = client.oneshot(request).await.unwrap();
/// let trace_id = tracing::trace_id().unwrap().to_string();
/// assert!(response.into_body().into_inner().contains(&trace_id));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceClientLayer {
    propagate: Propagate,
}

impl TraceClientLayer {
    /// A layer that sends the internal trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the current user trace instead (feature `user-tracing`); see the type docs.
    #[cfg(feature = "user-tracing")]
    pub fn user(self) -> Self {
        Self {
            propagate: Propagate::User,
        }
    }
}

impl<S> Layer<S> for TraceClientLayer {
    type Service = TraceClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceClient {
            inner,
            propagate: self.propagate,
        }
    }
}

/// The service [`TraceClientLayer`] makes.
#[derive(Clone, Debug)]
pub struct TraceClient<S> {
    inner: S,
    propagate: Propagate,
}

/// Sets (or, with nothing to send, removes) the W3C headers.
fn inject(
    headers: &mut HeaderMap,
    traceparent: Option<TraceparentContext>,
    tracestate: Option<TraceState>,
) {
    headers.remove("traceparent");
    headers.remove("tracestate");
    let Some(traceparent) = traceparent else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&traceparent.to_header_value()) {
        headers.insert("traceparent", value);
    }
    if let Some(value) = tracestate.and_then(|ts| HeaderValue::from_str(&ts.to_string()).ok()) {
        headers.insert("tracestate", value);
    }
}

impl<S, B, ResB> Service<Request<B>> for TraceClient<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let name = http_attrs::static_method(request.method());
        let span = ftracing::span(name);
        #[cfg(feature = "user-tracing")]
        let user_span = (self.propagate == Propagate::User)
            .then(|| crate::telemetry::user_tracing::user_span(name));
        let user = match self.propagate {
            Propagate::Internal => {
                inject(
                    request.headers_mut(),
                    ftracing::w3c_traceparent(),
                    ftracing::w3c_tracestate(),
                );
                false
            }
            #[cfg(feature = "user-tracing")]
            Propagate::User => {
                use crate::telemetry::user_tracing;
                inject(
                    request.headers_mut(),
                    user_tracing::w3c_traceparent(),
                    user_tracing::w3c_tracestate(),
                );
                user_tracing::is_active()
            }
        };
        if span.is_sampled() || user {
            http_attrs::set_request_tags(http_attrs::client_request_tags(&request), user);
        }
        // The context takes the client span and the user span current above.
        let mut ctx = RequestContext::from_context(&span.into_context());
        #[cfg(feature = "user-tracing")]
        drop(user_span);
        let inner = ctx.enter_and(|| self.inner.call(request));
        // A 4xx answer is a failed call from the client's side.
        TracedResponse::new(inner, ctx, user, 400)
    }
}
