//! The main demo, end to end, asserting on what the trace sinks received.

use foundations_examples::demo::{INBOUND_TRACEPARENT, run_demo};
use hyper::StatusCode;

#[test]
fn the_demo_delivers_routed_user_traces_and_internal_traces() {
    let mut output = Vec::new();
    let report = run_demo(&mut output).expect("the demo runs");
    let output = String::from_utf8(output).unwrap();

    assert_eq!(
        report.statuses,
        [
            ("/users/42", StatusCode::OK),
            ("/orders", StatusCode::OK),
            ("/fail/checkout", StatusCode::BAD_GATEWAY),
            ("/health", StatusCode::OK),
        ]
    );

    // User pipeline: one trace per tenant request, each under its own routing only.
    assert_eq!(report.user_traces.len(), 3);
    for trace in &report.user_traces {
        assert_eq!(
            trace.routings().len(),
            1,
            "one routing per trace: {:?}",
            trace.routings()
        );
        for span in &trace.spans {
            assert!(span.routing.is_some());
            assert_ne!(span.kind, "client", "internal-only spans stay internal");
        }
    }
    let by_root = |name: &str| {
        report
            .user_traces
            .iter()
            .find(|t| t.span(name).is_some())
            .unwrap_or_else(|| panic!("no user trace with {name}"))
    };
    assert_eq!(by_root("GET /users/{id}").routing(), Some("tenant=acme"));
    assert_eq!(by_root("GET /fail/checkout").routing(), Some("tenant=acme"));
    let globex = by_root("GET /orders");
    assert_eq!(globex.routing(), Some("tenant=globex"));
    assert_eq!(
        globex.trace_id,
        &INBOUND_TRACEPARENT[3..35],
        "inbound trace id kept"
    );
    let root = globex.span("GET /orders").unwrap();
    assert_eq!(root.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    for name in ["load_profile", "call_backend", "render_page"] {
        assert_eq!(
            globex.span(name).unwrap().parent_span_id.as_deref(),
            Some(root.span_id.as_str()),
            "{name} is a child of the root"
        );
    }
    assert!(
        by_root("GET /fail/checkout")
            .span("GET /fail/checkout")
            .unwrap()
            .status
            .is_error()
    );

    // Internal pipeline: every request, with server and client spans, no routing.
    assert_eq!(report.internal_traces.len(), 4);
    for trace in &report.internal_traces {
        assert!(trace.routings().is_empty());
        let server = trace
            .spans
            .iter()
            .find(|s| s.kind == "server")
            .expect("a server span");
        assert!(server.name.starts_with("GET /"));
        let client = trace.span("GET").expect("a client span");
        assert_eq!(client.kind, "client");
    }
    let internal_globex = report
        .internal_traces
        .iter()
        .find(|t| t.span("GET /orders").is_some())
        .unwrap();
    assert_eq!(internal_globex.trace_id, &INBOUND_TRACEPARENT[3..35]);

    let user = report.user_stats.unwrap();
    let internal = report.internal_stats.unwrap();
    assert_eq!(user.dropped() + internal.dropped(), 0);
    assert_eq!(user.spans_exported, 11);
    assert_eq!(internal.spans_exported, 19);

    assert!(output.contains("routing=tenant=globex"), "{output}");
    assert!(
        output.contains("(continued from 00f067aa0ba902b7)"),
        "{output}"
    );
}
