//! The internal pipeline over OTLP/gRPC against a scripted tonic receiver on TCP, gzip on:
//! `UNAVAILABLE` retried; `INVALID_ARGUMENT` final; `RESOURCE_EXHAUSTED` final without
//! `RetryInfo` and retried after its `retry_delay` with one; a receiver slower than the
//! deadline retried; a partial success counted and not retried; retries exhausted. Every
//! span ends in exactly one counter.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::{GrpcReply, GrpcSink, hex};
use std::time::Duration;
use tonic::Code;

fn send_trace(name: &'static str, spans: usize) -> String {
    let _root = tracing::start_trace(name, StartTraceOptions::default());
    for _ in 1..spans {
        let _child = tracing::span("child");
    }
    tracing::trace_id().unwrap().to_string()
}

fn status(code: Code, retry_delay: Option<Duration>) -> GrpcReply {
    GrpcReply::Status { code, retry_delay }
}

#[test]
fn grpc_statuses_are_retried_exactly_as_the_specification_says() {
    let sink = GrpcSink::start_tcp(|n| match n {
        0 => status(Code::Unavailable, None),
        2 => status(Code::InvalidArgument, None),
        3 => status(Code::ResourceExhausted, None),
        4 => status(Code::ResourceExhausted, Some(Duration::from_millis(1200))),
        6 => GrpcReply::Hang(Duration::from_secs(5)),
        8 => GrpcReply::Partial {
            rejected: 1,
            message: "1 span too old".into(),
        },
        9..=11 => status(Code::Unavailable, None),
        _ => GrpcReply::Ok,
    });
    let yaml = format!(
        "tracing:\n  service_name: grpc-test\n  flush_interval_ms: 20\n  \
         request_timeout_ms: 600\n  compression: gzip\n  retry:\n    max_attempts: 3\n    \
         initial_backoff_ms: 10\n    max_backoff_ms: 20\n  output:\n    otlp_grpc:\n      \
         endpoint: {}\n",
        sink.endpoint()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    let wait_calls = |n: usize| sink.wait_until(Duration::from_secs(20), |r| r.len() >= n);

    // 1) UNAVAILABLE, then OK: the same request twice, ids intact, metadata as configured.
    let trace_id = send_trace("retried", 3);
    wait_calls(2);
    let received = sink.received();
    assert_eq!(received[0].request, received[1].request, "same request");
    let spans = received[1].spans();
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| hex(&s.trace_id) == trace_id));
    let root = spans.iter().find(|s| s.name == "retried").unwrap();
    assert!(root.parent_span_id.is_empty());
    assert!(
        spans
            .iter()
            .filter(|s| s.name == "child")
            .all(|s| s.parent_span_id == root.span_id)
    );
    let resource = received[1].request.resource_spans[0].resource.as_ref();
    assert_eq!(resource.unwrap().attributes[0].key, "service.name");
    assert_eq!(received[1].encoding.as_deref(), Some("gzip"));
    assert!(received[1].timeout.is_some(), "grpc-timeout sent");
    let user_agent = received[1].user_agent.clone().unwrap_or_default();
    assert!(user_agent.starts_with("foundations/"), "{user_agent}");
    // The receiver records a call before the exporter has read its answer: wait for it.
    let stats = settled(|stats| stats.spans_exported == 3);
    assert_eq!((stats.spans_exported, stats.retries), (3, 1));

    // 2) INVALID_ARGUMENT: final. 3) RESOURCE_EXHAUSTED without RetryInfo: final.
    send_trace("invalid", 2);
    wait_calls(3);
    send_trace("exhausted_no_info", 2);
    wait_calls(4);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.received().len(), 4, "final codes are never retried");
    assert_eq!(
        telemetry::internal_exporter_stats()
            .unwrap()
            .dropped_rejected,
        4
    );

    // 4) RESOURCE_EXHAUSTED with RetryInfo 1.2 s: retried after that delay, not the backoff.
    send_trace("throttled", 2);
    wait_calls(6);
    let received = sink.received();
    let waited = received[5].at - received[4].at;
    assert!(
        waited >= Duration::from_millis(1150),
        "RetryInfo honoured: {waited:?}"
    );

    // 5) A receiver slower than the 600 ms deadline: abandoned at the deadline, retried.
    send_trace("slow", 2);
    wait_calls(8);
    let received = sink.received();
    let waited = received[7].at - received[6].at;
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(3),
        "deadline, then retry: {waited:?}"
    );

    // 6) Partial success: 1 of 3 rejected, not retried.
    send_trace("partial", 3);
    wait_calls(9);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink.received().len(),
        9,
        "a partial success is never retried"
    );

    // 7) UNAVAILABLE three times: retries exhausted (max_attempts 3).
    send_trace("gave_up", 1);
    wait_calls(12);

    let report = driver.shutdown(Duration::from_secs(10));
    assert!(report.flushed);
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_queued, 15, "{stats:?}");
    assert_eq!(stats.spans_exported, 3 + 2 + 2 + 2, "{stats:?}");
    assert_eq!(stats.dropped_rejected, 2 + 2 + 1, "{stats:?}");
    assert_eq!(stats.dropped_retries_exhausted, 1, "{stats:?}");
    assert_eq!(stats.spans_exported + stats.dropped(), stats.spans_queued);
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.requests, 12, "{stats:?}");
    assert_eq!(stats.retries, 1 + 1 + 1 + 2, "{stats:?}");
    assert_eq!(sink.received().len(), 12);
}

/// The internal exporter's counters once `done` says they settled, or after 10 s.
fn settled(done: impl Fn(&telemetry::ExporterStats) -> bool) -> telemetry::ExporterStats {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = telemetry::internal_exporter_stats().unwrap();
        if done(&stats) || std::time::Instant::now() > until {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
