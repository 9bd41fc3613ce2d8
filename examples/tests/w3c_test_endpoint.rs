//! The service's `POST /test` endpoint against a local harness in the shape of the W3C
//! trace-context test suite: the harness posts a list of callbacks and records the headers
//! each callback arrives with.

use bytes::Bytes;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations_examples::service::{self, Service};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};

type Recorded = Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>;

async fn post_test(
    service: std::net::SocketAddr,
    callback: std::net::SocketAddr,
    headers: &[(&str, &str)],
    callbacks: usize,
) {
    let items: Vec<_> = (0..callbacks)
        .map(|i| serde_json::json!({ "url": format!("http://{callback}/callback"), "arguments": [i] }))
        .collect();
    let mut request = Request::post(format!("http://{service}/test"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(
            serde_json::Value::Array(items).to_string(),
        )))
        .unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    assert!(response.status().is_success());
}

fn parse(traceparent: &str) -> (String, String) {
    let parts: Vec<_> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_test_endpoint_follows_the_w3c_rules() {
    // Spans are recorded (so propagation works) and discarded: output `none`.
    let _driver = telemetry::init(&TelemetrySettings::default()).unwrap();

    let recorded: Recorded = Arc::default();
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback_addr = callback.local_addr().unwrap();
    let sink = Arc::clone(&recorded);
    tokio::spawn(service::serve(
        callback,
        move |request: Request<hyper::body::Incoming>| {
            let sink = Arc::clone(&sink);
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let json = serde_json::from_slice(&body).unwrap_or_default();
                sink.lock().unwrap().push((parts.headers, json));
                Response::new(Full::new(Bytes::new()))
            }
        },
    ));
    let service_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service_listener.local_addr().unwrap();
    let app = Service::new(callback_addr);
    tokio::spawn(service::serve(service_listener, move |request| {
        Service::handle(app.clone(), request)
    }));
    let take = || std::mem::take(&mut *recorded.lock().unwrap());

    // A valid traceparent: same trace id, a new parent id, distinct per callback; tracestate
    // carried.
    let inbound = "00-12345678901234567890123456789012-1234567890123456-01";
    post_test(
        service_addr,
        callback_addr,
        &[("traceparent", inbound), ("tracestate", "foo=1,bar=2")],
        3,
    )
    .await;
    let calls = take();
    assert_eq!(calls.len(), 3);
    let mut parents = std::collections::HashSet::new();
    for (headers, body) in &calls {
        let traceparent = headers["traceparent"].to_str().unwrap();
        let (trace_id, parent_id) = parse(traceparent);
        assert_eq!(trace_id, "12345678901234567890123456789012");
        assert_ne!(parent_id, "1234567890123456");
        assert!(
            traceparent.ends_with("-01"),
            "sampled flag kept: {traceparent}"
        );
        parents.insert(parent_id);
        assert_eq!(headers["tracestate"], "foo=1,bar=2");
        assert!(body.is_array(), "arguments are posted as JSON");
    }
    assert_eq!(parents.len(), 3, "a distinct parent id per callback");

    // An invalid traceparent (uppercase): a new trace; its tracestate is ignored.
    let invalid = "00-12345678901234567890123456789ABC-1234567890123456-01";
    post_test(
        service_addr,
        callback_addr,
        &[("traceparent", invalid), ("tracestate", "foo=1")],
        2,
    )
    .await;
    let calls = take();
    assert_eq!(calls.len(), 2);
    let trace_ids: std::collections::HashSet<_> = calls
        .iter()
        .map(|(h, _)| parse(h["traceparent"].to_str().unwrap()).0)
        .collect();
    assert_eq!(trace_ids.len(), 1, "both callbacks in one new trace");
    assert!(!trace_ids.contains("12345678901234567890123456789abc"));
    assert!(calls.iter().all(|(h, _)| !h.contains_key("tracestate")));

    // Two traceparent headers: invalid, so a new trace as well.
    post_test(
        service_addr,
        callback_addr,
        &[("traceparent", inbound), ("traceparent", inbound)],
        1,
    )
    .await;
    let calls = take();
    let (trace_id, _) = parse(calls[0].0["traceparent"].to_str().unwrap());
    assert_ne!(trace_id, "12345678901234567890123456789012");

    // A higher version with extra fields is continued (and re-emitted as version 00).
    let future = "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-holds";
    post_test(service_addr, callback_addr, &[("traceparent", future)], 1).await;
    let calls = take();
    let traceparent = calls[0].0["traceparent"].to_str().unwrap().to_owned();
    assert!(
        traceparent.starts_with("00-12345678901234567890123456789012-"),
        "{traceparent}"
    );

    // Unsampled, random trace id (Level 2): the service took part, so it names its own span
    // (a new parent id, distinct per callback) and keeps the flags as received.
    let unsampled = "00-12345678901234567890123456789012-1234567890123456-02";
    post_test(
        service_addr,
        callback_addr,
        &[("traceparent", unsampled)],
        2,
    )
    .await;
    let calls = take();
    assert_eq!(calls.len(), 2);
    let mut parents = std::collections::HashSet::new();
    for (headers, _) in &calls {
        let traceparent = headers["traceparent"].to_str().unwrap();
        let (trace_id, parent_id) = parse(traceparent);
        assert_eq!(trace_id, "12345678901234567890123456789012");
        assert_ne!(parent_id, "1234567890123456", "{traceparent}");
        assert!(traceparent.ends_with("-02"), "flags kept: {traceparent}");
        parents.insert(parent_id);
    }
    assert_eq!(parents.len(), 2, "a distinct parent id per callback");

    // A tracestate with a duplicated key is inherited, not dropped: the first member of
    // each key is kept, with every other member.
    for (inbound_state, expected) in [
        ("foo=1,foo=1", "foo=1"),
        ("foo=1,foo=2", "foo=1"),
        ("foo=1,bar=2,foo=3", "foo=1,bar=2"),
    ] {
        post_test(
            service_addr,
            callback_addr,
            &[("traceparent", inbound), ("tracestate", inbound_state)],
            1,
        )
        .await;
        let calls = take();
        assert_eq!(calls[0].0["tracestate"], expected, "{inbound_state}");
    }
}
