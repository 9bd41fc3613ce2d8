//! [`TraceServerLayer`]: a tower layer that gives every inbound HTTP request its server span
//! (and, when asked, its user trace), current while the handler and the response body run.
//!
//! This module decides names, attributes and which traces a request gets. The server span is
//! a root built through the core, off the scope stack (it becomes current only inside the
//! request's context, entered as frames: `request_context`); the user trace is started
//! through the public API. The inbound headers are read in one pass (`http_attrs`).

use super::http_attrs::{self, Recent};
use super::request_context::{self, RequestContext};
use super::traced_body::{TracedBody, TracedResponse};
use crate::telemetry::core::current;
use crate::telemetry::core::entry_span::SpanHandle;
use crate::telemetry::core::pipeline::Internal;
use http::{Request, Response};
use std::borrow::Cow;
#[cfg(feature = "user-tracing")]
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Names a request's route (the `{route}` of the span name `"{METHOD} {route}"`).
///
/// Implemented by [`NoRoute`] (the span is named by the method alone) and by closures
/// `Fn(&Request<B>) -> Option<R>` for any `R: AsRef<str>` (a `&'static str`, a `String`, an
/// `Arc<str>`...). Names are interned per distinct `"{METHOD} {route}"` (bounded), so a
/// route should be a template: `/users/{id}`, not `/users/42`. With axum, read its
/// `MatchedPath`:
///
/// ```ignore
/// TraceServerLayer::new().with_route(|req: &Request<Body>| {
///     req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned())
/// })
/// ```
pub trait RouteOf<B> {
    /// What names a route: anything that reads as a `&str`.
    type Route: AsRef<str>;

    /// The route template of `request` (`/users/{id}`, not `/users/42`), if known.
    fn route_of(&self, request: &Request<B>) -> Option<Self::Route>;
}

impl<B, F, R> RouteOf<B> for F
where
    F: Fn(&Request<B>) -> Option<R>,
    R: AsRef<str>,
{
    type Route = R;

    fn route_of(&self, request: &Request<B>) -> Option<R> {
        self(request)
    }
}

/// No route: server spans are named by the request method alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoute;

impl<B> RouteOf<B> for NoRoute {
    type Route = &'static str;

    fn route_of(&self, _: &Request<B>) -> Option<&'static str> {
        None
    }
}

/// Decides whether a request gets a user trace, and under which routing. See
/// [`TraceServerLayer::with_user_trace`].
pub trait UserTraceOf<B> {
    /// Starts the user trace of `request` (named `name`, continuing the inbound
    /// `traceparent`/`tracestate` if present) when it gets one; the trace is current while
    /// the returned guard lives.
    // A `&Cow` so that a borrowed name is copied without allocating, and only when a user
    // trace starts.
    #[allow(clippy::ptr_arg)]
    fn start_user_trace(
        &self,
        request: &Request<B>,
        name: &Cow<'static, str>,
        traceparent: Option<&[u8]>,
        tracestate: Option<&[u8]>,
    ) -> UserTraceGuard;
}

/// Keeps a request's user trace current while the server layer sets its attributes.
/// Opaque: returned by [`UserTraceOf::start_user_trace`].
#[derive(Debug, Default)]
pub struct UserTraceGuard {
    #[cfg(feature = "user-tracing")]
    scope: Option<crate::telemetry::user_tracing::UserSpanScope>,
}

impl UserTraceGuard {
    fn is_active(&self) -> bool {
        #[cfg(feature = "user-tracing")]
        return self.scope.is_some();
        #[cfg(not(feature = "user-tracing"))]
        false
    }
}

/// No user traces: every request gets its internal span only.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUserTrace;

impl<B> UserTraceOf<B> for NoUserTrace {
    fn start_user_trace(
        &self,
        _: &Request<B>,
        _: &Cow<'static, str>,
        _: Option<&[u8]>,
        _: Option<&[u8]>,
    ) -> UserTraceGuard {
        UserTraceGuard::default()
    }
}

/// A closure `Fn(&Request<B>) -> Option<M>` choosing a request's user-trace routing `M`
/// (feature `user-tracing`). Made by [`TraceServerLayer::with_user_trace`].
#[cfg(feature = "user-tracing")]
pub struct UserTraceFn<F, M> {
    f: F,
    _routing: PhantomData<fn() -> M>,
}

#[cfg(feature = "user-tracing")]
impl<F: Clone, M> Clone for UserTraceFn<F, M> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            _routing: PhantomData,
        }
    }
}

#[cfg(feature = "user-tracing")]
impl<F, M> std::fmt::Debug for UserTraceFn<F, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTraceFn").finish_non_exhaustive()
    }
}

#[cfg(feature = "user-tracing")]
impl<B, F, M> UserTraceOf<B> for UserTraceFn<F, M>
where
    F: Fn(&Request<B>) -> Option<M>,
    M: crate::telemetry::user_tracing::RoutingMetadata + 'static,
{
    fn start_user_trace(
        &self,
        request: &Request<B>,
        name: &Cow<'static, str>,
        traceparent: Option<&[u8]>,
        tracestate: Option<&[u8]>,
    ) -> UserTraceGuard {
        let scope = (self.f)(request).map(|routing| {
            crate::telemetry::user_tracing::start_user_trace_from_headers(
                name.clone(),
                routing,
                traceparent,
                tracestate,
            )
        });
        UserTraceGuard { scope }
    }
}

/// A tower layer that traces inbound HTTP requests (feature `tower`).
///
/// Per request, the service it makes:
///
/// - continues the inbound `traceparent`/`tracestate` (or starts a root, sampled by the
///   internal sampler) with an internal span of kind server named `"{METHOD} {route}"`
///   (`"{METHOD}"` without a route), with the attributes `http.request.method`,
///   `url.path`, `url.scheme`, `server.address`, `user_agent.original` and, once known,
///   `http.response.status_code`; a 5xx response or an error sets status Error;
/// - optionally starts a user trace ([`with_user_trace`](Self::with_user_trace));
/// - calls the inner service, polls its response future and the response body with the
///   request's context current, so that spans opened by the handler nest under the
///   server span, and ends the spans when the response body is complete.
///
/// ```
/// use foundations::telemetry::TelemetryContext;
/// use foundations::telemetry::bridge::TraceServerLayer;
/// use foundations::telemetry::tracing;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(TraceServerLayer::new().with_route(|req: &Request<String>| {
///         req.uri().path().strip_prefix("/users/").map(|_| "/users/{id}".to_owned())
///     }))
///     .service_fn(|_req: Request<String>| async {
///         let _load = tracing::span("load_user"); // a child of the server span
///         Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
///     });
///
/// let ctx = TelemetryContext::test();
/// let request = Request::get("/users/42").body(String::new()).unwrap();
/// let response = ctx.apply(service.oneshot(request)).await.unwrap();
/// drop(response); // the span ends with the response body
///
/// let traces = ctx.traces(Default::default());
/// assert_eq!(traces[0].name, "GET /users/{id}");
/// assert_eq!(traces[0].children[0].name, "load_user");
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceServerLayer<R = NoRoute, U = NoUserTrace> {
    route: R,
    user: U,
}

impl TraceServerLayer {
    /// A layer naming spans by method alone, without user traces.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<R, U> TraceServerLayer<R, U> {
    /// Names spans `"{METHOD} {route}"` with the route `route` returns (a closure
    /// `Fn(&Request<B>) -> Option<R>`, `R` a `&'static str`, a `String` or anything else
    /// that reads as a `&str`; see [`RouteOf`]).
    pub fn with_route<R2>(self, route: R2) -> TraceServerLayer<R2, U> {
        TraceServerLayer {
            route,
            user: self.user,
        }
    }

    /// Gives a request a user trace when `user` returns its routing (feature
    /// `user-tracing`): `None` means no user trace. The user trace continues the inbound
    /// `traceparent`/`tracestate` if present, its root is named like the server span and
    /// carries the same request attributes; handler code records into it with the
    /// `user_tracing` API.
    #[cfg(feature = "user-tracing")]
    pub fn with_user_trace<F, M>(self, user: F) -> TraceServerLayer<R, UserTraceFn<F, M>> {
        TraceServerLayer {
            route: self.route,
            user: UserTraceFn {
                f: user,
                _routing: PhantomData,
            },
        }
    }
}

impl<S, R: Clone, U: Clone> Layer<S> for TraceServerLayer<R, U> {
    type Service = TraceServer<S, R, U>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceServer {
            inner,
            route: self.route.clone(),
            user: self.user.clone(),
            recent: Recent::default(),
        }
    }
}

/// The service [`TraceServerLayer`] makes.
#[derive(Clone, Debug)]
pub struct TraceServer<S, R = NoRoute, U = NoUserTrace> {
    inner: S,
    route: R,
    user: U,
    recent: Recent,
}

impl<S, R, U, B, ResB> Service<Request<B>> for TraceServer<S, R, U>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
    R: RouteOf<B>,
    U: UserTraceOf<B>,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = http_attrs::static_method(request.method());
        let name: Cow<'static, str> = match self.route.route_of(&request) {
            Some(route) => self.recent.span_name(method, route.as_ref()),
            None => Cow::Borrowed(method),
        };
        let headers = http_attrs::ServerHeaders::of(request.headers());
        let traceparent = headers.traceparent;
        let tracestate = headers.tracestate.as_deref();
        // The user trace first: it is the one that needs the name borrowed, and the
        // internal root then takes it.
        let user = self
            .user
            .start_user_trace(&request, &name, traceparent, tracestate);
        let user_active = user.is_active();
        // The server span is a root built off the stack, its attributes recorded straight
        // into it: it is current only inside the request's context.
        let recent = &mut self.recent;
        let internal = current::root_harness::<Internal>().map(|harness| {
            SpanHandle::start_tracked_root::<Internal>(
                harness,
                name,
                http_attrs::root_options(traceparent, tracestate),
                |live| http_attrs::record_server_request(live, &request, &headers, recent),
            )
        });
        if user_active {
            let tags = http_attrs::server_request_tags(&request, &headers, &mut self.recent);
            http_attrs::set_user_tags(tags);
        }
        drop(headers);
        // The context takes both spans: the server span, and the user root current here.
        let mut ctx = RequestContext::with_internal(internal);
        // Empty without the user pipeline compiled in.
        #[allow(clippy::drop_non_drop)]
        drop(user);
        // Called in this frame: a closure would take the request by a copy.
        let (polled, parked) = ctx.parts();
        let entered = request_context::enter(&polled, parked);
        let inner = self.inner.call(request);
        drop(entered);
        // Only a 5xx answer is the server's failure; a 4xx is the client's.
        TracedResponse::new(inner, ctx, user_active, 500)
    }
}
