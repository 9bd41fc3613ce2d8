//! The root-creation rate limit end to end, both pipelines exporting to real receivers: roots
//! past the rate start unsampled as whole traces, are counted in the exporter stats, and
//! never reach the receivers; the balance holds without them.

use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::{self, user_tracing};
use foundations_tests::{OtlpSink, Tenant};
use std::time::Duration;

/// Roots in a burst. The limit is 5 per second, one token every 200 ms: a burst that takes
/// less than that admits exactly the bucket (5); a stall of the machine may admit one or two
/// more, never fewer.
const BURST: usize = 30;

#[test]
fn roots_past_the_rate_are_unsampled_whole_and_counted_on_both_pipelines() {
    let internal_sink = OtlpSink::start_tcp();
    let user_sink = OtlpSink::start();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  rate_limit:\n    enabled: true\n    \
         max_roots_per_second: 5\n  output:\n    otlp_http:\n      endpoint: http://{}\n\
         user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n  rate_limit:\n    \
         enabled: true\n    max_roots_per_second: 3\n",
        internal_sink.addr().unwrap(),
        user_sink.path().display(),
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let mut recorded = 0;
    for _ in 0..BURST {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let sampled = tracing::span_is_sampled();
        let _child = tracing::span("child");
        // Descendants follow their root, and the outbound flag says what happened.
        assert_eq!(tracing::span_is_sampled(), sampled);
        let flags = tracing::w3c_traceparent().unwrap().to_string();
        assert_eq!(flags.ends_with("-03"), sampled, "{flags}");
        recorded += usize::from(sampled);
    }
    assert!((5..=7).contains(&recorded), "{recorded} roots recorded");

    // Past the rate, an inbound sampled flag does not bypass the limit (documented), and
    // `force_sampling` does.
    let inbound = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let continued = StartTraceOptions::default().continue_from_headers(Some(inbound), None);
    let limited_continued = {
        let _root = tracing::start_trace("continued", continued);
        !tracing::span_is_sampled()
    };
    {
        let _root =
            tracing::start_trace("forced", StartTraceOptions::default().force_sampling(true));
        assert!(tracing::span_is_sampled());
    }

    let mut user_recorded = 0;
    for i in 0..BURST {
        let _root = user_tracing::start_user_trace("user_root", Tenant::new(i), None);
        let _child = user_tracing::user_span("user_child");
        let sampled = user_tracing::w3c_traceparent().unwrap().flags.is_sampled();
        user_recorded += usize::from(sampled);
    }
    assert!(
        (3..=5).contains(&user_recorded),
        "{user_recorded} user roots"
    );

    let report = driver.shutdown(Duration::from_secs(10));
    assert!(report.flushed);
    let internal = report.internal.unwrap();
    let internal_limited = BURST - recorded + usize::from(limited_continued);
    assert_eq!(
        internal.roots_rate_limited, internal_limited as u64,
        "{internal:?}"
    );
    // Recorded roots with their children, and the forced root: nothing else was produced.
    let internal_spans = 2 * recorded + 1 + usize::from(!limited_continued);
    assert_eq!(internal.produced(), internal_spans as u64, "{internal:?}");
    assert_eq!(
        internal.produced(),
        internal.spans_exported + internal.dropped() + internal.pending()
    );
    assert_eq!(internal.spans_exported, internal_spans as u64);
    assert_eq!(internal_sink.span_count(), internal_spans);

    let user = report.user.unwrap();
    assert_eq!(user.roots_rate_limited, (BURST - user_recorded) as u64);
    assert_eq!(user.produced(), 2 * user_recorded as u64);
    assert_eq!(
        user.produced(),
        user.spans_exported + user.dropped() + user.pending()
    );
    assert_eq!(user_sink.span_count(), 2 * user_recorded);
}
