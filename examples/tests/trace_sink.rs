//! The trace-sink over a real Unix socket: requests are sent with a hyper HTTP/1.1 client
//! over `tokio::net::UnixStream`, bodies built with `opentelemetry-proto` and prost.

use bytes::Bytes;
use foundations_examples::trace_sink::{SinkOptions, SpanStatus, TraceSink};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRACE_A: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const TRACE_B: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x1e, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];
const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn span(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    name: &str,
    start_ms: u64,
    end_ms: u64,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent
            .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
            .unwrap_or_default(),
        name: name.to_owned(),
        kind: 1,
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        flags: 0x101,
        ..Span::default()
    }
}

fn export(service: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// A request in trace A: a server root with a failing child and a grandchild.
fn checkout_request() -> Vec<u8> {
    let mut root = span(TRACE_A, 1, None, "GET /checkout", 0, 100);
    root.kind = 2;
    root.attributes = vec![
        string("http.request.method", "GET"),
        KeyValue {
            key: "http.response.status_code".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(500)),
            }),
            ..KeyValue::default()
        },
    ];
    let mut payment = span(TRACE_A, 2, Some(1), "charge card", 20, 80);
    payment.status = Some(Status {
        code: 2,
        message: "card declined".to_owned(),
    });
    let lookup = span(TRACE_A, 3, Some(2), "lookup", 25, 35);
    export("checkout", vec![lookup, payment, root])
}

struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(
    socket: &Path,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the sink");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        content_type,
        body,
    }
}

async fn post(socket: &Path, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let mut all = vec![("content-type", "application/x-protobuf")];
    all.extend_from_slice(headers);
    send(socket, Method::POST, "/v1/traces", &all, body).await
}

fn socket() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sink.sock");
    (dir, path)
}

/// A writer tests can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("utf-8")
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn collects_spans_grouped_into_traces_with_their_routing() {
    let (_dir, path) = socket();
    let sink = TraceSink::start(&path, SinkOptions::default()).expect("start");

    let reply = post(
        &path,
        &[("cf-trace-config", "tenant=a;v=1")],
        checkout_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/x-protobuf")
    );
    let response = ExportTraceServiceResponse::decode(reply.body).expect("response decodes");
    assert!(response.partial_success.is_none());

    // A second request: another trace with another routing, and a late span of trace A.
    let late = span(TRACE_A, 4, Some(1), "audit", 90, 95);
    let other = span(TRACE_B, 9, None, "GET /health", 0, 1);
    let reply = post(
        &path,
        &[("cf-trace-config", "tenant=b")],
        export("checkout", vec![other, late]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // No routing header at all.
    let reply = post(
        &path,
        &[],
        export("batch", vec![span([7; 16], 1, None, "job", 0, 5)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    let traces = sink.traces();
    assert_eq!(traces.len(), 3);
    let a = &traces[0];
    assert_eq!(a.trace_id, hex(&TRACE_A));
    assert_eq!(a.spans.len(), 4);
    assert_eq!(a.routings(), ["tenant=a;v=1", "tenant=b"]);
    assert_eq!(a.service_names(), ["checkout"]);
    let root = a.span("GET /checkout").expect("root");
    assert_eq!(root.span_id, "0000000000000001");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.kind, "server");
    assert_eq!(root.attribute("http.response.status_code"), Some("500"));
    assert_eq!(root.routing.as_deref(), Some("tenant=a;v=1"));
    assert_eq!(root.duration_nanos(), 100 * MS);
    let payment = a.span("charge card").expect("child");
    assert_eq!(payment.parent_span_id.as_deref(), Some("0000000000000001"));
    assert_eq!(
        payment.status,
        SpanStatus::Error("card declined".to_owned())
    );
    assert_eq!(
        a.span("audit").unwrap().routing.as_deref(),
        Some("tenant=b")
    );

    assert_eq!(traces[1].trace_id, hex(&TRACE_B));
    assert_eq!(traces[1].routing(), Some("tenant=b"));
    assert_eq!(traces[2].routing(), None);
    assert_eq!(traces[2].service_names(), ["batch"]);
    assert_eq!(sink.trace(&hex(&TRACE_B)).unwrap().spans.len(), 1);
    assert_eq!(sink.stats().accepted_requests, 3);
    assert_eq!(sink.stats().spans, 6);
}

#[tokio::test]
async fn gzip_bodies_are_decoded() {
    let (_dir, path) = socket();
    let sink = TraceSink::start(&path, SinkOptions::default()).expect("start");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&checkout_request()).unwrap();
    let reply = post(
        &path,
        &[("content-encoding", "gzip"), ("cf-trace-config", "gz")],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let traces = sink.traces();
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].spans.len(), 3);
    assert_eq!(traces[0].routing(), Some("gz"));
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_never_break_the_sink() {
    let (_dir, path) = socket();
    let sink =
        TraceSink::start(&path, SinkOptions::default().with_max_body_bytes(1024)).expect("start");

    let reply = post(&path, &[], b"\xff\xff\xff\xff not protobuf".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("cannot decode"), "{}", reply.text());

    let reply = post(
        &path,
        &[("content-encoding", "gzip")],
        b"not gzip at all".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("gunzip"), "{}", reply.text());

    let reply = send(
        &path,
        Method::POST,
        "/v1/metrics",
        &[("content-type", "application/x-protobuf")],
        Vec::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = send(&path, Method::GET, "/v1/traces", &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    let reply = send(
        &path,
        Method::POST,
        "/v1/traces",
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = send(&path, Method::POST, "/v1/traces", &[], checkout_request()).await;
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no content type"
    );
    let reply = post(&path, &[("content-encoding", "br")], checkout_request()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let reply = post(&path, &[], vec![0; 2048]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Small on the wire, too large once decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&[0; 4096]).unwrap();
    let reply = post(&path, &[("content-encoding", "gzip")], gz.finish().unwrap()).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert!(sink.traces().is_empty());
    assert_eq!(sink.stats().refused_requests, 9);
    // Still serving, and a content type with parameters is fine.
    let reply = send(
        &path,
        Method::POST,
        "/v1/traces",
        &[("content-type", "Application/X-Protobuf; charset=binary")],
        checkout_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(sink.traces().len(), 1);
}

#[tokio::test]
async fn spans_with_malformed_ids_are_rejected_as_partial_success() {
    let (_dir, path) = socket();
    let sink = TraceSink::start(&path, SinkOptions::default()).expect("start");
    let mut short_trace = span(TRACE_A, 5, None, "short trace id", 0, 1);
    short_trace.trace_id = vec![1, 2, 3];
    let mut zero_span = span(TRACE_A, 6, None, "zero span id", 0, 1);
    zero_span.span_id = vec![0; 8];
    let good = span(TRACE_A, 7, None, "good", 0, 1);
    let reply = post(
        &path,
        &[],
        export("svc", vec![short_trace, good, zero_span]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(reply.body)
        .unwrap()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("short trace id"),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.spans().len(), 1);
    assert_eq!(sink.stats().rejected_spans, 2);
}

#[tokio::test]
async fn traces_are_printed_after_the_quiet_period_with_json_lines() {
    let (dir, path) = socket();
    let waterfalls = Captured::default();
    let json_path = dir.path().join("spans.jsonl");
    let options = SinkOptions::default()
        .with_quiet_period(Duration::from_millis(50))
        .with_width(20)
        .waterfall_to(waterfalls.clone())
        .json_file(&json_path)
        .expect("json file");
    let mut sink = TraceSink::start(&path, options).expect("start");

    let reply = post(
        &path,
        &[("cf-trace-config", "tenant=a")],
        checkout_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let mut waited = 0;
    // The JSON lines are written just after the waterfall: wait for both.
    let json_lines = || {
        std::fs::read_to_string(&json_path)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    while !waterfalls.text().contains(&hex(&TRACE_A)) || json_lines() < 3 {
        assert!(waited < 5000, "not printed within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 10;
    }
    let text = waterfalls.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "trace {}  routing=tenant=a  service=checkout  3 spans",
            hex(&TRACE_A)
        )),
        "{text}"
    );
    assert!(lines[1].starts_with("GET /checkout [server]"), "{text}");
    assert!(lines[2].starts_with("  charge card"), "{text}");
    assert!(lines[2].ends_with("error: card declined"), "{text}");
    assert!(lines[3].starts_with("    lookup"), "{text}");

    let json = std::fs::read_to_string(&json_path).unwrap();
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 3);
    let payment = objects.iter().find(|o| o["name"] == "charge card").unwrap();
    assert_eq!(payment["trace_id"], hex(&TRACE_A));
    assert_eq!(payment["parent_span_id"], "0000000000000001");
    assert_eq!(payment["status"], "error");
    assert_eq!(payment["status_message"], "card declined");
    assert_eq!(payment["duration_ms"], 60.0);
    assert_eq!(payment["routing"], "tenant=a");
    assert_eq!(payment["service_name"], "checkout");
    let root = objects
        .iter()
        .find(|o| o["name"] == "GET /checkout")
        .unwrap();
    assert_eq!(root["parent_span_id"], serde_json::Value::Null);
    assert_eq!(root["attributes"]["http.response.status_code"], "500");

    // A late span: the whole trace is printed again, only the new span goes to JSON.
    let reply = post(
        &path,
        &[("cf-trace-config", "tenant=a")],
        export("checkout", vec![span(TRACE_A, 4, Some(1), "audit", 90, 95)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    sink.stop();
    let text = waterfalls.text();
    assert!(text.contains("(update: 1 more span(s)"), "{text}");
    assert_eq!(text.matches("  audit").count(), 1, "{text}");
    let json = std::fs::read_to_string(&json_path).unwrap();
    assert_eq!(json.lines().count(), 4);
    assert!(json.lines().last().unwrap().contains("\"audit\""));
}

#[tokio::test]
async fn flush_prints_at_once_and_stop_removes_the_socket() {
    let (_dir, path) = socket();
    let waterfalls = Captured::default();
    let options = SinkOptions::default()
        .with_quiet_period(Duration::from_secs(3600))
        .waterfall_to(waterfalls.clone());
    let mut sink = TraceSink::start(&path, options).expect("start");
    assert!(path.exists());
    post(&path, &[], checkout_request()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(waterfalls.text(), "", "quiet period not over");
    sink.flush();
    assert!(waterfalls.text().contains("GET /checkout"));
    let printed = waterfalls.text();
    sink.flush();
    assert_eq!(waterfalls.text(), printed, "nothing new, nothing printed");

    sink.stop();
    assert!(!path.exists(), "socket file removed");
    assert_eq!(sink.traces().len(), 1, "still readable after stop");
    sink.stop();
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_refused() {
    let (_dir, path) = socket();
    // Left behind by a process that exited without cleaning up.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let sink = TraceSink::start(&path, SinkOptions::default()).expect("stale socket replaced");
    let error = TraceSink::start(&path, SinkOptions::default()).expect_err("live socket");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    drop(sink);
    assert!(!path.exists());

    let error = TraceSink::start(
        &path,
        SinkOptions::default().with_routing_header("bad header"),
    )
    .expect_err("invalid header name");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn usable_from_sync_code() {
    let (_dir, path) = socket();
    let sink = TraceSink::start(&path, SinkOptions::default()).expect("start");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = runtime.block_on(post(
        &path,
        &[("cf-trace-config", "sync")],
        checkout_request(),
    ));
    assert_eq!(reply.status, StatusCode::OK);
    assert!(sink.wait_until(Duration::from_secs(5), |traces| traces.len() == 1));
    assert_eq!(sink.traces()[0].routing(), Some("sync"));
}
