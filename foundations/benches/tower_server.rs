//! `TraceServerLayer` overhead per request over the same bare tower service: the request
//! goes through `call`, its response future is polled once (ready), and its body is polled
//! to the end, which ends the server span. `traced` names its route with a `&'static str`,
//! `traced_string_route` with a `String` made per request.
//!
//! Run: `cargo bench -p foundations --features testing,tower --bench tower_server`. The
//! internal pipeline records every request (100% sampling), its queue drained.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use foundations::telemetry::bridge::TraceServerLayer;
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
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
struct Bare;

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

/// One request through `service`, its body drained.
fn one_request<S, B>(service: &mut S, cx: &mut Context<'_>)
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
        panic!("the bench service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(cx) {}
}

fn server_layer(c: &mut Criterion) {
    let drain = install_tracing(HarnessOptions::default().sampling_ratio(1.0))
        .expect("harness installs once per bench process");
    common::spawn_batch_consumer(drain);
    let mut cx = Context::from_waker(Waker::noop());

    let mut bare = Bare;
    let mut traced = TraceServerLayer::new()
        .with_route(|_: &Request<()>| Some("/users/{id}"))
        .layer(Bare);

    // A route closure that allocates its route, as one reading axum's `MatchedPath` into a
    // `String` does.
    let mut traced_string_route = TraceServerLayer::new()
        .with_route(|_: &Request<()>| Some("/users/{id}".to_owned()))
        .layer(Bare);

    let mut group = c.benchmark_group("tower_server");
    group.bench_function("bare", |b| b.iter(|| one_request(&mut bare, &mut cx)));
    group.bench_function("traced", |b| b.iter(|| one_request(&mut traced, &mut cx)));
    group.bench_function("traced_string_route", |b| {
        b.iter(|| one_request(&mut traced_string_route, &mut cx))
    });
    group.finish();
}

criterion_group!(benches, server_layer);
criterion_main!(benches);
