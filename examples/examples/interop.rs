//! `interop`: proves foundations' OTLP exporters (HTTP, and gRPC for the internal pipeline)
//! against a real OpenTelemetry Collector.
//!
//! Run by `tests/interop/run.sh`, which builds and starts the Collector and sets the
//! `INTEROP_*` variables below. Two roles in one binary:
//!
//! - **checker** (no arguments): runs the *test receiver* (an OTLP/HTTP server on loopback
//!   that the Collector's `otlp_http` exporter forwards everything to), probes what the
//!   Collector's receiver enforces, then runs each scenario as a producer child process
//!   (telemetry can be initialized once per process) and checks that every span the
//!   producer reports having made arrived through the Collector intact;
//! - **producer** (`produce SCENARIO RESULT_FILE`): initializes foundations from YAML,
//!   makes traces with the public API, shuts the driver down, and writes what it made and
//!   the exporter counters to `RESULT_FILE` as JSON.
//!
//! Variables: `INTEROP_WORK` (a scratch directory), `INTEROP_OTLP_HTTP` (the Collector's
//! OTLP/HTTP receiver, `127.0.0.1:PORT`), `INTEROP_OTLP_GRPC` (its OTLP/gRPC receiver, where
//! the `grpc*` scenarios send the internal pipeline),
//! `INTEROP_INTERNAL_SOCKET` and `INTEROP_USER_SOCKET` (its OTLP/HTTP receivers on Unix
//! sockets), `INTEROP_RECEIVER` (`127.0.0.1:PORT` for the test receiver),
//! `INTEROP_COLLECTOR_PIDFILE` (where run.sh's supervisor writes the Collector's pid; it
//! restarts the Collector when it exits), `INTEROP_BODY_LIMIT` (the receivers'
//! `max_request_body_size`), optionally `INTEROP_SCENARIOS` (comma-separated subset).

use bytes::Bytes;
use flate2::Compression as GzLevel;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations::telemetry::{self, ExporterStats, ShutdownReport};
use foundations::{
    add_span_log_fields, add_span_tags, add_user_span_log_fields, add_user_span_tags,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// =========================================================================================
// THE LIBRARY'S SETTINGS. This is the only place that knows the shape of foundations' YAML.
// The user pipeline's output may move from `user_tracing.socket_path` to
// `user_tracing.output.otlp_uds.socket_path`: change `telemetry_yaml` alone when it does.
// =========================================================================================

/// What a scenario tunes in both pipelines.
struct Knobs {
    scenario: &'static str,
    /// The internal pipeline's output: `otlp_http` or `otlp_grpc`.
    internal_output: &'static str,
    /// `http://127.0.0.1:PORT` or `unix:///path`.
    internal_endpoint: String,
    user_socket: PathBuf,
    /// `none` or `gzip`.
    compression: &'static str,
    max_request_bytes: usize,
    max_batch_size: usize,
    flush_interval_ms: u64,
    retry_max_attempts: u32,
    retry_max_backoff_ms: u64,
}

const INTERNAL_SERVICE: &str = "interop-internal";
const USER_SERVICE: &str = "interop-user";

fn telemetry_yaml(k: &Knobs) -> String {
    let exporter = format!(
        "  max_batch_size: {batch}
  flush_interval_ms: {flush}
  compression: {compression}
  max_request_bytes: {max_bytes}
  retry:
    max_attempts: {attempts}
    initial_backoff_ms: 100
    max_backoff_ms: {backoff}
",
        batch = k.max_batch_size,
        flush = k.flush_interval_ms,
        compression = k.compression,
        max_bytes = k.max_request_bytes,
        attempts = k.retry_max_attempts,
        backoff = k.retry_max_backoff_ms,
    );
    format!(
        "tracing:
  service_name: {INTERNAL_SERVICE}
  resource_attributes:
    interop.scenario: {scenario}
  static_tags:
    interop.static: yes-static
  sampling:
    ratio: 1.0
  output:
    {output}:
      endpoint: {endpoint}
{exporter}user_tracing:
  socket_path: {socket}
  service_name: {USER_SERVICE}
{exporter}",
        scenario = k.scenario,
        output = k.internal_output,
        endpoint = k.internal_endpoint,
        socket = k.user_socket.display(),
    )
}

// =========================================================================================
// Shared between the roles.
// =========================================================================================

/// A typed attribute value, as the producer set it and as OTLP carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

/// One span the producer made, as it must come out of the Collector.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ExpectedSpan {
    /// `internal` or `user`.
    pipeline: String,
    service: String,
    trace_id: String,
    span_id: String,
    /// Empty for a new root.
    parent_span_id: String,
    name: String,
    /// OTLP `SpanKind` number.
    kind: i32,
    /// OTLP status code number (0 unset, 2 error) and message.
    status_code: i32,
    status_message: String,
    attributes: BTreeMap<String, Val>,
    events: Vec<(String, BTreeMap<String, String>)>,
    trace_state: String,
    /// The parent came from an inbound `traceparent`.
    remote_parent: bool,
    /// The W3C flags the library propagates for this span (sampled, random).
    w3c_flags: u32,
    /// The routing the user span was exported under (`cf-trace-config`), for the report.
    routing: Option<String>,
}

/// The exporter counters, as the producer saw them after shutdown.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Stats {
    queued: u64,
    exported: u64,
    dropped: u64,
    dropped_rejected: u64,
    dropped_too_large: u64,
    dropped_retries_exhausted: u64,
    dropped_at_shutdown: u64,
    requests: u64,
    retries: u64,
    bytes_sent: u64,
}

impl From<ExporterStats> for Stats {
    fn from(s: ExporterStats) -> Self {
        Stats {
            queued: s.spans_queued,
            exported: s.spans_exported,
            dropped: s.dropped(),
            dropped_rejected: s.dropped_rejected,
            dropped_too_large: s.dropped_too_large,
            dropped_retries_exhausted: s.dropped_retries_exhausted,
            dropped_at_shutdown: s.dropped_at_shutdown,
            requests: s.requests,
            retries: s.retries,
            bytes_sent: s.bytes_sent,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProducerResult {
    scenario: String,
    flushed: bool,
    internal: Stats,
    user: Stats,
    spans: Vec<ExpectedSpan>,
}

/// Where the Collector and the test receiver are, from run.sh.
struct Setup {
    work: PathBuf,
    otlp_http: SocketAddr,
    otlp_grpc: SocketAddr,
    internal_socket: PathBuf,
    user_socket: PathBuf,
    receiver: SocketAddr,
    pidfile: PathBuf,
    body_limit: usize,
}

impl Setup {
    fn from_env() -> Result<Setup, String> {
        fn var(name: &str) -> Result<String, String> {
            env::var(name).map_err(|_| format!("{name} is not set (run tests/interop/run.sh)"))
        }
        fn addr(name: &str) -> Result<SocketAddr, String> {
            var(name)?
                .parse()
                .map_err(|e| format!("{name}: not an address: {e}"))
        }
        Ok(Setup {
            work: var("INTEROP_WORK")?.into(),
            otlp_http: addr("INTEROP_OTLP_HTTP")?,
            otlp_grpc: addr("INTEROP_OTLP_GRPC")?,
            internal_socket: var("INTEROP_INTERNAL_SOCKET")?.into(),
            user_socket: var("INTEROP_USER_SOCKET")?.into(),
            receiver: addr("INTEROP_RECEIVER")?,
            pidfile: var("INTEROP_COLLECTOR_PIDFILE")?.into(),
            body_limit: var("INTEROP_BODY_LIMIT")?
                .parse()
                .map_err(|e| format!("INTEROP_BODY_LIMIT: {e}"))?,
        })
    }
}

/// Prints warnings and errors on stderr, prefixed so they stand out in the run's output.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("   producer {}: {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

/// The producer role, with the exporters' warnings and errors (what a receiver refused, and
/// why) on stderr.
fn produce(setup: &Setup, scenario: &str) -> Result<ProducerResult, String> {
    log::set_logger(&StderrLogger).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Warn);
    producer::run(setup, scenario)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("free-ports") {
        return free_ports(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1));
    }
    let setup = match Setup::from_env() {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("interop: {message}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        Some("produce") if args.len() == 3 => match produce(&setup, &args[1]) {
            Ok(result) => {
                let json = serde_json::to_vec(&result).expect("serializable");
                if let Err(e) = fs::write(&args[2], json) {
                    eprintln!("interop producer: cannot write {}: {e}", args[2]);
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("interop producer {}: {message}", args[1]);
                ExitCode::FAILURE
            }
        },
        None => checker::run(&setup),
        _ => {
            eprintln!("usage: interop [produce SCENARIO RESULT_FILE]");
            ExitCode::from(2)
        }
    }
}

/// `free-ports N`: prints N loopback ports that were free a moment ago (for run.sh).
fn free_ports(n: usize) -> ExitCode {
    // Hold every listener until all are picked, so the N ports differ.
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .expect("binding 127.0.0.1:0");
    let ports: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port().to_string())
        .collect();
    println!("{}", ports.join(" "));
    ExitCode::SUCCESS
}

// =========================================================================================
// Producer: one process per scenario.
// =========================================================================================

mod producer {
    use super::*;

    /// A customer's routing, exported in `cf-trace-config`.
    #[derive(Debug)]
    struct Tenant(&'static str);

    impl RoutingMetadata for Tenant {
        fn group_key(&self) -> String {
            self.0.to_owned()
        }
        fn encode(&self) -> String {
            format!("tenant={}", self.0)
        }
    }

    const KIND_INTERNAL: i32 = 1;
    const KIND_SERVER: i32 = 2;
    const KIND_CLIENT: i32 = 3;
    const KIND_PRODUCER: i32 = 4;
    const KIND_CONSUMER: i32 = 5;
    const STATUS_ERROR: i32 = 2;

    /// The spans made so far, as they must arrive.
    struct Recorder {
        scenario: String,
        spans: Vec<ExpectedSpan>,
    }

    impl Recorder {
        /// The current internal span, with the tags every internal span gets.
        fn internal(&mut self, name: &str, parent: &str, kind: i32) -> &mut ExpectedSpan {
            let tp = tracing::w3c_traceparent().expect("an internal span is current");
            assert!(tp.flags.is_sampled(), "{name} is not sampled");
            let mut attributes = BTreeMap::new();
            attributes.insert("interop.scenario".into(), Val::Str(self.scenario.clone()));
            attributes.insert("interop.static".into(), Val::Str("yes-static".into()));
            self.spans.push(ExpectedSpan {
                pipeline: "internal".into(),
                service: INTERNAL_SERVICE.into(),
                trace_id: tp.trace_id.to_string(),
                span_id: tp.parent_id.to_string(),
                parent_span_id: parent.into(),
                name: name.into(),
                kind,
                status_code: 0,
                status_message: String::new(),
                attributes,
                events: Vec::new(),
                trace_state: tracing::w3c_tracestate()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                remote_parent: false,
                w3c_flags: u32::from(tp.flags.outbound().bits()),
                routing: None,
            });
            self.spans.last_mut().unwrap()
        }

        /// The current user span.
        fn user(
            &mut self,
            name: &str,
            parent: &str,
            kind: i32,
            routing: &str,
        ) -> &mut ExpectedSpan {
            let tp = user_tracing::w3c_traceparent().expect("a user span is current");
            let mut attributes = BTreeMap::new();
            attributes.insert("interop.scenario".into(), Val::Str(self.scenario.clone()));
            self.spans.push(ExpectedSpan {
                pipeline: "user".into(),
                service: USER_SERVICE.into(),
                trace_id: tp.trace_id.to_string(),
                span_id: tp.parent_id.to_string(),
                parent_span_id: parent.into(),
                name: name.into(),
                kind,
                status_code: 0,
                status_message: String::new(),
                attributes,
                events: Vec::new(),
                trace_state: user_tracing::w3c_tracestate()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                remote_parent: false,
                w3c_flags: u32::from(tp.flags.outbound().bits()),
                routing: Some(format!("tenant={routing}")),
            });
            self.spans.last_mut().unwrap()
        }
    }

    fn attr(span: &mut ExpectedSpan, key: &str, value: Val) {
        span.attributes.insert(key.into(), value);
    }

    fn event(span: &mut ExpectedSpan, name: &str, fields: &[(&str, &str)]) {
        let attrs = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        span.events.push((name.into(), attrs));
    }

    /// A fresh random-looking id (hex) from the clock, the pid and a counter: inbound
    /// `traceparent`s must differ between runs and scenarios.
    fn random_hex(len: usize, salt: u64) -> String {
        let mut x = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ (u64::from(std::process::id()) << 32)
            ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut out = String::new();
        while out.len() < len {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            out.push_str(&format!("{z:016x}"));
        }
        out.truncate(len);
        out
    }

    pub fn run(setup: &Setup, scenario: &str) -> Result<ProducerResult, String> {
        let tcp = format!("http://{}", setup.otlp_http);
        let uds = format!("unix://{}", setup.internal_socket.display());
        let grpc = format!("http://{}", setup.otlp_grpc);
        let base = |scenario: &'static str, endpoint: String| Knobs {
            scenario,
            internal_output: "otlp_http",
            internal_endpoint: endpoint,
            user_socket: setup.user_socket.clone(),
            compression: "none",
            max_request_bytes: 64 * 1024 * 1024,
            max_batch_size: 512,
            flush_interval_ms: 200,
            retry_max_attempts: 5,
            retry_max_backoff_ms: 5000,
        };
        let knobs = match scenario {
            "tcp" => base("tcp", tcp),
            "unix" => base("unix", uds),
            "gzip" => Knobs {
                compression: "gzip",
                ..base("gzip", tcp)
            },
            // Batches of ~3 MiB, requests capped below the Collector's body limit.
            "split" => Knobs {
                max_request_bytes: setup.body_limit / 2,
                max_batch_size: 5000,
                flush_interval_ms: 2000,
                ..base("split", tcp)
            },
            // The counter-proof: requests over the Collector's body limit (the default
            // max_request_bytes) are refused with a final 400, counted, never retried.
            "limit" => Knobs {
                max_batch_size: 5000,
                flush_interval_ms: 2000,
                ..base("limit", tcp)
            },
            // The checker restarts the Collector meanwhile: retries must bridge the gap.
            "restart" => Knobs {
                retry_max_attempts: 40,
                retry_max_backoff_ms: 500,
                ..base("restart", tcp)
            },
            // The internal pipeline over OTLP/gRPC to the Collector's gRPC receiver (the
            // user pipeline stays OTLP/HTTP on its Unix socket).
            "grpc" => Knobs {
                internal_output: "otlp_grpc",
                ..base("grpc", grpc.clone())
            },
            "grpc_gzip" => Knobs {
                internal_output: "otlp_grpc",
                compression: "gzip",
                ..base("grpc_gzip", grpc.clone())
            },
            // ~3 MiB batches split below the gRPC receiver's message limit (4 MiB).
            "grpc_split" => Knobs {
                internal_output: "otlp_grpc",
                max_request_bytes: setup.body_limit / 2,
                max_batch_size: 5000,
                flush_interval_ms: 2000,
                ..base("grpc_split", grpc.clone())
            },
            "grpc_restart" => Knobs {
                internal_output: "otlp_grpc",
                retry_max_attempts: 40,
                retry_max_backoff_ms: 500,
                ..base("grpc_restart", grpc.clone())
            },
            other => return Err(format!("unknown scenario {other:?}")),
        };
        let settings = TelemetrySettings::from_yaml(&telemetry_yaml(&knobs))
            .map_err(|e| format!("settings: {e}"))?;
        let driver = telemetry::init(&settings).map_err(|e| format!("init: {e}"))?;

        let mut rec = Recorder {
            scenario: scenario.to_owned(),
            spans: Vec::new(),
        };
        match scenario {
            "split" | "limit" | "grpc_split" => big_batches(&mut rec),
            "restart" | "grpc_restart" => {
                // A trace of each pipeline every 50 ms for 6 s.
                let start = Instant::now();
                let mut i = 0u64;
                while start.elapsed() < Duration::from_secs(6) {
                    small_trace(&mut rec, i);
                    i += 1;
                    thread::sleep(Duration::from_millis(50));
                }
            }
            _ => {
                internal_traces(&mut rec);
                user_traces(&mut rec);
            }
        }

        let report: ShutdownReport = driver.shutdown(Duration::from_secs(60));
        Ok(ProducerResult {
            scenario: scenario.to_owned(),
            flushed: report.flushed,
            internal: report.internal.map(Stats::from).unwrap_or_default(),
            user: report.user.map(Stats::from).unwrap_or_default(),
            spans: rec.spans,
        })
    }

    /// Internal spans: every tag type, events, kinds, an error, and a continued trace with a
    /// `tracestate`.
    fn internal_traces(rec: &mut Recorder) {
        // A new trace.
        let root = tracing::start_trace("GET /interop", StartTraceOptions::default());
        add_span_tags!(
            "span.kind" => "server",
            "interop.scenario" => rec.scenario.clone(),
            "http.request.method" => "GET",
            "interop.bool" => true,
            "interop.int" => -42i64,
            "interop.float" => 2.5f64,
        );
        add_span_log_fields!("event" => "request_received", "url.path" => "/interop");
        let s = rec.internal("GET /interop", "", KIND_SERVER);
        attr(s, "http.request.method", Val::Str("GET".into()));
        attr(s, "interop.bool", Val::Bool(true));
        attr(s, "interop.int", Val::Int(-42));
        attr(s, "interop.float", Val::Double(2.5));
        event(s, "request_received", &[("url.path", "/interop")]);
        let root_id = s.span_id.clone();
        {
            let _db = tracing::span("db.query");
            add_span_tags!("span.kind" => "client", "interop.scenario" => rec.scenario.clone(), "db.rows" => 7i64);
            add_span_log_fields!("event" => "query_sent", "db.statement" => "SELECT 1", "attempt" => "1");
            add_span_log_fields!("event" => "rows_read");
            let s = rec.internal("db.query", &root_id, KIND_CLIENT);
            attr(s, "db.rows", Val::Int(7));
            event(
                s,
                "query_sent",
                &[("db.statement", "SELECT 1"), ("attempt", "1")],
            );
            event(s, "rows_read", &[]);
            let db_id = s.span_id.clone();
            {
                let _decode = tracing::span("decode");
                add_span_tags!("interop.scenario" => rec.scenario.clone(), "decode.ratio" => 0.125f64);
                let s = rec.internal("decode", &db_id, KIND_INTERNAL);
                attr(s, "decode.ratio", Val::Double(0.125));
            }
        }
        {
            let _fail = tracing::span("fail");
            add_span_tags!(
                "interop.scenario" => rec.scenario.clone(),
                "error" => true,
                "error.message" => "boom: upstream said no",
                "http.response.status_code" => 502i64,
            );
            add_span_log_fields!("event" => "exception", "exception.type" => "Upstream", "exception.message" => "said no");
            let s = rec.internal("fail", &root_id, KIND_INTERNAL);
            s.status_code = STATUS_ERROR;
            s.status_message = "boom: upstream said no".into();
            attr(s, "http.response.status_code", Val::Int(502));
            event(
                s,
                "exception",
                &[
                    ("exception.type", "Upstream"),
                    ("exception.message", "said no"),
                ],
            );
        }
        {
            let _p = tracing::span("publish");
            add_span_tags!("span.kind" => "producer", "interop.scenario" => rec.scenario.clone());
            rec.internal("publish", &root_id, KIND_PRODUCER);
        }
        {
            let _c = tracing::span("consume");
            add_span_tags!("span.kind" => "consumer", "interop.scenario" => rec.scenario.clone());
            rec.internal("consume", &root_id, KIND_CONSUMER);
        }
        drop(root);

        // A continued trace: inbound traceparent + tracestate.
        let trace_id = random_hex(32, 1);
        let inbound_parent = random_hex(16, 2);
        let traceparent = format!("00-{trace_id}-{inbound_parent}-01");
        let tracestate = "vendor1=alpha,vendor2=beta";
        let options = StartTraceOptions::default()
            .continue_from_headers(Some(traceparent.as_bytes()), Some(tracestate.as_bytes()));
        let root = tracing::start_trace("continued", options);
        add_span_tags!("span.kind" => "server", "interop.scenario" => rec.scenario.clone());
        let s = rec.internal("continued", &inbound_parent, KIND_SERVER);
        assert_eq!(
            s.trace_id, trace_id,
            "the continued trace keeps its trace id"
        );
        assert_eq!(s.trace_state, tracestate);
        s.remote_parent = true;
        let root_id = s.span_id.clone();
        {
            let _child = tracing::span("continued.child");
            add_span_tags!("interop.scenario" => rec.scenario.clone(), "interop.flag" => false);
            let s = rec.internal("continued.child", &root_id, KIND_INTERNAL);
            attr(s, "interop.flag", Val::Bool(false));
        }
        drop(root);
    }

    /// User spans under two routings, one trace continued from inbound headers.
    fn user_traces(rec: &mut Recorder) {
        let root = user_tracing::start_user_trace("user.request", Tenant("alpha"), None);
        add_user_span_tags!(
            "span.kind" => "server",
            "interop.scenario" => rec.scenario.clone(),
            "user.str" => "hello",
            "user.bool" => true,
            "user.int" => 1234567890123i64,
            "user.float" => -0.5f64,
        );
        add_user_span_log_fields!("event" => "cache_miss", "key" => "user/42");
        let s = rec.user("user.request", "", KIND_SERVER, "alpha");
        attr(s, "user.str", Val::Str("hello".into()));
        attr(s, "user.bool", Val::Bool(true));
        attr(s, "user.int", Val::Int(1_234_567_890_123));
        attr(s, "user.float", Val::Double(-0.5));
        event(s, "cache_miss", &[("key", "user/42")]);
        let root_id = s.span_id.clone();
        {
            let _child = user_tracing::user_span("user.origin_fetch");
            add_user_span_tags!("span.kind" => "client", "interop.scenario" => rec.scenario.clone(), "error" => true, "error.message" => "origin timeout");
            let s = rec.user("user.origin_fetch", &root_id, KIND_CLIENT, "alpha");
            s.status_code = STATUS_ERROR;
            s.status_message = "origin timeout".into();
        }
        drop(root);

        let trace_id = random_hex(32, 3);
        let inbound_parent = random_hex(16, 4);
        let traceparent = format!("00-{trace_id}-{inbound_parent}-01");
        let tracestate = "customer=7,other=x";
        let root = user_tracing::start_user_trace_from_headers(
            "user.continued",
            Tenant("beta"),
            Some(traceparent.as_bytes()),
            Some(tracestate.as_bytes()),
        );
        add_user_span_tags!("interop.scenario" => rec.scenario.clone(), "user.tier" => "beta");
        let s = rec.user("user.continued", &inbound_parent, KIND_INTERNAL, "beta");
        assert_eq!(s.trace_id, trace_id);
        assert_eq!(s.trace_state, tracestate);
        s.remote_parent = true;
        attr(s, "user.tier", Val::Str("beta".into()));
        let root_id = s.span_id.clone();
        {
            let _child = user_tracing::user_span("user.continued.child");
            add_user_span_tags!("interop.scenario" => rec.scenario.clone());
            rec.user("user.continued.child", &root_id, KIND_INTERNAL, "beta");
        }
        drop(root);
    }

    /// ~3 MiB per pipeline in one flush: the exporters must split it into requests below
    /// the Collector's body limit.
    fn big_batches(rec: &mut Recorder) {
        let payload = "x".repeat(2048);
        for t in 0..30 {
            let root = tracing::start_trace("bulk", StartTraceOptions::default());
            add_span_tags!("interop.scenario" => rec.scenario.clone(), "bulk.trace" => t as i64);
            let s = rec.internal("bulk", "", KIND_INTERNAL);
            attr(s, "bulk.trace", Val::Int(t as i64));
            let root_id = s.span_id.clone();
            for c in 0..49 {
                let _child = tracing::span("bulk.child");
                add_span_tags!("interop.scenario" => rec.scenario.clone(), "bulk.payload" => payload.clone(), "bulk.child" => c as i64);
                let s = rec.internal("bulk.child", &root_id, KIND_INTERNAL);
                attr(s, "bulk.payload", Val::Str(payload.clone()));
                attr(s, "bulk.child", Val::Int(c as i64));
            }
            drop(root);

            let tenant = if t & 1 == 0 { "alpha" } else { "beta" };
            let root = user_tracing::start_user_trace("user.bulk", Tenant(tenant), None);
            add_user_span_tags!("interop.scenario" => rec.scenario.clone());
            let root_id = rec
                .user("user.bulk", "", KIND_INTERNAL, tenant)
                .span_id
                .clone();
            for _ in 0..49 {
                let _child = user_tracing::user_span("user.bulk.child");
                add_user_span_tags!("interop.scenario" => rec.scenario.clone(), "bulk.payload" => payload.clone());
                let s = rec.user("user.bulk.child", &root_id, KIND_INTERNAL, tenant);
                attr(s, "bulk.payload", Val::Str(payload.clone()));
            }
            drop(root);
        }
    }

    /// A root and a child in each pipeline.
    fn small_trace(rec: &mut Recorder, i: u64) {
        let root = tracing::start_trace("tick", StartTraceOptions::default());
        add_span_tags!("interop.scenario" => rec.scenario.clone(), "tick" => i as i64);
        let s = rec.internal("tick", "", KIND_INTERNAL);
        attr(s, "tick", Val::Int(i as i64));
        let root_id = s.span_id.clone();
        {
            let _child = tracing::span("tick.child");
            add_span_tags!("interop.scenario" => rec.scenario.clone());
            rec.internal("tick.child", &root_id, KIND_INTERNAL);
        }
        drop(root);

        let tenant = if i & 1 == 0 { "alpha" } else { "beta" };
        let root = user_tracing::start_user_trace("user.tick", Tenant(tenant), None);
        add_user_span_tags!("interop.scenario" => rec.scenario.clone());
        let root_id = rec
            .user("user.tick", "", KIND_INTERNAL, tenant)
            .span_id
            .clone();
        {
            let _child = user_tracing::user_span("user.tick.child");
            add_user_span_tags!("interop.scenario" => rec.scenario.clone());
            rec.user("user.tick.child", &root_id, KIND_INTERNAL, tenant);
        }
        drop(root);
    }
}

// =========================================================================================
// The test receiver: what the Collector forwards, via its otlp_http exporter.
// =========================================================================================

/// A span as forwarded, with what it was grouped under.
#[derive(Clone, Debug)]
struct Forwarded {
    span: Span,
    resource: Vec<KeyValue>,
    scope_name: String,
    scope_version: String,
}

#[derive(Default)]
struct Received {
    /// By (trace id, span id) in hex: every copy (retries may duplicate).
    spans: HashMap<(String, String), Vec<Forwarded>>,
    requests: u64,
    /// Header values seen from the Collector, for the report.
    user_agents: BTreeMap<String, u64>,
    encodings: BTreeMap<String, u64>,
    errors: Vec<String>,
}

type Store = Arc<Mutex<Received>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record(store: &Store, request: ExportTraceServiceRequest) {
    let mut received = store.lock().unwrap();
    received.requests += 1;
    for ResourceSpans {
        resource,
        scope_spans,
        ..
    } in request.resource_spans
    {
        let resource = resource.map(|r: Resource| r.attributes).unwrap_or_default();
        for ScopeSpans { scope, spans, .. } in scope_spans {
            let (scope_name, scope_version) =
                scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for span in spans {
                let key = (hex(&span.trace_id), hex(&span.span_id));
                received.spans.entry(key).or_default().push(Forwarded {
                    span,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                });
            }
        }
    }
}

async fn handle(
    store: Store,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (user_agent, encoding, content_type) = (
        header("user-agent"),
        header("content-encoding"),
        header("content-type"),
    );
    if request.uri().path() != "/v1/traces" || content_type != "application/x-protobuf" {
        let message = format!(
            "unexpected request {} {} ({content_type})",
            request.method(),
            request.uri()
        );
        store.lock().unwrap().errors.push(message.clone());
        return Ok(reply(StatusCode::BAD_REQUEST, message.into_bytes()));
    }
    let body = match Limited::new(request.into_body(), 256 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, e.to_string().into_bytes())),
    };
    let body = match encoding.as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            if let Err(e) = GzDecoder::new(&body[..]).read_to_end(&mut out) {
                return Ok(reply(StatusCode::BAD_REQUEST, e.to_string().into_bytes()));
            }
            out
        }
        other => {
            let message = format!("unsupported content-encoding {other}");
            store.lock().unwrap().errors.push(message.clone());
            return Ok(reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message.into_bytes(),
            ));
        }
    };
    match ExportTraceServiceRequest::decode(&body[..]) {
        Ok(decoded) => {
            {
                let mut received = store.lock().unwrap();
                *received.user_agents.entry(user_agent).or_default() += 1;
                let encoding = if encoding.is_empty() {
                    "identity".into()
                } else {
                    encoding
                };
                *received.encodings.entry(encoding).or_default() += 1;
            }
            record(&store, decoded);
            let mut response = reply(
                StatusCode::OK,
                ExportTraceServiceResponse::default().encode_to_vec(),
            );
            response.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("application/x-protobuf"),
            );
            Ok(response)
        }
        Err(e) => {
            let message = format!("undecodable body: {e}");
            store.lock().unwrap().errors.push(message.clone());
            Ok(reply(StatusCode::BAD_REQUEST, message.into_bytes()))
        }
    }
}

fn start_receiver(addr: SocketAddr) -> Result<Store, String> {
    let store: Store = Arc::default();
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let served = store.clone();
    thread::Builder::new()
        .name("test-receiver".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let store = served.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| handle(store.clone(), request));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(store)
}

// =========================================================================================
// Checker.
// =========================================================================================

mod checker {
    use super::*;

    const ALL_SCENARIOS: [&str; 10] = [
        "tcp",
        "unix",
        "gzip",
        "split",
        "limit",
        "restart",
        "grpc",
        "grpc_gzip",
        "grpc_split",
        "grpc_restart",
    ];

    pub fn run(setup: &Setup) -> ExitCode {
        // Never hang CI: the whole check is bounded.
        thread::spawn(|| {
            thread::sleep(Duration::from_secs(240));
            eprintln!("interop: FAILED: the checker ran for over 240 s");
            std::process::exit(3);
        });
        let store = match start_receiver(setup.receiver) {
            Ok(store) => store,
            Err(message) => {
                eprintln!("interop: test receiver: {message}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(message) = wait_ready(setup, Duration::from_secs(30)) {
            eprintln!("interop: {message}");
            return ExitCode::FAILURE;
        }

        let mut passed = 0;
        let mut failed = 0;
        println!("== probes: what the Collector's OTLP/HTTP receiver enforces");
        match probes(setup) {
            Ok(()) => passed += 1,
            Err(problems) => {
                failed += 1;
                for p in problems {
                    println!("   FAIL {p}");
                }
            }
        }
        let wanted: Vec<String> = env::var("INTEROP_SCENARIOS")
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_else(|_| ALL_SCENARIOS.iter().map(|s| s.to_string()).collect());
        for scenario in ALL_SCENARIOS
            .iter()
            .filter(|s| wanted.iter().any(|w| w == *s))
        {
            let started = Instant::now();
            println!("== scenario {scenario}");
            match run_scenario(setup, &store, scenario) {
                Ok(summary) => {
                    passed += 1;
                    println!(
                        "   ok ({:.1} s): {summary}",
                        started.elapsed().as_secs_f64()
                    );
                }
                Err(problems) => {
                    failed += 1;
                    for p in problems.iter().take(40) {
                        println!("   FAIL {p}");
                    }
                    if problems.len() > 40 {
                        println!("   ... and {} more", problems.len() - 40);
                    }
                }
            }
        }
        {
            let received = store.lock().unwrap();
            println!(
                "== the Collector forwarded {} requests; User-Agent {:?}; Content-Encoding {:?}",
                received.requests, received.user_agents, received.encodings
            );
            for e in &received.errors {
                println!("   test receiver refused: {e}");
            }
        }
        println!("interop: {passed} passed, {failed} failed");
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn wait_ready(setup: &Setup, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let tcp = TcpStream::connect_timeout(&setup.otlp_http, Duration::from_secs(1)).is_ok()
                && TcpStream::connect_timeout(&setup.otlp_grpc, Duration::from_secs(1)).is_ok();
            let uds = UnixStream::connect(&setup.user_socket).is_ok()
                && UnixStream::connect(&setup.internal_socket).is_ok();
            if tcp && uds {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the Collector is not listening after {limit:?} (tcp ready: {tcp}, unix sockets ready: {uds})"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    // ---- Probes ------------------------------------------------------------------------

    enum Target<'a> {
        Tcp(SocketAddr),
        Unix(&'a Path),
    }

    /// Sends raw bytes, returns the status code of the answer and the start of its body.
    fn raw(target: &Target<'_>, head: &str, body: &[u8]) -> Result<(u16, String), String> {
        fn exchange<S: Read + Write>(
            mut stream: S,
            head: &str,
            body: &[u8],
        ) -> Result<(u16, String), String> {
            let mut request = head.as_bytes().to_vec();
            request.extend_from_slice(body);
            // The server may answer (and close) before it read the whole body.
            let _ = stream.write_all(&request);
            // `Connection: close`: read to the end (bounded by the read timeout and size).
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while answer.len() < 64 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(_) if !answer.is_empty() => break,
                    Err(e) => return Err(format!("reading the answer: {e}")),
                }
            }
            let text = String::from_utf8_lossy(&answer);
            let code = text
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| format!("no status line in {text:?}"))?;
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let raw_body = answer
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(&answer[..0], |at| &answer[at + 4..]);
            // Protobuf answers: a google.rpc.Status (field 2: message) for errors, an
            // ExportTraceServiceResponse for a 200.
            let body: String = if body.chars().all(|c| !c.is_control() || c == '\n') {
                body.trim().chars().take(100).collect()
            } else if let Some(message) = rpc_status_message(raw_body) {
                format!(
                    "(protobuf Status) {}",
                    message.chars().take(100).collect::<String>()
                )
            } else {
                format!(
                    "(protobuf, {} bytes: {})",
                    raw_body.len(),
                    hex(&raw_body[..raw_body.len().min(16)])
                )
            };
            Ok((code, body))
        }
        let timeout = Some(Duration::from_secs(5));
        match target {
            Target::Tcp(addr) => {
                let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                s.set_read_timeout(timeout).ok();
                s.set_write_timeout(timeout).ok();
                exchange(s, head, body)
            }
            Target::Unix(path) => {
                let s = UnixStream::connect(path).map_err(|e| e.to_string())?;
                s.set_read_timeout(timeout).ok();
                s.set_write_timeout(timeout).ok();
                exchange(s, head, body)
            }
        }
    }

    /// What to send, where, and the statuses SPEC-NOTES says the Collector answers.
    type Probe<'a> = (&'a str, &'a Target<'a>, String, &'a [u8], &'a [u16]);

    /// The `message` (field 2) of a protobuf `google.rpc.Status`, if `bytes` is one.
    fn rpc_status_message(bytes: &[u8]) -> Option<String> {
        fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
            let mut value = 0u64;
            for shift in (0..64).step_by(7) {
                let byte = *bytes.get(*at)?;
                *at += 1;
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return Some(value);
                }
            }
            None
        }
        let mut at = 0;
        let mut message = None;
        while at < bytes.len() {
            let key = varint(bytes, &mut at)?;
            match key & 7 {
                0 => {
                    varint(bytes, &mut at)?;
                }
                2 => {
                    let len = varint(bytes, &mut at)? as usize;
                    let field = bytes.get(at..at + len)?;
                    at += len;
                    if key >> 3 == 2 {
                        message = Some(String::from_utf8(field.to_vec()).ok()?);
                    }
                }
                _ => return None,
            }
        }
        message
    }

    fn probe_request(attribute_bytes: usize) -> Vec<u8> {
        let span = Span {
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            name: "probe".into(),
            kind: 1,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue {
                key: "probe.payload".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("p".repeat(attribute_bytes))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("interop-probe".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn head(
        method: &str,
        host: Option<&str>,
        content_type: &str,
        encoding: Option<&str>,
        len: usize,
    ) -> String {
        let mut h = format!("{method} /v1/traces HTTP/1.1\r\n");
        if let Some(host) = host {
            h.push_str(&format!("Host: {host}\r\n"));
        }
        h.push_str(&format!("Content-Type: {content_type}\r\n"));
        if let Some(encoding) = encoding {
            h.push_str(&format!("Content-Encoding: {encoding}\r\n"));
        }
        h.push_str(&format!(
            "Content-Length: {len}\r\nConnection: close\r\n\r\n"
        ));
        h
    }

    /// What the receiver does with requests foundations must (or must never) send. Each
    /// line is printed; a probe whose answer differs from what SPEC-NOTES says fails.
    fn probes(setup: &Setup) -> Result<(), Vec<String>> {
        let tcp = Target::Tcp(setup.otlp_http);
        let uds = Target::Unix(&setup.user_socket);
        let small = probe_request(16);
        let mut gz = GzEncoder::new(Vec::new(), GzLevel::default());
        gz.write_all(&small).unwrap();
        let gzipped = gz.finish().unwrap();
        let over = probe_request(setup.body_limit + setup.body_limit / 2);
        // Tiny on the wire, over the limit once decompressed.
        let mut gz = GzEncoder::new(Vec::new(), GzLevel::default());
        gz.write_all(&over).unwrap();
        let over_gzipped = gz.finish().unwrap();
        let pb = "application/x-protobuf";
        let cases: Vec<Probe<'_>> = vec![
            (
                "valid request over TCP",
                &tcp,
                head("POST", Some("127.0.0.1"), pb, None, small.len()),
                &small,
                &[200],
            ),
            (
                "valid request over the Unix socket, Host: localhost",
                &uds,
                head("POST", Some("localhost"), pb, None, small.len()),
                &small,
                &[200],
            ),
            (
                "no Host header (Unix socket)",
                &uds,
                head("POST", None, pb, None, small.len()),
                &small,
                &[400],
            ),
            (
                "media type with a parameter",
                &tcp,
                head(
                    "POST",
                    Some("127.0.0.1"),
                    "application/x-protobuf; charset=binary",
                    None,
                    small.len(),
                ),
                &small,
                &[200],
            ),
            (
                "media type text/plain",
                &tcp,
                head("POST", Some("127.0.0.1"), "text/plain", None, small.len()),
                &small,
                &[415],
            ),
            (
                "GET",
                &tcp,
                head("GET", Some("127.0.0.1"), pb, None, 0),
                b"",
                &[405],
            ),
            (
                "Content-Encoding: gzip",
                &tcp,
                head("POST", Some("127.0.0.1"), pb, Some("gzip"), gzipped.len()),
                &gzipped,
                &[200],
            ),
            (
                "Content-Encoding: br",
                &tcp,
                head("POST", Some("127.0.0.1"), pb, Some("br"), small.len()),
                &small,
                &[400],
            ),
            (
                "body 1.5x max_request_body_size",
                &tcp,
                head("POST", Some("127.0.0.1"), pb, None, over.len()),
                &over,
                &[400, 413],
            ),
            (
                "gzip body under the limit, 1.5x over it decompressed",
                &tcp,
                head(
                    "POST",
                    Some("127.0.0.1"),
                    pb,
                    Some("gzip"),
                    over_gzipped.len(),
                ),
                &over_gzipped,
                &[400, 413],
            ),
            (
                "empty ExportTraceServiceRequest",
                &tcp,
                head("POST", Some("127.0.0.1"), pb, None, 0),
                b"",
                &[200],
            ),
        ];
        let mut problems = Vec::new();
        for (what, target, head, body, expected) in cases {
            match raw(target, &head, body) {
                Ok((code, text)) if expected.contains(&code) => {
                    println!("   {what}: {code} {text}")
                }
                Ok((code, text)) => problems.push(format!(
                    "probe {what}: answered {code} {text}, expected {expected:?}"
                )),
                Err(e) => problems.push(format!("probe {what}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    // ---- Scenarios ---------------------------------------------------------------------

    fn run_scenario(setup: &Setup, store: &Store, scenario: &str) -> Result<String, Vec<String>> {
        let result_file = setup.work.join(format!("result-{scenario}.json"));
        let _ = fs::remove_file(&result_file);
        let exe = env::current_exe().map_err(|e| vec![e.to_string()])?;
        let mut child = Command::new(exe)
            .arg("produce")
            .arg(scenario)
            .arg(&result_file)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| vec![format!("spawning the producer: {e}")])?;

        let mut restart_note = String::new();
        if scenario.ends_with("restart") {
            // Let spans flow, then stop the Collector; run.sh's supervisor starts it again
            // after a gap, during which both exporters must retry.
            thread::sleep(Duration::from_millis(1500));
            match restart_collector(setup) {
                Ok(note) => restart_note = note,
                Err(e) => {
                    let _ = child.kill();
                    return Err(vec![e]);
                }
            }
        }

        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(vec!["the producer ran for over 120 s".into()]);
                }
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(vec![e.to_string()]),
            }
        };
        if !status.success() {
            return Err(vec![format!("the producer failed: {status}")]);
        }
        let result: ProducerResult = fs::read(&result_file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
            .map_err(|e| vec![format!("reading {}: {e}", result_file.display())])?;

        let mut problems = Vec::new();
        if scenario == "limit" {
            return check_refused(store, &result);
        }
        check_stats(&result, &mut problems);
        if scenario.ends_with("split") {
            // Each pipeline sent ~3 MiB: that is more than a few requests under the limit.
            for (pipeline, stats) in [("internal", &result.internal), ("user", &result.user)] {
                if stats.requests < 6 {
                    problems.push(format!(
                        "{pipeline}: {} requests for {} bytes: the batch was not split",
                        stats.requests, stats.bytes_sent
                    ));
                }
            }
        }
        if scenario.ends_with("restart") {
            for (pipeline, stats) in [("internal", &result.internal), ("user", &result.user)] {
                if stats.retries == 0 {
                    problems.push(format!(
                        "{pipeline}: no retry during the Collector's restart: the restart did not test anything"
                    ));
                }
            }
        }
        let duplicates = wait_and_compare(store, &result, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let span_counts = |pipeline: &str| {
            result
                .spans
                .iter()
                .filter(|s| s.pipeline == pipeline)
                .count()
        };
        Ok(format!(
            "{} internal + {} user spans arrived intact; internal: {} requests, {} retries, {} bytes; user: {} requests, {} retries, {} bytes{}{}",
            span_counts("internal"),
            span_counts("user"),
            result.internal.requests,
            result.internal.retries,
            result.internal.bytes_sent,
            result.user.requests,
            result.user.retries,
            result.user.bytes_sent,
            if duplicates > 0 {
                format!("; {duplicates} spans forwarded twice (retried after a lost answer)")
            } else {
                String::new()
            },
            restart_note,
        ))
    }

    fn restart_collector(setup: &Setup) -> Result<String, String> {
        let read_pid = || {
            fs::read_to_string(&setup.pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        let old = read_pid().ok_or("no Collector pid to restart")?;
        let killed = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(old.to_string())
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM {old} failed"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_pid() == Some(old) || wait_ready(setup, Duration::from_millis(0)).is_err() {
            if Instant::now() > deadline {
                return Err("the Collector did not come back within 30 s".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(format!(
            "; Collector {old} stopped and back as {} after {:.1} s",
            read_pid().unwrap_or(0),
            killed.elapsed().as_secs_f64()
        ))
    }

    /// Scenario `limit`: every request was over the body limit. Each must have been refused
    /// (400, final: counted as rejected, not retried) and nothing forwarded.
    fn check_refused(store: &Store, result: &ProducerResult) -> Result<String, Vec<String>> {
        let mut problems = Vec::new();
        for (pipeline, stats) in [("internal", &result.internal), ("user", &result.user)] {
            let made = result
                .spans
                .iter()
                .filter(|s| s.pipeline == pipeline)
                .count() as u64;
            if stats.dropped_rejected != made || stats.exported != 0 || stats.retries != 0 {
                problems.push(format!(
                    "{pipeline}: {made} spans in requests over the limit, expected all rejected \
                     without retries: {stats:?}"
                ));
            }
        }
        thread::sleep(Duration::from_millis(500));
        let received = store.lock().unwrap();
        let arrived = result
            .spans
            .iter()
            .filter(|s| {
                received
                    .spans
                    .contains_key(&(s.trace_id.clone(), s.span_id.clone()))
            })
            .count();
        if arrived != 0 {
            problems.push(format!(
                "{arrived} spans of refused requests were forwarded"
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(format!(
            "requests over the limit refused as expected: internal {} requests, {} spans \
             rejected; user {} requests, {} spans rejected; 0 retries",
            result.internal.requests,
            result.internal.dropped_rejected,
            result.user.requests,
            result.user.dropped_rejected
        ))
    }

    fn check_stats(result: &ProducerResult, problems: &mut Vec<String>) {
        if !result.flushed {
            problems.push("shutdown did not flush before its deadline".into());
        }
        for (pipeline, stats) in [("internal", &result.internal), ("user", &result.user)] {
            let made = result
                .spans
                .iter()
                .filter(|s| s.pipeline == pipeline)
                .count() as u64;
            if stats.dropped != 0 {
                problems.push(format!("{pipeline} exporter dropped spans: {stats:?}"));
            }
            if stats.exported != made || stats.queued != made {
                problems.push(format!(
                    "{pipeline}: made {made} spans, queued {}, exported {}",
                    stats.queued, stats.exported
                ));
            }
        }
    }

    /// Waits (bounded) for every expected span, then compares each. Returns how many spans
    /// arrived more than once.
    fn wait_and_compare(
        store: &Store,
        result: &ProducerResult,
        problems: &mut Vec<String>,
    ) -> usize {
        let key = |s: &ExpectedSpan| (s.trace_id.clone(), s.span_id.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let missing = {
                let received = store.lock().unwrap();
                result
                    .spans
                    .iter()
                    .filter(|s| !received.spans.contains_key(&key(s)))
                    .count()
            };
            if missing == 0 {
                break;
            }
            if Instant::now() > deadline {
                problems.push(format!(
                    "{missing} of {} spans never arrived through the Collector",
                    result.spans.len()
                ));
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }

        let received = store.lock().unwrap();
        let mut duplicates = 0;
        let mut by_trace: HashMap<&str, Vec<&ExpectedSpan>> = HashMap::new();
        for expected in &result.spans {
            by_trace
                .entry(&expected.trace_id)
                .or_default()
                .push(expected);
            let Some(copies) = received.spans.get(&key(expected)) else {
                continue;
            };
            if copies.len() > 1 {
                duplicates += 1;
            }
            for copy in copies {
                compare(expected, copy, problems);
            }
        }
        // Trees complete: every parent is in the trace, except the inbound one of a
        // continued root, and exactly one root.
        for (trace, spans) in by_trace {
            let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
            let roots = spans
                .iter()
                .filter(|s| s.parent_span_id.is_empty() || s.remote_parent)
                .count();
            if roots != 1 {
                problems.push(format!("trace {trace}: {roots} roots"));
            }
            for s in spans {
                if !s.parent_span_id.is_empty()
                    && !s.remote_parent
                    && !ids.contains(&s.parent_span_id.as_str())
                {
                    problems.push(format!(
                        "trace {trace}: {} has a parent outside the trace",
                        s.name
                    ));
                }
            }
        }
        duplicates
    }

    fn value(kv: &KeyValue) -> Option<Val> {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(Val::Str(s.clone())),
            any_value::Value::BoolValue(b) => Some(Val::Bool(*b)),
            any_value::Value::IntValue(i) => Some(Val::Int(*i)),
            any_value::Value::DoubleValue(d) => Some(Val::Double(*d)),
            _ => None,
        }
    }

    fn compare(expected: &ExpectedSpan, got: &Forwarded, problems: &mut Vec<String>) {
        let who = format!(
            "{} span {:?} ({})",
            expected.pipeline, expected.name, expected.span_id
        );
        let mut differ = |field: &str, want: String, have: String| {
            if want != have {
                problems.push(format!("{who}: {field} {have:?}, expected {want:?}"));
            }
        };
        let span = &got.span;
        differ("name", expected.name.clone(), span.name.clone());
        differ(
            "parent_span_id",
            expected.parent_span_id.clone(),
            hex(&span.parent_span_id),
        );
        differ("kind", expected.kind.to_string(), span.kind.to_string());
        let (code, message) = span
            .status
            .as_ref()
            .map(|s| (s.code, s.message.clone()))
            .unwrap_or_default();
        differ(
            "status.code",
            expected.status_code.to_string(),
            code.to_string(),
        );
        differ("status.message", expected.status_message.clone(), message);
        differ(
            "trace_state",
            expected.trace_state.clone(),
            span.trace_state.clone(),
        );
        let attributes: BTreeMap<String, Val> = span
            .attributes
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), value(kv)?)))
            .collect();
        if attributes != expected.attributes {
            let shorten = |m: &BTreeMap<String, Val>| {
                m.iter()
                    .map(|(k, v)| {
                        let v = format!("{v:?}");
                        format!(
                            "{k}={}",
                            if v.len() > 60 {
                                format!("{}…", &v[..60])
                            } else {
                                v
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            differ(
                "attributes",
                shorten(&expected.attributes),
                shorten(&attributes),
            );
        }
        let events: Vec<(String, BTreeMap<String, String>)> = span
            .events
            .iter()
            .map(|e| {
                let attrs = e
                    .attributes
                    .iter()
                    .map(|kv| match value(kv) {
                        Some(Val::Str(s)) => (kv.key.clone(), s),
                        other => (kv.key.clone(), format!("non-string {other:?}")),
                    })
                    .collect();
                (e.name.clone(), attrs)
            })
            .collect();
        differ(
            "events",
            format!("{:?}", expected.events),
            format!("{events:?}"),
        );
        if span.start_time_unix_nano == 0 || span.end_time_unix_nano < span.start_time_unix_nano {
            differ(
                "times",
                "0 < start <= end".into(),
                format!("{}..{}", span.start_time_unix_nano, span.end_time_unix_nano),
            );
        }
        for e in &span.events {
            if e.time_unix_nano < span.start_time_unix_nano
                || e.time_unix_nano > span.end_time_unix_nano
            {
                differ(
                    "event time",
                    "within the span".into(),
                    e.time_unix_nano.to_string(),
                );
            }
        }
        // flags: the W3C flags (bits 0-7), "has is_remote" (0x100), "parent is remote" (0x200).
        if expected.w3c_flags & 1 == 0 {
            differ(
                "w3c flags",
                "sampled".into(),
                format!("{:#x}", expected.w3c_flags),
            );
        }
        let want_flags =
            expected.w3c_flags | 0x100 | if expected.remote_parent { 0x200 } else { 0 };
        differ(
            "flags",
            format!("{want_flags:#x}"),
            format!("{:#x}", span.flags & 0x3ff),
        );
        let resource: BTreeMap<String, Val> = got
            .resource
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), value(kv)?)))
            .collect();
        differ(
            "resource service.name",
            format!("{:?}", Some(Val::Str(expected.service.clone()))),
            format!("{:?}", resource.get("service.name")),
        );
        if expected.pipeline == "internal" {
            differ(
                "resource interop.scenario",
                format!("{:?}", expected.attributes.get("interop.scenario")),
                format!("{:?}", resource.get("interop.scenario")),
            );
        }
        differ("scope.name", "foundations".into(), got.scope_name.clone());
        differ(
            "scope.version",
            env!("CARGO_PKG_VERSION").into(),
            got.scope_version.clone(),
        );
    }
}
