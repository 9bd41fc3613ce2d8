//! OTLP/gRPC when the connection drops mid-call: a proxy in front of a tonic receiver
//! accepts the exporter's first connection, reads the call and closes it without an answer.
//! tonic reports that as `UNKNOWN`; the exporter must treat it as the transport failure it is
//! (retryable, like `UNAVAILABLE`), reconnect, and deliver, losing nothing.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::{GrpcReply, GrpcSink};
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[test]
fn a_call_whose_connection_drops_is_retried_and_delivered() {
    let sink = GrpcSink::start_tcp(|_| GrpcReply::Ok);
    let upstream = sink.endpoint().trim_start_matches("http://").to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let proxy = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            if std::mem::take(&mut first) {
                // Read the preface and the call, then hang up without answering.
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut seen = 0;
                    while seen < 200 {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen += n,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    drop(client);
                });
                continue;
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });

    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  request_timeout_ms: 5000\n  retry:\n    \
         initial_backoff_ms: 20\n    max_backoff_ms: 50\n  output:\n    otlp_grpc:\n      \
         endpoint: http://{proxy}\n"
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    {
        let _root = tracing::start_trace("dropped_then_delivered", StartTraceOptions::default());
        let _a = tracing::span("a");
        let _b = tracing::span("b");
    }
    sink.wait_until(Duration::from_secs(10), |r| !r.is_empty());
    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_exported, 3, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert!(
        stats.retries >= 1,
        "the dropped call was retried: {stats:?}"
    );
    assert_eq!(sink.received().len(), 1);
}
