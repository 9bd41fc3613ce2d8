//! Encoding and gzip never delay the other pipeline's timers: each pipeline exports from a
//! thread of its own. While the internal pipeline encodes and gzips a batch of tens of MiB
//! for a slow receiver, user spans keep leaving on their short flush interval.

use foundations::add_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Reply, Tenant};
use std::time::{Duration, Instant};

/// Text gzip cannot shrink much: it has to work through all of it.
fn noise(len: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b' ' + (state % 94) as u8)
        })
        .collect()
}

#[test]
fn a_huge_gzipped_batch_of_one_pipeline_does_not_delay_the_other() {
    const RECEIVER_DELAY: Duration = Duration::from_secs(1);
    const BIG_SPANS: usize = 4;
    const TAGS: usize = 128;
    const VALUE: usize = 64 * 1024;
    let internal_sink = OtlpSink::with_policy(|_| Reply::Delay(RECEIVER_DELAY));
    let user_sink = OtlpSink::start();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  compression: gzip\n  request_timeout_ms: 120000\n  \
         output:\n    otlp_http:\n      endpoint: unix://{}\n\
         user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n",
        internal_sink.path().display(),
        user_sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    // 4 spans x 128 tags x 64 KiB: 32 MiB for the internal exporter to encode and gzip.
    let value = noise(VALUE);
    let started = Instant::now();
    for _ in 0..BIG_SPANS {
        let _big = tracing::start_trace("big", StartTraceOptions::default());
        for i in 0..TAGS {
            add_span_tags!(format!("blob.{i}") => value.clone());
        }
    }

    // User spans, one at a time, each timed from its end to its arrival, until the big
    // batch has arrived (its encoding and gzip are over) and a few more.
    let mut timed = Vec::new();
    for i in 0.. {
        let name = format!("user.{i}");
        let ended = {
            let _span = user_tracing::start_user_trace(name.clone(), Tenant::new("t"), None);
            Instant::now()
        };
        let has_it = |received: &[foundations_tests::Received]| {
            received
                .iter()
                .find(|request| request.spans().iter().any(|span| span.name == name))
                .map(|request| request.at)
        };
        user_sink.wait_until(Duration::from_secs(30), |received| {
            has_it(received).is_some()
        });
        let arrived = has_it(&user_sink.received()).unwrap();
        timed.push((ended, arrived.saturating_duration_since(ended)));
        // `received` (not the request count, bumped before the request is recorded).
        let big_arrived = !internal_sink.received().is_empty();
        if big_arrived && i >= 5 || started.elapsed() > Duration::from_secs(90) {
            break;
        }
    }
    let big_arrived = internal_sink
        .received()
        .first()
        .expect("the big batch arrived within 90 s")
        .at;
    let encoding = big_arrived.saturating_duration_since(started);
    let during: Vec<Duration> = timed
        .iter()
        .filter(|(ended, _)| *ended < big_arrived)
        .map(|(_, latency)| *latency)
        .collect();
    let worst = timed.iter().map(|(_, latency)| *latency).max().unwrap();
    eprintln!(
        "internal batch encoded, gzipped and sent in {encoding:?}; {} user spans exported \
         meanwhile, the slowest in {worst:?}",
        during.len()
    );
    // Generous bounds, not timing-fragile: a user span takes its 20 ms flush interval plus
    // scheduling, whatever the other pipeline does.
    assert!(
        during.len() >= 3,
        "user spans were timed while the batch was encoded: {during:?}"
    );
    assert!(
        worst < Duration::from_secs(1),
        "user export delayed: {timed:?}"
    );

    let report = driver.shutdown(Duration::from_secs(30));
    let (internal, user) = (report.internal.unwrap(), report.user.unwrap());
    assert_eq!(internal.spans_exported, BIG_SPANS as u64, "{internal:?}");
    assert_eq!(
        internal.produced(),
        internal.spans_exported + internal.dropped()
    );
    assert_eq!(user.spans_exported, timed.len() as u64, "{user:?}");
    assert_eq!(user.produced(), user.spans_exported + user.dropped());
    assert!(internal.bytes_sent > 0);
}
