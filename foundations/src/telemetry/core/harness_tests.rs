//! Unit tests of harnesses and their queues: bounds, wake-ups, sampling policies.

use super::super::entry_span::EntrySpan;
use super::super::pipeline::Internal;
use super::super::queue::QueueStats;
use super::super::rate_limit::Clock;
use super::*;
use crate::telemetry::core::limits::SpanLimits;
use crate::telemetry::propagation::ids::TraceFlags;
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
        drop(EntrySpan::start_untracked_root::<Internal>(
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
            roots_rate_limited: 0,
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

#[test]
fn a_thread_whose_ring_fills_goes_on_in_one_twice_its_size_within_the_bound() {
    // Room for rings of 512, 1024 and 2048 spans, and 600 more.
    let (queue, drain) = SpanDrain::new(Some(512 + 1024 + 2048 + 600));
    let harness = Arc::new(Harness::with_sink(
        RootSampling::Always,
        Sink::Queue(Arc::clone(&queue)),
        SpanLimits::default(),
    ));
    let producer = Arc::clone(&harness);
    std::thread::spawn(move || finish_spans(&producer, 512 + 1024 + 2048 + 512))
        .join()
        .unwrap();
    // The fourth ring would be 4096 spans; the bound leaves room for a first ring's 512.
    assert_eq!(queue.ring_capacities(), [512, 1024, 2048, 512]);
    // No room for a fifth ring: the next span of a new thread takes the shared queue.
    let producer = Arc::clone(&harness);
    std::thread::spawn(move || finish_spans(&producer, 1))
        .join()
        .unwrap();
    assert_eq!(queue.ring_capacities(), [512, 1024, 2048, 512]);
    assert_eq!(drain.len(), 4097);
    assert_eq!(drain.stats().dropped_queue_full, 0);
    // Drained, the rings of exited threads are gone and their room is back.
    assert_eq!(drain.drain_into(&mut Vec::new(), usize::MAX), 4097);
    assert_eq!(queue.ring_capacities(), [] as [usize; 0]);
    let producer = Arc::clone(&harness);
    std::thread::spawn(move || finish_spans(&producer, 512 + 1024 + 1))
        .join()
        .unwrap();
    assert_eq!(queue.ring_capacities(), [512, 1024, 2048]);
}

#[test]
fn a_thread_that_woke_a_consumer_recently_defers_the_next_wake_to_half_its_ring() {
    use super::super::queue::{BATCH_WAKE_SPACING, wake_or_defer};
    let recently = Some(BATCH_WAKE_SPACING / 2);
    let long_ago = Some(BATCH_WAKE_SPACING * 2);
    // A batch ready wakes a consumer, unless this thread woke one a moment ago.
    assert_eq!(wake_or_defer(false, 512, 4096, None), None);
    assert_eq!(wake_or_defer(false, 512, 4096, long_ago), None);
    assert_eq!(wake_or_defer(false, 512, 4096, recently), Some(2048));
    // Half the ring is a backlog: woken however recently.
    assert_eq!(wake_or_defer(false, 2048, 4096, recently), None);
    assert_eq!(wake_or_defer(false, 3000, 4096, recently), None);
    // A ring that filled always wakes, and so does one too small to defer in.
    assert_eq!(wake_or_defer(true, 1, 1024, recently), None);
    assert_eq!(wake_or_defer(false, 512, 1024, recently), None);
    assert_eq!(wake_or_defer(false, 512, 0, recently), None);
}

/// A thread that woke the consumer a moment ago does not wake it for its next batch, but
/// at half its ring; every span is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_thread_wakes_the_consumer_at_half_its_ring_not_per_batch() {
    use super::super::queue::pretend_this_thread_just_woke_a_consumer;
    let (harness, drain) = harness(None);
    let (go, orders) = std::sync::mpsc::channel::<usize>();
    // One thread throughout: its rings grow as they fill. A count of 0 marks it busy.
    let producer = std::thread::spawn(move || {
        for count in orders {
            if count == 0 {
                pretend_this_thread_just_woke_a_consumer();
            }
            finish_spans(&harness, count);
        }
    });
    // Rings of 512, 1024 and 2048 spans, then one of 4096 that holds 1000.
    let grown = 512 + 1024 + 2048 + 1000;
    go.send(grown).unwrap();
    while drain.len() < grown {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut batch = Vec::new();
    while drain.drain_into(&mut batch, usize::MAX) > 0 {}
    batch.clear();
    go.send(0).unwrap();

    // A batch and a bit: not worth a wake-up from a busy thread. The consumer waits
    // first (the orders come 200 ms later), and returns at its deadline.
    let wait = Duration::from_millis(1000);
    let started = Instant::now();
    let send_later = |count| {
        let go = go.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            go.send(count).unwrap();
        })
    };
    let order = send_later(600);
    let taken = drain.recv_batch(&mut batch, 512, wait).await;
    order.join().unwrap();
    assert_eq!(taken, 512);
    assert!(started.elapsed() >= wait, "not woken by a batch");

    // 88 left: half the ring (2048) wakes it at once.
    let started = Instant::now();
    let order = send_later(2048 - 88);
    let taken = drain
        .recv_batch(&mut batch, 512, Duration::from_secs(30))
        .await;
    order.join().unwrap();
    assert_eq!(taken, 512);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken at half the ring"
    );
    drop(go);
    producer.join().unwrap();
    while drain.drain_into(&mut batch, usize::MAX) > 0 {}
    assert_eq!(batch.len(), 600 + 2048 - 88, "every span is taken");
    assert_eq!(drain.stats().dropped_queue_full, 0);
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
            EntrySpan::start_untracked_root::<Internal>(
                HarnessRef::Owned(Arc::clone(&harness)),
                "r".into(),
                options,
            )
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
        let plan = harness.plan_root::<Internal>(RootOptions {
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

#[test]
fn roots_past_the_rate_start_unsampled_with_their_children_and_are_counted() {
    let (queue, drain) = SpanDrain::new(None);
    let now = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let limiter = RootRateLimiter::with_clock(5, Clock::Manual(Arc::clone(&now)));
    let harness = Arc::new(
        Harness::with_sink(
            RootSampling::Ratio(1.0),
            Sink::Queue(queue),
            SpanLimits::default(),
        )
        .with_rate_limit(Some(limiter)),
    );
    let start = |options: RootOptions| {
        let root = EntrySpan::start_untracked_root::<Internal>(
            HarnessRef::Owned(Arc::clone(&harness)),
            "r".into(),
            options,
        );
        let child = root.child("c".into());
        assert_eq!(
            root.is_recording(),
            child.is_recording(),
            "children follow the root"
        );
        root.is_recording()
    };
    let recorded = (0..8).filter(|_| start(RootOptions::default())).count();
    assert_eq!(recorded, 5);

    // A continued trace whose inbound flag says sampled is limited too.
    let sampled: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let continued = RootOptions {
        inbound: Some((sampled, None)),
        ..RootOptions::default()
    };
    assert!(!start(continued));
    // An unsampled one is not counted: sampling, not the limit, decided it.
    let unsampled = RootOptions {
        inbound: Some((
            TraceparentContext::new(sampled.trace_id, sampled.parent_id, TraceFlags::RANDOM),
            None,
        )),
        ..RootOptions::default()
    };
    assert!(!start(unsampled));
    // Forcing is the application's explicit decision: not limited, not counted.
    let forced = RootOptions {
        force_sampling: Some(true),
        ..RootOptions::default()
    };
    assert!(start(forced));

    let stats = drain.stats();
    assert_eq!(stats.roots_rate_limited, 4);
    // Refused roots produced nothing: only the six recorded roots and their children.
    assert_eq!(stats.queued, 12);

    now.store(1_000_000_000, std::sync::atomic::Ordering::Relaxed);
    assert!(start(RootOptions::default()), "the bucket refills");
}

#[test]
fn install_refuses_a_rate_limit_out_of_bounds() {
    for rate in [0, 10_000_001] {
        let options = HarnessOptions::default().max_roots_per_second(Some(rate));
        assert_eq!(
            check::<crate::telemetry::core::pipeline::User>(&options),
            Err(InstallError::InvalidRateLimit(rate))
        );
    }
}
