//! The process-global internal harness: installation, ratio sampling, and a bounded queue
//! whose drops are counted exactly.
//!
//! Installation is once per process, so this binary installs once (in a `OnceLock`) and
//! every test here shares that harness; tests that need a different one live in their own
//! binary.

use foundations::telemetry::testing::{HarnessOptions, InstallError, SpanDrain, install_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};
use parking_lot::Mutex;
use std::sync::OnceLock;

const QUEUE: usize = 64;

fn drain() -> &'static Mutex<SpanDrain> {
    static DRAIN: OnceLock<Mutex<SpanDrain>> = OnceLock::new();
    DRAIN.get_or_init(|| {
        // Invalid options are refused before anything is installed.
        assert_eq!(
            install_tracing(HarnessOptions::default().sampling_ratio(1.5)).unwrap_err(),
            InstallError::InvalidSamplingRatio(1.5)
        );
        assert!(matches!(
            install_tracing(HarnessOptions::default().sampling_ratio(f64::NAN)),
            Err(InstallError::InvalidSamplingRatio(_))
        ));
        assert_eq!(
            install_tracing(HarnessOptions::default().max_queue_size(Some(0))).unwrap_err(),
            InstallError::ZeroQueueSize
        );
        let options = HarnessOptions::default()
            .sampling_ratio(0.25)
            .max_queue_size(Some(QUEUE));
        Mutex::new(install_tracing(options).expect("first install succeeds"))
    })
}

#[test]
fn installs_once_and_samples_by_ratio_and_counts_queue_drops() {
    let drain = drain().lock();
    assert_eq!(
        install_tracing(HarnessOptions::default()).unwrap_err(),
        InstallError::AlreadyInstalled
    );

    // Ratio 0.25 over 20k new roots lands within ±3 percentage points.
    let roots = 20_000;
    let mut sampled = 0;
    for _ in 0..roots {
        let root = tracing::start_trace("r", StartTraceOptions::default());
        if root.is_sampled() {
            sampled += 1;
            assert!(tracing::w3c_traceparent().unwrap().flags.is_sampled());
        } else {
            assert!(!tracing::w3c_traceparent().unwrap().flags.is_sampled());
        }
        drop(root);
        while drain.try_recv().is_some() {}
    }
    let ratio = sampled as f64 / roots as f64;
    assert!((0.22..=0.28).contains(&ratio), "sampled ratio {ratio}");

    // A sampled inbound parent is followed whatever the ratio says.
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    for _ in 0..100 {
        let root = tracing::start_trace(
            "continued",
            StartTraceOptions::default().continue_trace(inbound, None),
        );
        assert!(root.is_sampled());
    }
    while drain.try_recv().is_some() {}

    // Overflow: QUEUE + 36 finished spans without draining: exactly 36 dropped, all counted.
    let before = drain.stats();
    for _ in 0..QUEUE + 36 {
        drop(tracing::start_trace(
            "burst",
            StartTraceOptions::default().force_sampling(true),
        ));
    }
    let after = drain.stats();
    assert_eq!(after.queued - before.queued, QUEUE as u64);
    assert_eq!(after.dropped_queue_full - before.dropped_queue_full, 36);
    let mut received = 0;
    while let Some(span) = drain.try_recv() {
        assert_eq!(span.name(), "burst");
        received += 1;
    }
    assert_eq!(received, QUEUE);
}
