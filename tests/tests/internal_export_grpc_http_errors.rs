//! OTLP/gRPC against a receiver that answers as proxies and odd servers do, over a real
//! HTTP/2 connection (hyper's server, scripted call by call): an HTTP 503 with no
//! `grpc-status` (retried: gRPC maps it to `UNAVAILABLE`), a trailers-only `UNAVAILABLE`
//! whose status details are not base64 (retried, no panic), an `OK` whose message carries
//! a `partial_success` (counted), and an HTTP 404 with no `grpc-status` (`UNIMPLEMENTED`:
//! final, counted as rejected). The balance holds throughout.

use bytes::Bytes;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Body = http_body_util::combinators::WithTrailers<
    Full<Bytes>,
    std::future::Ready<Option<Result<HeaderMap, Infallible>>>,
>;

fn respond(
    status: StatusCode,
    headers: &[(&'static str, &'static str)],
    body: Bytes,
    trailers: Option<&[(&'static str, &'static str)]>,
) -> Response<Body> {
    let trailers = trailers.map(|pairs| {
        Ok(pairs
            .iter()
            .map(|(name, value)| {
                (
                    hyper::header::HeaderName::from_static(name),
                    hyper::header::HeaderValue::from_static(value),
                )
            })
            .collect())
    });
    let mut response = Response::new(Full::new(body).with_trailers(std::future::ready(trailers)));
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().insert(*name, value.parse().unwrap());
    }
    response
}

/// The answer to call number `n`.
fn answer(n: usize) -> Response<Body> {
    const GRPC: (&str, &str) = ("content-type", "application/grpc");
    match n {
        0 => respond(StatusCode::SERVICE_UNAVAILABLE, &[], Bytes::new(), None),
        1 => respond(
            StatusCode::OK,
            &[
                GRPC,
                ("grpc-status", "14"),
                ("grpc-status-details-bin", "not base64!"),
            ],
            Bytes::new(),
            None,
        ),
        2 => {
            let message = ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: 1,
                    error_message: "one span refused".to_owned(),
                }),
            }
            .encode_to_vec();
            let mut framed = vec![0];
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            respond(
                StatusCode::OK,
                &[GRPC],
                Bytes::from(framed),
                Some(&[("grpc-status", "0")]),
            )
        }
        _ => respond(StatusCode::NOT_FOUND, &[], Bytes::new(), None),
    }
}

fn wait_for(calls: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {calls:?} calls, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn http_errors_and_odd_statuses_are_retried_or_final_as_grpc_says() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let counted = Arc::clone(&counted);
                        async move {
                            assert_eq!(request.headers()["te"], "trailers");
                            // The whole call is read before it is answered, as a proxy would.
                            let _ = request.into_body().collect().await;
                            let n = counted.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(answer(n))
                        }
                    });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });

    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  request_timeout_ms: 5000\n  retry:\n    \
         initial_backoff_ms: 20\n    max_backoff_ms: 50\n  output:\n    otlp_grpc:\n      \
         endpoint: http://{addr}\n"
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    {
        let _root = tracing::start_trace("retried", StartTraceOptions::default());
        let _a = tracing::span("a");
        let _b = tracing::span("b");
    }
    wait_for(&calls, 3);
    {
        let _root = tracing::start_trace("refused", StartTraceOptions::default());
        let _a = tracing::span("a");
        let _b = tracing::span("b");
    }
    wait_for(&calls, 4);
    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.internal.unwrap();
    assert_eq!(stats.requests, 4, "{stats:?}");
    assert_eq!(stats.retries, 2, "503 and UNAVAILABLE retried: {stats:?}");
    assert_eq!(stats.spans_exported, 2, "{stats:?}");
    assert_eq!(
        stats.dropped_rejected,
        1 + 3,
        "one span by partial_success, three by 404: {stats:?}"
    );
    assert_eq!(stats.dropped(), stats.dropped_rejected, "{stats:?}");
    // The balance: two traces of three spans, every one exported or dropped by reason.
    assert_eq!(stats.produced(), 6, "{stats:?}");
    assert_eq!(stats.spans_exported + stats.dropped(), 6, "{stats:?}");
}
