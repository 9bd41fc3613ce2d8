//! What `#[span_fn]` costs on an `async fn`, against the same function written by hand with
//! `span(..).into_context().apply(..)`, and what `user = true` adds when no user trace is
//! active.
//!
//! Run: `cargo bench -p foundations --features user-tracing --bench span_fn`.
//!
//! The internal harness is installed (default options: every trace sampled) and drained by a
//! consumer thread. Each iteration builds the future and polls it to completion on this
//! thread with a no-op waker; the body suspends once, so the span's context is entered on
//! two polls. Two settings: a recorded root span per call (no trace current), and a child of
//! an unsampled trace (nothing recorded: the wrapper's own cost stands out most).

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use foundations::span_fn;
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};
use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

/// Pending on the first poll, ready on the second.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Polls `future` to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// The hand-written equivalent of `#[span_fn("bench_fn")]`: the span opens on first poll.
async fn hand_written(x: u64) -> u64 {
    tracing::span("bench_fn")
        .into_context()
        .apply(async move {
            YieldOnce(false).await;
            black_box(x) + 1
        })
        .await
}

/// Hand-written, with the span opened at call time instead.
fn hand_written_eager(x: u64) -> impl Future<Output = u64> {
    tracing::span("bench_fn").into_context().apply(async move {
        YieldOnce(false).await;
        black_box(x) + 1
    })
}

#[span_fn("bench_fn")]
async fn with_span_fn(x: u64) -> u64 {
    YieldOnce(false).await;
    black_box(x) + 1
}

#[span_fn("bench_fn", user = true)]
async fn with_span_fn_user(x: u64) -> u64 {
    YieldOnce(false).await;
    black_box(x) + 1
}

fn bench_variants(c: &mut Criterion, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    group.bench_function("hand_written", |b| {
        b.iter(|| block_on(hand_written(black_box(1))))
    });
    group.bench_function("hand_written_eager", |b| {
        b.iter(|| block_on(hand_written_eager(black_box(1))))
    });
    group.bench_function("span_fn", |b| {
        b.iter(|| block_on(with_span_fn(black_box(1))))
    });
    group.bench_function("span_fn_user_no_user_trace", |b| {
        b.iter(|| block_on(with_span_fn_user(black_box(1))))
    });
    group.finish();
}

fn span_fn_overhead(c: &mut Criterion) {
    let drain = install_tracing(HarnessOptions::default()).expect("installed once");
    common::spawn_batch_consumer(drain);

    bench_variants(c, "span_fn_recorded_root");

    let unsampled = StartTraceOptions::default().force_sampling(false);
    let _root = tracing::start_trace("unsampled_root", unsampled);
    bench_variants(c, "span_fn_unsampled_child");
}

criterion_group!(benches, span_fn_overhead);
criterion_main!(benches);
