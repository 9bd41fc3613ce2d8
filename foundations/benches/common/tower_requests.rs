//! The bare tower service and the request the server-layer measurements send through it
//! (the `tower_server` bench and the `callgrind_bridges` and `callgrind_tower_production`
//! examples): one definition, so that every figure times the same work.

use foundations::telemetry::bridge::TraceServerLayer;
use http::{Request, Response};
use http_body::Body;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower_layer::Layer;
use tower_service::Service;

/// A handler that answers at once with a one-frame body.
#[derive(Clone)]
pub struct Bare;

impl Service<Request<()>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(String::from("ok"))))
    }
}

/// [`Bare`] behind the server layer, the route a `&'static str` from a closure: the traced
/// case of every server-layer measurement.
pub fn traced()
-> impl Service<Request<()>, Response = Response<impl Body>, Error = impl std::fmt::Debug> {
    TraceServerLayer::new()
        .with_route(|_: &Request<()>| Some("/users/{id}"))
        .layer(Bare)
}

/// One request through `service` (inbound `traceparent`, host and user agent), its response
/// polled once and its body drained.
pub fn one_request<S, B>(service: &mut S, cx: &mut Context<'_>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    let request = Request::get("/users/42")
        .header("host", "api.example.test")
        .header("user-agent", "bench/1.0")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap();
    let Poll::Ready(Ok(response)) = pin!(service.call(request)).poll(cx) else {
        panic!("the service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(cx) {}
}

/// `iters` requests through `service`. Out of line: callgrind counts what runs inside it
/// (toggle `*requests*`).
#[inline(never)]
#[allow(dead_code)] // The bench times `one_request` itself.
pub fn requests<S, B>(service: &mut S, iters: u64)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..iters {
        one_request(service, &mut cx);
    }
}
