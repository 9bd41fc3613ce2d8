//! The demo: trace sinks, backend and service in one process, a few requests, then every
//! trace printed as a waterfall. `examples/demo.rs` runs it; `tests/demo.rs` asserts on what
//! the sinks received.
//!
//! This module owns the demo's script (which requests, which settings); the service is
//! [`crate::service`], the viewer [`crate::trace_sink`].

use crate::service::{self, Service};
use crate::trace_sink::{ReceivedTrace, SinkOptions, TraceSink, render_waterfall};
use bytes::Bytes;
use foundations::telemetry::settings::{TelemetrySettings, TracingOutput};
use foundations::telemetry::{self, ExporterStats};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The inbound `traceparent` of the request that continues a caller's trace.
pub const INBOUND_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The config file, `examples/config.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Where the service listens and where its backend is.
    pub service: ServiceConfig,
    /// The telemetry settings block fed to `telemetry::init`.
    pub telemetry: TelemetrySettings,
}

/// The `service` section of the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's address.
    pub listen: SocketAddr,
    /// The backend's address.
    pub backend: SocketAddr,
}

impl DemoConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let yaml = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let config: Self = serde_saphyr::from_str(&yaml)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        config
            .telemetry
            .validate()
            .map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(config)
    }

    /// The config shipped with the examples.
    pub fn shipped() -> Result<Self, String> {
        Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml"))
    }
}

/// What the demo saw.
#[derive(Debug)]
pub struct DemoReport {
    /// Traces the user pipeline delivered (what customers see).
    pub user_traces: Vec<ReceivedTrace>,
    /// Traces the internal pipeline delivered (what the operator sees).
    pub internal_traces: Vec<ReceivedTrace>,
    /// Each demo request and the status it got, in order.
    pub statuses: Vec<(&'static str, StatusCode)>,
    /// Final counters of the user exporter.
    pub user_stats: Option<ExporterStats>,
    /// Final counters of the internal exporter.
    pub internal_stats: Option<ExporterStats>,
}

/// One demo request.
struct DemoRequest {
    path: &'static str,
    /// `x-tenant`: starts a user trace routed to this tenant.
    tenant: Option<&'static str>,
    traceparent: Option<&'static str>,
    tracestate: Option<&'static str>,
}

const REQUESTS: [DemoRequest; 4] = [
    DemoRequest {
        path: "/users/42",
        tenant: Some("acme"),
        traceparent: None,
        tracestate: None,
    },
    DemoRequest {
        path: "/orders",
        tenant: Some("globex"),
        traceparent: Some(INBOUND_TRACEPARENT),
        tracestate: Some("globex=abc"),
    },
    DemoRequest {
        path: "/fail/checkout",
        tenant: Some("acme"),
        traceparent: None,
        tracestate: None,
    },
    DemoRequest {
        path: "/health",
        tenant: None,
        traceparent: None,
        tracestate: None,
    },
];

/// Runs the demo: starts two trace sinks (user and internal pipeline) on Unix sockets in a
/// temporary directory, the backend and the service on loopback TCP, sends the demo
/// requests, shuts telemetry down with a flush, and writes every trace's waterfall to `out`.
///
/// Calls `telemetry::init`, so it runs once per process.
pub fn run_demo(out: &mut dyn Write) -> io::Result<DemoReport> {
    let dir = tempfile::tempdir()?;
    let user_socket = dir.path().join("user.sock");
    let internal_socket = dir.path().join("internal.sock");
    let user_sink = TraceSink::start(&user_socket, SinkOptions::default())?;
    let internal_sink = TraceSink::start(&internal_socket, SinkOptions::default())?;

    let mut config = DemoConfig::shipped().map_err(io::Error::other)?;
    config.telemetry.tracing.output = TracingOutput::OtlpHttp {
        endpoint: Some(format!("unix://{}", internal_socket.display())),
        ca_bundle: None,
    };
    if let Some(user) = config.telemetry.user_tracing.as_mut() {
        user.socket_path = user_socket.clone();
    }
    let driver = telemetry::init(&config.telemetry).map_err(io::Error::other)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let statuses = runtime.block_on(async {
        // Ephemeral ports: the demo never collides with anything already listening.
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let backend_addr = backend.local_addr()?;
        tokio::spawn(service::serve(backend, service::backend));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let service_addr = listener.local_addr()?;
        let app = Service::new(backend_addr);
        tokio::spawn(service::serve(listener, move |request| {
            Service::handle(app.clone(), request)
        }));
        send_requests(service_addr).await
    })?;

    let report = driver.shutdown(Duration::from_secs(10));
    user_sink.flush();
    internal_sink.flush();
    let report = DemoReport {
        user_traces: user_sink.traces(),
        internal_traces: internal_sink.traces(),
        statuses,
        user_stats: report.user,
        internal_stats: report.internal,
    };
    print_report(&report, out)?;
    Ok(report)
}

async fn send_requests(service: SocketAddr) -> io::Result<Vec<(&'static str, StatusCode)>> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut statuses = Vec::new();
    for demo in REQUESTS {
        let path = demo.path;
        let mut request = Request::get(format!("http://{service}{path}"));
        for (name, value) in [
            ("x-tenant", demo.tenant),
            ("traceparent", demo.traceparent),
            ("tracestate", demo.tracestate),
        ] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(io::Error::other)?;
        let response = client.request(request).await.map_err(io::Error::other)?;
        statuses.push((path, response.status()));
    }
    Ok(statuses)
}

fn print_report(report: &DemoReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "requests:")?;
    for (path, status) in &report.statuses {
        writeln!(out, "  GET {path:<16} {status}")?;
    }
    for (title, traces) in [
        (
            "user pipeline: what each customer receives",
            &report.user_traces,
        ),
        (
            "internal pipeline: what the operator's collector receives",
            &report.internal_traces,
        ),
    ] {
        writeln!(out, "\n== {title} ({} traces)\n", traces.len())?;
        for trace in traces {
            writeln!(out, "{}", render_waterfall(trace, 40))?;
        }
    }
    for (name, stats) in [
        ("user", report.user_stats),
        ("internal", report.internal_stats),
    ] {
        if let Some(stats) = stats {
            writeln!(
                out,
                "{name} exporter: {} spans exported, {} dropped, {} requests",
                stats.spans_exported,
                stats.dropped(),
                stats.requests
            )?;
        }
    }
    Ok(())
}
