//! Unit tests of harnesses and their queues: bounds, wake-ups, sampling policies.

use super::super::queue::QueueStats;
use super::super::span::EntrySpan;
use super::*;
use crate::telemetry::core::limits::SpanLimits;
use std::time::{Duration, Instant};

fn harness(max_len: Option<usize>) -> (Arc<Harness>, SpanDrain) {
    let (queue, drain) = SpanDrain::new(max_len);
    let harness = Harness::with_sink(
        RootSampling::Always,
        Sink::Queue(queue),
        SpanLimits::default(),
    );
    (Arc::new(harness), drain)
}

fn finish_spans(harness: &Arc<Harness>, count: usize) {
    for _ in 0..count {
        let harness = HarnessRef::Owned(Arc::clone(harness));
        drop(EntrySpan::start_root(
            harness,
            "s".into(),
            RootOptions::default(),
        ));
    }
}

#[test]
fn full_queue_drops_and_counts_every_extra_span() {
    let (harness, drain) = harness(Some(10));
    finish_spans(&harness, 25);
    assert_eq!(drain.len(), 10);
    assert_eq!(
        drain.stats(),
        QueueStats {
            queued: 10,
            dropped_queue_full: 15,
            dropped_after_close: 0,
            dropped_callback_panicked: 0,
        }
    );
    let mut batch = Vec::new();
    assert_eq!(drain.drain_into(&mut batch, 100), 10);
    // Room again after draining.
    finish_spans(&harness, 1);
    assert_eq!(drain.len(), 1);
    // Closed: what comes after is counted, never queued; what was queued can still leave.
    drain.close();
    finish_spans(&harness, 3);
    assert_eq!(drain.len(), 1);
    assert_eq!(drain.stats().dropped_after_close, 3);
    assert_eq!(drain.stats().dropped_queue_full, 15);
    assert!(drain.try_recv().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_batch_wakes_when_the_batch_is_full() {
    let (harness, drain) = harness(None);
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        finish_spans(&harness, 64);
    });
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut received = 0;
    while received < 64 {
        received += drain
            .recv_batch(&mut batch, 64, Duration::from_secs(30))
            .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the batch, not the timeout"
    );
    assert_eq!(batch.len(), 64);
    producer.join().unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recv_batch_returns_a_partial_batch_after_max_wait() {
    let (harness, drain) = harness(None);
    finish_spans(&harness, 3);
    let mut batch = Vec::new();
    let received = drain
        .recv_batch(&mut batch, 512, Duration::from_millis(200))
        .await;
    assert_eq!(received, 3);
    let received = drain
        .recv_batch(&mut batch, 512, Duration::from_millis(200))
        .await;
    assert_eq!(received, 0, "an empty queue times out with nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_waits_for_a_single_span() {
    let (harness, drain) = harness(None);
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        finish_spans(&harness, 1);
    });
    let span = tokio::time::timeout(Duration::from_secs(30), drain.recv())
        .await
        .expect("woken by the span");
    assert_eq!(span.name(), "s");
    producer.join().unwrap();
}

use crate::telemetry::propagation::traceparent::TraceparentContext;

fn sampled_share(sampling: RootSampling, inbound: Option<&str>) -> f64 {
    let (queue, _drain) = SpanDrain::new(None);
    let harness = Arc::new(Harness::with_sink(
        sampling,
        Sink::Queue(queue),
        SpanLimits::default(),
    ));
    let runs = 4_000;
    let sampled = (0..runs)
        .filter(|_| {
            let options = RootOptions {
                inbound: inbound.map(|tp| (tp.parse::<TraceparentContext>().unwrap(), None)),
                ..Default::default()
            };
            EntrySpan::start_root(HarnessRef::Owned(Arc::clone(&harness)), "r".into(), options)
                .state()
                .flags()
                .is_sampled()
        })
        .count();
    sampled as f64 / runs as f64
}

#[test]
fn parent_based_follows_the_inbound_flag_and_ratio_ignoring_parent_does_not() {
    let sampled_inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let unsampled_inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_eq!(
        sampled_share(RootSampling::Ratio(0.0), Some(sampled_inbound)),
        1.0
    );
    assert_eq!(
        sampled_share(RootSampling::Ratio(1.0), Some(unsampled_inbound)),
        0.0
    );
    assert_eq!(
        sampled_share(
            RootSampling::RatioIgnoringParent(0.0),
            Some(sampled_inbound)
        ),
        0.0
    );
    assert_eq!(
        sampled_share(
            RootSampling::RatioIgnoringParent(1.0),
            Some(unsampled_inbound)
        ),
        1.0
    );
    let half = sampled_share(
        RootSampling::RatioIgnoringParent(0.5),
        Some(sampled_inbound),
    );
    assert!((0.45..=0.55).contains(&half), "{half}");
}

#[test]
fn an_unsampled_continued_root_has_its_own_span_id_and_keeps_the_flags() {
    let (queue, _drain) = SpanDrain::new(None);
    let harness = HarnessRef::Owned(Arc::new(Harness::with_sink(
        RootSampling::Ratio(1.0),
        Sink::Queue(queue),
        SpanLimits::default(),
    )));
    for (inbound, flags) in [
        // Random trace id, not sampled: the W3C suite's case.
        (
            "00-12345678901234567890123456789012-1234567890123456-02",
            "02",
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-00",
            "00",
        ),
        // Unknown bits are not forwarded; sampled and random are.
        (
            "00-12345678901234567890123456789012-1234567890123456-fe",
            "02",
        ),
    ] {
        let inbound: TraceparentContext = inbound.parse().unwrap();
        let plan = harness.plan_root(RootOptions {
            inbound: Some((inbound, None)),
            ..Default::default()
        });
        let RootPlan::Unsampled(state) = plan else {
            panic!("parent-based: an unsampled inbound is not recorded");
        };
        assert_eq!(state.trace_id(), inbound.trace_id);
        assert_ne!(state.span_id(), inbound.parent_id, "its own span id");
        let outbound = state.traceparent().to_string();
        assert!(outbound.ends_with(&format!("-{flags}")), "{outbound}");
        assert!(!state.is_remote());
    }
}
