//! A trace-sink: an OTLP/HTTP receiver on a Unix domain socket that shows what the user
//! pipeline exported.
//!
//! [`TraceSink::start`] binds a Unix socket and serves `POST /v1/traces` (body an
//! `ExportTraceServiceRequest` as `application/x-protobuf`, optionally `Content-Encoding:
//! gzip`) on its own thread and Tokio runtime, so sync and async code can both use it. The
//! spans it receives are grouped into traces by trace id, each span tagged with the value
//! of the routing header (`cf-trace-config` by default) of the request that carried it.
//!
//! # HTTP behaviour
//!
//! | request                                        | answer                                      |
//! |------------------------------------------------|---------------------------------------------|
//! | a path other than `/v1/traces`                 | `404`                                       |
//! | a method other than `POST`                     | `405` with `Allow: POST`                    |
//! | a content type other than `application/x-protobuf` | `415` (OTLP JSON is not supported)      |
//! | a content encoding other than `gzip`/`identity` | `415`                                      |
//! | a body over [`SinkOptions::max_body_bytes`] (before or after gunzip) | `413`                 |
//! | a body that is not valid gzip or not a valid `ExportTraceServiceRequest` | `400` with a text message |
//! | anything else                                  | `200` with an `ExportTraceServiceResponse`  |
//!
//! Spans with a malformed id (trace id not 16 bytes or all zero, span id not 8 bytes or all
//! zero, parent id neither empty nor 8 bytes) are not kept: the `200` answer then carries a
//! `partial_success` counting them, with a message naming the first few.
//!
//! # When a trace is printed
//!
//! A receiver cannot know when a trace is complete. The sink prints a trace once no new span
//! of it has arrived for [`SinkOptions::quiet_period`] (300 ms by default), or at once on
//! [`TraceSink::flush`] and when the sink stops. If more spans of a trace arrive after it was
//! printed, the whole trace is printed again, preceded by an `(update: …)` line.
//!
//! Printing means: the [`render_waterfall`] text goes to [`SinkOptions::waterfall_output`]
//! and one JSON object per newly printed span goes to [`SinkOptions::json_output`] (JSON
//! lines, see [`ReceivedSpan::to_json`] for the fields). Both outputs are optional; with
//! neither, the sink only collects (see [`TraceSink::traces`]).
//!
//! # Memory
//!
//! Every trace is kept for [`TraceSink::traces`] until more than
//! [`SinkOptions::max_retained_traces`] are held; then the oldest already printed traces are
//! forgotten.
//!
//! The command-line front end is the `trace-sink` example; [`cli`] parses its arguments.

pub mod cli;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The only path the sink serves.
pub const TRACES_PATH: &str = "/v1/traces";
/// The default name of the header that carries a request's routing.
pub const DEFAULT_ROUTING_HEADER: &str = "cf-trace-config";
/// The default limit on a request body, before and after decompression: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// OTLP span flag: whether the parent is remote is known.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag: the parent is remote.
const FLAG_IS_REMOTE: u32 = 0x200;
/// How wide the name column of a waterfall may grow before names are cut.
const MAX_LABEL_CHARS: usize = 60;
/// How many rejected spans a `partial_success` message names.
const REJECTIONS_NAMED: usize = 3;

/// How a [`TraceSink`] behaves and where it prints.
pub struct SinkOptions {
    /// The request header whose value is recorded as the routing of the spans the request
    /// carries. Default: `cf-trace-config`.
    pub routing_header: String,
    /// A trace is printed once no new span of it arrived for this long. Default: 300 ms.
    pub quiet_period: Duration,
    /// Width in characters of the waterfall bars (at least 1). Default: 60.
    pub width: usize,
    /// Largest accepted request body, before and after gunzip. Default: 64 MiB.
    pub max_body_bytes: usize,
    /// Traces kept for [`TraceSink::traces`]; beyond it the oldest printed ones are dropped.
    /// Default: 10 000.
    pub max_retained_traces: usize,
    /// Where waterfalls are written. Default: nowhere.
    pub waterfall_output: Option<Box<dyn Write + Send>>,
    /// Where JSON lines (one object per span) are written. Default: nowhere.
    pub json_output: Option<Box<dyn Write + Send>>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            routing_header: DEFAULT_ROUTING_HEADER.to_owned(),
            quiet_period: Duration::from_millis(300),
            width: 60,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_retained_traces: 10_000,
            waterfall_output: None,
            json_output: None,
        }
    }
}

impl fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkOptions")
            .field("routing_header", &self.routing_header)
            .field("quiet_period", &self.quiet_period)
            .field("width", &self.width)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_retained_traces", &self.max_retained_traces)
            .field("waterfall_output", &self.waterfall_output.is_some())
            .field("json_output", &self.json_output.is_some())
            .finish()
    }
}

impl SinkOptions {
    /// Prints waterfalls to standard output.
    pub fn print_to_stdout(self) -> Self {
        self.waterfall_to(io::stdout())
    }

    /// Writes waterfalls to `writer`.
    pub fn waterfall_to(mut self, writer: impl Write + Send + 'static) -> Self {
        self.waterfall_output = Some(Box::new(writer));
        self
    }

    /// Writes JSON lines to `writer`.
    pub fn json_to(mut self, writer: impl Write + Send + 'static) -> Self {
        self.json_output = Some(Box::new(writer));
        self
    }

    /// Writes JSON lines to the file at `path`, created or truncated now.
    pub fn json_file(self, path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = fs::File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(self.json_to(io::BufWriter::new(file)))
    }

    /// Sets [`SinkOptions::quiet_period`].
    pub fn with_quiet_period(mut self, quiet_period: Duration) -> Self {
        self.quiet_period = quiet_period;
        self
    }

    /// Sets [`SinkOptions::width`].
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Sets [`SinkOptions::routing_header`].
    pub fn with_routing_header(mut self, name: impl Into<String>) -> Self {
        self.routing_header = name.into();
        self
    }

    /// Sets [`SinkOptions::max_body_bytes`].
    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

/// A span's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpanStatus {
    /// No status set (OTLP code 0).
    Unset,
    /// Explicitly ok (OTLP code 1).
    Ok,
    /// Failed (OTLP code 2), with the status message (possibly empty).
    Error(String),
}

impl SpanStatus {
    /// `"unset"`, `"ok"` or `"error"`.
    pub fn code(&self) -> &'static str {
        match self {
            SpanStatus::Unset => "unset",
            SpanStatus::Ok => "ok",
            SpanStatus::Error(_) => "error",
        }
    }

    /// Whether the span failed.
    pub fn is_error(&self) -> bool {
        matches!(self, SpanStatus::Error(_))
    }
}

/// As shown in a waterfall: `ok` (for unset and ok), `error` or `error: <message>`.
impl fmt::Display for SpanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpanStatus::Unset | SpanStatus::Ok => f.write_str("ok"),
            SpanStatus::Error(message) if message.is_empty() => f.write_str("error"),
            SpanStatus::Error(message) => write!(f, "error: {message}"),
        }
    }
}

/// An event of a received span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedEvent {
    /// The event name.
    pub name: String,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Attributes, values rendered as strings, in wire order.
    pub attributes: Vec<(String, String)>,
}

/// A link of a received span to another span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLink {
    /// Lowercase hex of the linked span's 16-byte trace id.
    pub trace_id: String,
    /// Lowercase hex of the linked span's 8-byte span id.
    pub span_id: String,
    /// Attributes, values rendered as strings, in wire order.
    pub attributes: Vec<(String, String)>,
}

/// A span as the sink received it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// Lowercase hex of the 16-byte trace id.
    pub trace_id: String,
    /// Lowercase hex of the 8-byte span id.
    pub span_id: String,
    /// Lowercase hex of the 8-byte parent span id; `None` for a root.
    pub parent_span_id: Option<String>,
    /// The span name.
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer`, `unspecified` or `kind(<n>)`.
    pub kind: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The status.
    pub status: SpanStatus,
    /// The OTLP flags (W3C flags in bits 0–7, `0x100`, `0x200`).
    pub flags: u32,
    /// Attributes, values rendered as strings, in wire order.
    pub attributes: Vec<(String, String)>,
    /// Events, in wire order.
    pub events: Vec<ReceivedEvent>,
    /// Links to other spans, in wire order.
    pub links: Vec<ReceivedLink>,
    /// Links the sender dropped (over its limit).
    pub dropped_links_count: u32,
    /// The routing header value of the request that carried the span.
    pub routing: Option<String>,
    /// The `service.name` resource attribute of the request (`unknown_service` if absent).
    pub service_name: String,
}

impl ReceivedSpan {
    /// The duration in nanoseconds (0 when the end precedes the start).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }

    /// Whether the flags say the parent is remote (bit `0x200`).
    pub fn parent_is_remote(&self) -> bool {
        self.flags & FLAG_IS_REMOTE != 0
    }

    /// The first attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The span as one JSON object, as written to the JSON lines output:
    ///
    /// `trace_id`, `span_id`, `parent_span_id` (hex strings, `null` for no parent),
    /// `parent_is_remote`, `name`, `kind`, `start_unix_nanos`, `end_unix_nanos`,
    /// `duration_ms` (float), `status` (`"unset"`, `"ok"` or `"error"`), `status_message`
    /// (string for an error, else `null`), `attributes` (object of strings; the last of
    /// duplicate keys wins), `events` (list of `{name, time_unix_nanos, attributes}`),
    /// `links` (list of `{trace_id, span_id, attributes}`), `dropped_links_count`,
    /// `routing` (string or `null`) and `service_name`.
    pub fn to_json(&self) -> serde_json::Value {
        let status_message = match &self.status {
            SpanStatus::Error(message) => serde_json::Value::from(message.as_str()),
            _ => serde_json::Value::Null,
        };
        let events: Vec<serde_json::Value> = self
            .events
            .iter()
            .map(|event| {
                serde_json::json!({
                    "name": event.name,
                    "time_unix_nanos": event.time_unix_nanos,
                    "attributes": attributes_json(&event.attributes),
                })
            })
            .collect();
        serde_json::json!({
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "parent_is_remote": self.parent_is_remote(),
            "name": self.name,
            "kind": self.kind,
            "start_unix_nanos": self.start_unix_nanos,
            "end_unix_nanos": self.end_unix_nanos,
            "duration_ms": self.duration_nanos() as f64 / 1e6,
            "status": self.status.code(),
            "status_message": status_message,
            "attributes": attributes_json(&self.attributes),
            "events": events,
            "links": self
                .links
                .iter()
                .map(|link| serde_json::json!({
                    "trace_id": link.trace_id,
                    "span_id": link.span_id,
                    "attributes": attributes_json(&link.attributes),
                }))
                .collect::<Vec<_>>(),
            "dropped_links_count": self.dropped_links_count,
            "routing": self.routing,
            "service_name": self.service_name,
        })
    }
}

fn attributes_json(attributes: &[(String, String)]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect();
    serde_json::Value::Object(map)
}

/// The spans of one trace received so far, in arrival order.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedTrace {
    /// Lowercase hex of the trace id.
    pub trace_id: String,
    /// The spans, in arrival order.
    pub spans: Vec<ReceivedSpan>,
}

impl ReceivedTrace {
    /// The routing of the first span that had one.
    pub fn routing(&self) -> Option<&str> {
        self.spans.iter().find_map(|s| s.routing.as_deref())
    }

    /// Every distinct routing value of the trace's spans, in arrival order.
    pub fn routings(&self) -> Vec<&str> {
        distinct(self.spans.iter().filter_map(|s| s.routing.as_deref()))
    }

    /// Every distinct service name of the trace's spans, in arrival order.
    pub fn service_names(&self) -> Vec<&str> {
        distinct(self.spans.iter().map(|s| s.service_name.as_str()))
    }

    /// The first span named `name`.
    pub fn span(&self, name: &str) -> Option<&ReceivedSpan> {
        self.spans.iter().find(|s| s.name == name)
    }

    /// The earliest span start (0 for no spans).
    pub fn start_unix_nanos(&self) -> u64 {
        self.spans
            .iter()
            .map(|s| s.start_unix_nanos)
            .min()
            .unwrap_or(0)
    }

    /// The latest span end, never before [`ReceivedTrace::start_unix_nanos`].
    pub fn end_unix_nanos(&self) -> u64 {
        self.spans
            .iter()
            .map(|s| s.end_unix_nanos.max(s.start_unix_nanos))
            .max()
            .unwrap_or(0)
    }

    /// From the earliest start to the latest end.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos()
            .saturating_sub(self.start_unix_nanos())
    }
}

fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// Counters of a running sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Requests answered `200`.
    pub accepted_requests: u64,
    /// Requests answered with any other status.
    pub refused_requests: u64,
    /// Spans kept.
    pub spans: u64,
    /// Spans rejected for malformed ids (reported in `partial_success`).
    pub rejected_spans: u64,
}

/// An OTLP/HTTP receiver on a Unix socket; see the [module docs](self).
///
/// Stops when dropped or on [`TraceSink::stop`].
pub struct TraceSink {
    shared: Arc<Shared>,
    path: PathBuf,
    /// Device and inode of the socket file we bound, so we only ever remove our own.
    socket_file: Option<(u64, u64)>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceSink")
            .field("path", &self.path)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl TraceSink {
    /// Binds `socket_path` and starts serving on a thread of its own.
    ///
    /// A socket file left at `socket_path` by an earlier run (nothing accepts connections
    /// on it) is replaced; a live one is an `AddrInUse` error.
    pub fn start(socket_path: impl AsRef<Path>, options: SinkOptions) -> io::Result<TraceSink> {
        let path = socket_path.as_ref().to_owned();
        let routing_header =
            HeaderName::from_bytes(options.routing_header.as_bytes()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid routing header name {:?}", options.routing_header),
                )
            })?;
        let listener = bind(&path)?;
        let socket_file = fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        let started = Self::spawn(listener, &path, routing_header, options);
        if started.is_err() {
            remove_socket(&path, socket_file);
        }
        let (shared, shutdown, thread) = started?;
        Ok(TraceSink {
            shared,
            path,
            socket_file,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    #[allow(clippy::type_complexity)]
    fn spawn(
        listener: StdUnixListener,
        path: &Path,
        routing_header: HeaderName,
        options: SinkOptions,
    ) -> io::Result<(Arc<Shared>, oneshot::Sender<()>, JoinHandle<()>)> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            routing_header,
            quiet_period: options.quiet_period,
            width: options.width.max(1),
            max_body_bytes: options.max_body_bytes,
            max_retained_traces: options.max_retained_traces,
            outputs: Mutex::new(Outputs {
                waterfall: options.waterfall_output,
                json: options.json_output,
            }),
            state: Mutex::new(State::default()),
            accepted_requests: AtomicU64::new(0),
            refused_requests: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            rejected_spans: AtomicU64::new(0),
        });
        let (shutdown, stop_signal) = oneshot::channel();
        let server_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("trace-sink {}", path.display()))
            .spawn(move || runtime.block_on(serve(listener, server_shared, stop_signal)))?;
        Ok((shared, shutdown, thread))
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Every trace received so far (printed or not), in order of first arrival.
    pub fn traces(&self) -> Vec<ReceivedTrace> {
        lock(&self.shared.state)
            .traces
            .values()
            .map(|entry| entry.trace.clone())
            .collect()
    }

    /// The trace with this (lowercase hex) id.
    pub fn trace(&self, trace_id: &str) -> Option<ReceivedTrace> {
        let state = lock(&self.shared.state);
        let seq = state.by_id.get(trace_id)?;
        state.traces.get(seq).map(|entry| entry.trace.clone())
    }

    /// Every span received so far, in arrival order per trace.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.traces().into_iter().flat_map(|t| t.spans).collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> SinkStats {
        SinkStats {
            accepted_requests: self.shared.accepted_requests.load(Ordering::SeqCst),
            refused_requests: self.shared.refused_requests.load(Ordering::SeqCst),
            spans: self.shared.spans.load(Ordering::SeqCst),
            rejected_spans: self.shared.rejected_spans.load(Ordering::SeqCst),
        }
    }

    /// Blocks (sleeping, polling) until `predicate` holds for the received traces; returns
    /// whether it did before `timeout`. Don't call it on an async runtime's only thread.
    pub fn wait_until(
        &self,
        timeout: Duration,
        predicate: impl Fn(&[ReceivedTrace]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if predicate(&self.traces()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Prints every trace with unprinted spans now, whatever the quiet period.
    pub fn flush(&self) {
        emit(&self.shared, true);
    }

    /// Stops serving, prints what is pending (as [`TraceSink::flush`]) and removes the socket
    /// file. Collected traces stay readable. Calling it again does nothing.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = thread.join();
        emit(&self.shared, true);
        remove_socket(&self.path, self.socket_file);
    }
}

impl Drop for TraceSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind(path: &Path) -> io::Result<StdUnixListener> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    match StdUnixListener::bind(path) {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let is_socket = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
            let stale = is_socket
                && StdUnixStream::connect(path)
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused);
            if !stale {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: already in use (another process listens there, or it is not a socket)",
                        path.display()
                    ),
                ));
            }
            fs::remove_file(path).map_err(with_path)?;
            StdUnixListener::bind(path).map_err(with_path)
        }
        Err(e) => Err(with_path(e)),
    }
}

fn remove_socket(path: &Path, ours: Option<(u64, u64)>) {
    let current = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    if current.is_some() && current == ours {
        let _ = fs::remove_file(path);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    routing_header: HeaderName,
    quiet_period: Duration,
    width: usize,
    max_body_bytes: usize,
    max_retained_traces: usize,
    /// Locked before `state` when both are needed.
    outputs: Mutex<Outputs>,
    state: Mutex<State>,
    accepted_requests: AtomicU64,
    refused_requests: AtomicU64,
    spans: AtomicU64,
    rejected_spans: AtomicU64,
}

struct Outputs {
    waterfall: Option<Box<dyn Write + Send>>,
    json: Option<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    /// Trace id → key in `traces`.
    by_id: HashMap<String, u64>,
    /// Traces in order of first arrival.
    traces: BTreeMap<u64, Entry>,
}

struct Entry {
    trace: ReceivedTrace,
    last_span_at: Instant,
    /// How many of `trace.spans` were printed already.
    printed_spans: usize,
}

impl State {
    fn ingest(&mut self, spans: Vec<ReceivedSpan>) {
        let now = Instant::now();
        for span in spans {
            let seq = match self.by_id.get(&span.trace_id) {
                Some(&seq) => seq,
                None => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.by_id.insert(span.trace_id.clone(), seq);
                    self.traces.insert(
                        seq,
                        Entry {
                            trace: ReceivedTrace {
                                trace_id: span.trace_id.clone(),
                                spans: Vec::new(),
                            },
                            last_span_at: now,
                            printed_spans: 0,
                        },
                    );
                    seq
                }
            };
            if let Some(entry) = self.traces.get_mut(&seq) {
                entry.trace.spans.push(span);
                entry.last_span_at = now;
            }
        }
    }

    /// Forgets the oldest fully printed traces while more than `limit` are held.
    fn evict(&mut self, limit: usize) {
        while self.traces.len() > limit {
            let victim = self
                .traces
                .iter()
                .find(|(_, e)| e.printed_spans == e.trace.spans.len())
                .map(|(&seq, _)| seq);
            let Some(seq) = victim else { return };
            if let Some(entry) = self.traces.remove(&seq) {
                self.by_id.remove(&entry.trace.trace_id);
            }
        }
    }
}

/// Prints the traces that are due (all with unprinted spans when `force`).
fn emit(shared: &Shared, force: bool) {
    let mut outputs = lock(&shared.outputs);
    let due: Vec<(ReceivedTrace, usize)> = {
        let mut state = lock(&shared.state);
        let now = Instant::now();
        let mut due = Vec::new();
        for entry in state.traces.values_mut() {
            let pending = entry.trace.spans.len() > entry.printed_spans;
            let quiet = now.duration_since(entry.last_span_at) >= shared.quiet_period;
            if pending && (force || quiet) {
                due.push((entry.trace.clone(), entry.printed_spans));
                entry.printed_spans = entry.trace.spans.len();
            }
        }
        state.evict(shared.max_retained_traces);
        due
    };
    for (trace, already_printed) in due {
        if let Some(out) = outputs.waterfall.as_mut() {
            let mut text = String::new();
            if already_printed > 0 {
                text.push_str(&format!(
                    "(update: {} more span(s) of trace {} arrived after it was printed)\n",
                    trace.spans.len() - already_printed,
                    trace.trace_id
                ));
            }
            text.push_str(&render_waterfall(&trace, shared.width));
            text.push('\n');
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                eprintln!("trace-sink: cannot write a waterfall: {e}");
            }
        }
        if let Some(out) = outputs.json.as_mut() {
            let mut lines = Vec::new();
            for span in &trace.spans[already_printed..] {
                // Serializing a `Value` to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut lines, &span.to_json());
                lines.push(b'\n');
            }
            if let Err(e) = out.write_all(&lines).and_then(|()| out.flush()) {
                eprintln!("trace-sink: cannot write JSON lines: {e}");
            }
        }
    }
}

async fn serve(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let tick =
        (shared.quiet_period / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => emit(&shared, false),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let shared = Arc::clone(&shared);
                            async move {
                                Ok::<_, std::convert::Infallible>(handle(&shared, request).await)
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors and the like: don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let response = answer(shared, request).await;
    let counter = if response.status() == StatusCode::OK {
        &shared.accepted_requests
    } else {
        &shared.refused_requests
    };
    counter.fetch_add(1, Ordering::SeqCst);
    response
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != TRACES_PATH {
        return text(
            StatusCode::NOT_FOUND,
            format!("not found: this sink serves only POST {TRACES_PATH}"),
        );
    }
    if request.method() != Method::POST {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed: use POST", request.method()),
        );
        response
            .headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("POST"));
        return response;
    }
    let headers = request.headers();
    if !is_protobuf(headers) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type: expected application/x-protobuf (OTLP/HTTP JSON is not supported)",
        );
    }
    let gzip = match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"identity") => false,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") => true,
        Some(v) => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content encoding {:?}: use gzip or none",
                    String::from_utf8_lossy(v)
                ),
            );
        }
    };
    let limit = shared.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large(limit);
    }
    let routing = headers
        .get(&shared.routing_header)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let wire = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(limit),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    let plain = if gzip {
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(wire.as_ref())
            .take(limit as u64 + 1)
            .read_to_end(&mut out);
        if let Err(e) = read {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot gunzip the request body: {e}"),
            );
        }
        if out.len() > limit {
            return too_large(limit);
        }
        Bytes::from(out)
    } else {
        wire
    };
    let export = match ExportTraceServiceRequest::decode(plain) {
        Ok(export) => export,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot decode the body as an ExportTraceServiceRequest: {e}"),
            );
        }
    };
    let (spans, rejections) = convert(export, routing.as_deref());
    shared.spans.fetch_add(spans.len() as u64, Ordering::SeqCst);
    shared
        .rejected_spans
        .fetch_add(rejections.len() as u64, Ordering::SeqCst);
    lock(&shared.state).ingest(spans);
    let partial_success = (!rejections.is_empty()).then(|| {
        let mut message = format!("rejected {} span(s): ", rejections.len());
        message.push_str(
            &rejections
                .iter()
                .take(REJECTIONS_NAMED)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        );
        if rejections.len() > REJECTIONS_NAMED {
            message.push_str("; …");
        }
        ExportTracePartialSuccess {
            rejected_spans: rejections.len() as i64,
            error_message: message,
        }
    });
    let body = ExportTraceServiceResponse { partial_success }.encode_to_vec();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-protobuf"))
}

fn too_large(limit: usize) -> Response<Full<Bytes>> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over the limit of {limit} bytes"),
    )
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut body = message.into();
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The spans of a request, and a description of each span rejected for malformed ids.
fn convert(
    export: ExportTraceServiceRequest,
    routing: Option<&str>,
) -> (Vec<ReceivedSpan>, Vec<String>) {
    let mut spans = Vec::new();
    let mut rejections = Vec::new();
    for resource_spans in export.resource_spans {
        let service_name = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| any_value_string(kv.value.as_ref()))
            .unwrap_or_else(|| "unknown_service".to_owned());
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|ss| ss.spans)
        {
            match check_ids(&span) {
                Ok(()) => spans.push(received_span(span, routing, &service_name)),
                Err(problem) => rejections.push(format!("span {:?}: {problem}", span.name)),
            }
        }
    }
    (spans, rejections)
}

fn check_ids(span: &Span) -> Result<(), String> {
    let all_zero = |bytes: &[u8]| bytes.iter().all(|&b| b == 0);
    if span.trace_id.len() != 16 || all_zero(&span.trace_id) {
        return Err(format!(
            "trace_id must be 16 bytes, not all zero (got {:?})",
            hex(&span.trace_id)
        ));
    }
    if span.span_id.len() != 8 || all_zero(&span.span_id) {
        return Err(format!(
            "span_id must be 8 bytes, not all zero (got {:?})",
            hex(&span.span_id)
        ));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!(
            "parent_span_id must be empty or 8 bytes (got {:?})",
            hex(&span.parent_span_id)
        ));
    }
    Ok(())
}

fn received_span(span: Span, routing: Option<&str>, service_name: &str) -> ReceivedSpan {
    let status = match span.status {
        Some(status) if status.code == 2 => SpanStatus::Error(status.message),
        Some(status) if status.code == 1 => SpanStatus::Ok,
        _ => SpanStatus::Unset,
    };
    let kind = match span.kind {
        0 => "unspecified".to_owned(),
        1 => "internal".to_owned(),
        2 => "server".to_owned(),
        3 => "client".to_owned(),
        4 => "producer".to_owned(),
        5 => "consumer".to_owned(),
        other => format!("kind({other})"),
    };
    // An all-zero parent id means "no parent" to some exporters.
    let parent_span_id =
        (!span.parent_span_id.iter().all(|&b| b == 0)).then(|| hex(&span.parent_span_id));
    ReceivedSpan {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id,
        name: span.name,
        kind,
        start_unix_nanos: span.start_time_unix_nano,
        end_unix_nanos: span.end_time_unix_nano,
        status,
        flags: span.flags,
        attributes: attributes(&span.attributes),
        events: span
            .events
            .into_iter()
            .map(|event| ReceivedEvent {
                attributes: attributes(&event.attributes),
                name: event.name,
                time_unix_nanos: event.time_unix_nano,
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|link| ReceivedLink {
                trace_id: hex(&link.trace_id),
                span_id: hex(&link.span_id),
                attributes: attributes(&link.attributes),
            })
            .collect(),
        dropped_links_count: span.dropped_links_count,
        routing: routing.map(str::to_owned),
        service_name: service_name.to_owned(),
    }
}

fn attributes(values: &[KeyValue]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
        .collect()
}

/// An attribute value as text: strings as they are, bytes as hex, lists as `[a, b]`, maps
/// as `{k: v}`.
fn any_value_string(value: Option<&AnyValue>) -> String {
    use any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(bytes)) => hex(bytes),
        Some(Value::ArrayValue(array)) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|v| any_value_string(Some(v)))
                .collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|kv| format!("{}: {}", kv.key, any_value_string(kv.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        // A profiling-only field: treated as absent, as the OTLP spec asks.
        Some(Value::StringValueStrindex(_)) => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a top-level row is top-level when it has a parent id.
#[derive(Clone, Copy)]
enum RootNote<'a> {
    /// A true root (no parent id) or a child row.
    None,
    /// The parent is remote (flag `0x200`), or unknown and remote-ness was not reported.
    Continued(&'a str),
    /// The parent is local (flags say so) but was not received.
    Orphan(&'a str),
    /// The parent was received but is part of a parent cycle.
    Cycle(&'a str),
}

impl fmt::Display for RootNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootNote::None => Ok(()),
            RootNote::Continued(parent) => write!(f, "  (continued from {parent})"),
            RootNote::Orphan(parent) => write!(f, "  (orphan: parent {parent} not received)"),
            RootNote::Cycle(parent) => write!(f, "  (parent {parent} is in a cycle)"),
        }
    }
}

/// Renders a trace as a waterfall: a header line, then one line per span.
///
/// The header reads `trace <id>  routing=<value>  service=<name>  <n> spans  <d> ms` (every
/// distinct routing value and service name, comma-separated; `routing=(none)` without a
/// routing header). Span lines form a tree: children under their parent, indented by two
/// spaces per level, siblings and top-level spans ordered by start time (then arrival).
/// Each line has the (indented) name with the kind for server/client/producer/consumer
/// spans, a bar `width` characters wide (`█` for the span, `─` for the rest of the trace,
/// positioned and scaled to the trace's duration, at least one `█`), the duration in
/// milliseconds and the status (`ok`, `error` or `error: <message>`).
///
/// A span with a parent id is shown at the top level when the parent is remote (flag
/// `0x200`) or was not received: with `(continued from <parent id>)`, or with
/// `(orphan: parent <id> not received)` when its flags say the parent is local (`0x100`
/// set, `0x200` clear). Spans caught in a parent cycle are shown at the top level too.
pub fn render_waterfall(trace: &ReceivedTrace, width: usize) -> String {
    let width = width.max(1);
    let spans = &trace.spans;
    let t0 = trace.start_unix_nanos();
    let total = trace.duration_nanos();
    let mut out = String::new();
    let routing = match trace.routings().as_slice() {
        [] => "(none)".to_owned(),
        values => values.join(", "),
    };
    out.push_str(&format!(
        "trace {}  routing={}  service={}  {} span{}  {}\n",
        trace.trace_id,
        clean(&routing),
        clean(&trace.service_names().join(", ")),
        spans.len(),
        if spans.len() == 1 { "" } else { "s" },
        millis(total),
    ));

    let rows = tree_rows(spans);
    let labels: Vec<String> = rows
        .iter()
        .map(|&(index, depth, _)| {
            let span = &spans[index];
            let mut label = "  ".repeat(depth);
            label.push_str(&clean(&span.name));
            if matches!(
                span.kind.as_str(),
                "server" | "client" | "producer" | "consumer"
            ) {
                label.push_str(&format!(" [{}]", span.kind));
            }
            let links = span.links.len() + span.dropped_links_count as usize;
            if links > 0 {
                label.push_str(&format!(
                    " ({links} link{})",
                    if links == 1 { "" } else { "s" }
                ));
            }
            truncate(&label, MAX_LABEL_CHARS)
        })
        .collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let durations: Vec<String> = rows
        .iter()
        .map(|&(index, _, _)| millis(spans[index].duration_nanos()))
        .collect();
    let duration_width = durations.iter().map(String::len).max().unwrap_or(0);
    for (((index, _, note), label), duration) in rows.iter().zip(&labels).zip(&durations) {
        let span = &spans[*index];
        let (offset, len) = bar_cells(span, t0, total, width);
        let bar: String = std::iter::repeat_n('─', offset)
            .chain(std::iter::repeat_n('█', len))
            .chain(std::iter::repeat_n('─', width - offset - len))
            .collect();
        let padding = label_width - label.chars().count();
        let line = format!(
            "{label}{:padding$}  {bar}  {duration:>duration_width$}  {}{note}",
            "",
            clean(&span.status.to_string()),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `(span index, depth, note)` in display order: a depth-first walk from the top-level
/// spans, every span exactly once.
fn tree_rows(spans: &[ReceivedSpan]) -> Vec<(usize, usize, RootNote<'_>)> {
    let order = |&i: &usize| (spans[i].start_unix_nanos, i);
    // The first span with an id owns it (a duplicate id gets no children).
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        owner.entry(span.span_id.as_str()).or_insert(i);
    }
    let mut roots: Vec<(usize, RootNote<'_>)> = Vec::new();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent_span_id.as_deref() {
            None => roots.push((i, RootNote::None)),
            Some(parent) if span.parent_is_remote() => roots.push((i, RootNote::Continued(parent))),
            Some(parent) => match owner.get(parent) {
                Some(&p) => children.entry(p).or_default().push(i),
                None if span.flags & FLAG_HAS_IS_REMOTE != 0 => {
                    roots.push((i, RootNote::Orphan(parent)))
                }
                None => roots.push((i, RootNote::Continued(parent))),
            },
        }
    }
    roots.sort_by_key(|(i, _)| order(i));
    for kids in children.values_mut() {
        kids.sort_by_key(order);
    }

    let mut rows = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    // Top-level spans first, then whatever a parent cycle kept unreachable.
    let mut leftovers: Vec<usize> = Vec::new();
    let mut pending: Vec<(usize, usize, RootNote<'_>)> =
        roots.iter().rev().map(|&(i, note)| (i, 0, note)).collect();
    loop {
        while let Some((i, depth, note)) = pending.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            rows.push((i, depth, note));
            if let Some(kids) = children.get(&i) {
                pending.extend(kids.iter().rev().map(|&k| (k, depth + 1, RootNote::None)));
            }
        }
        if leftovers.is_empty() {
            leftovers = (0..spans.len()).filter(|&i| !visited[i]).collect();
            leftovers.sort_by_key(order);
            leftovers.reverse();
        }
        match leftovers.pop() {
            Some(i) if !visited[i] => {
                let parent = spans[i].parent_span_id.as_deref().unwrap_or("");
                pending.push((i, 0, RootNote::Cycle(parent)));
            }
            Some(_) => {}
            None => break,
        }
    }
    rows
}

/// `(offset, length)` of a span's bar in a `width`-cell track covering `total` nanoseconds
/// from `t0`: start rounded down, end rounded up, at least one cell, within the track.
fn bar_cells(span: &ReceivedSpan, t0: u64, total: u64, width: usize) -> (usize, usize) {
    if total == 0 {
        return (0, width);
    }
    let w = width as u128;
    let total = u128::from(total);
    let start = u128::from(span.start_unix_nanos.saturating_sub(t0));
    let end = u128::from(
        span.end_unix_nanos
            .max(span.start_unix_nanos)
            .saturating_sub(t0),
    );
    let offset = ((start * w / total) as usize).min(width - 1);
    let end_cell = (end * w).div_ceil(total) as usize;
    let len = end_cell.saturating_sub(offset).clamp(1, width - offset);
    (offset, len)
}

fn millis(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

/// Control characters (a newline in a span name, say) would break the layout.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000_000 * MS;

    fn span(
        id: &str,
        parent: Option<&str>,
        name: &str,
        start_ms: u64,
        end_ms: u64,
    ) -> ReceivedSpan {
        ReceivedSpan {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            name: name.to_owned(),
            kind: "internal".to_owned(),
            start_unix_nanos: T0 + start_ms * MS,
            end_unix_nanos: T0 + end_ms * MS,
            status: SpanStatus::Unset,
            flags: 0x100,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            dropped_links_count: 0,
            routing: Some("tenant=a".to_owned()),
            service_name: "checkout".to_owned(),
        }
    }

    fn trace(spans: Vec<ReceivedSpan>) -> ReceivedTrace {
        ReceivedTrace {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            spans,
        }
    }

    /// The bar of a rendered span line: the run of `█`/`─` characters.
    fn bar(line: &str) -> String {
        line.chars().filter(|c| matches!(c, '█' | '─')).collect()
    }

    fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name:?} in\n{text}"))
    }

    #[test]
    fn tree_is_ordered_by_start_and_indented() {
        // Arrival order differs from start order, and children come before their parents.
        let mut root = span("00000000000000a1", None, "GET /orders", 0, 100);
        root.kind = "server".to_owned();
        let text = render_waterfall(
            &trace(vec![
                span(
                    "00000000000000c3",
                    Some("00000000000000a1"),
                    "render",
                    50,
                    90,
                ),
                span(
                    "00000000000000d4",
                    Some("00000000000000b2"),
                    "db.query",
                    15,
                    35,
                ),
                span(
                    "00000000000000b2",
                    Some("00000000000000a1"),
                    "load_user",
                    10,
                    40,
                ),
                root,
            ]),
            20,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  routing=tenant=a  service=checkout  4 spans  100.000 ms"
        );
        assert!(lines[1].starts_with("GET /orders [server]"), "{text}");
        assert!(lines[2].starts_with("  load_user "), "{text}");
        assert!(lines[3].starts_with("    db.query "), "{text}");
        assert!(lines[4].starts_with("  render "), "{text}");
        // Columns line up: every bar starts at the same character position.
        let bar_starts: Vec<usize> = lines[1..]
            .iter()
            .map(|l| l.chars().position(|c| c == '█' || c == '─').unwrap())
            .collect();
        assert!(bar_starts.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(lines[1].ends_with("100.000 ms  ok"), "{text}");
        assert!(lines[3].ends_with(" 20.000 ms  ok"), "{text}");
    }

    #[test]
    fn bars_are_positioned_and_scaled_to_the_trace() {
        let text = render_waterfall(
            &trace(vec![
                span("00000000000000a1", None, "root", 0, 100),
                span(
                    "00000000000000b2",
                    Some("00000000000000a1"),
                    "first",
                    10,
                    40,
                ),
                span(
                    "00000000000000c3",
                    Some("00000000000000a1"),
                    "second",
                    50,
                    90,
                ),
                span(
                    "00000000000000d4",
                    Some("00000000000000a1"),
                    "instant",
                    60,
                    60,
                ),
            ]),
            20,
        );
        assert_eq!(bar(line_of(&text, "root")), "█".repeat(20));
        assert_eq!(
            bar(line_of(&text, "first")),
            format!("{}{}{}", "─".repeat(2), "█".repeat(6), "─".repeat(12))
        );
        assert_eq!(
            bar(line_of(&text, "second")),
            format!("{}{}{}", "─".repeat(10), "█".repeat(8), "─".repeat(2))
        );
        // A zero-length span still gets one cell.
        assert_eq!(
            bar(line_of(&text, "instant")),
            format!("{}█{}", "─".repeat(12), "─".repeat(7))
        );
        assert!(line_of(&text, "instant").ends_with("0.000 ms  ok"));
    }

    #[test]
    fn bar_cells_stay_inside_the_track() {
        let s = |start, end| span("00000000000000a1", None, "x", start, end);
        assert_eq!(bar_cells(&s(0, 100), T0, 100 * MS, 10), (0, 10));
        assert_eq!(bar_cells(&s(100, 100), T0, 100 * MS, 10), (9, 1));
        assert_eq!(bar_cells(&s(99, 100), T0, 100 * MS, 10), (9, 1));
        assert_eq!(bar_cells(&s(0, 1), T0, 100 * MS, 10), (0, 1));
        assert_eq!(bar_cells(&s(0, 0), T0, 0, 7), (0, 7));
        // The end before the start counts as zero length.
        assert_eq!(bar_cells(&s(50, 10), T0, 100 * MS, 10), (5, 1));
        assert_eq!(bar_cells(&s(0, 100), T0, 100 * MS, 1), (0, 1));
    }

    #[test]
    fn remote_parent_and_orphans_are_top_level_with_a_note() {
        let mut continued = span(
            "00000000000000a1",
            Some("00f067aa0ba902b7"),
            "GET /",
            0,
            100,
        );
        continued.flags = 0x100 | 0x200 | 0x01;
        // No remote-ness information and a parent we don't have: also a continuation.
        let mut unknown = span(
            "00000000000000e5",
            Some("1111111111111111"),
            "from elsewhere",
            5,
            10,
        );
        unknown.flags = 0;
        // Local parent (0x100 without 0x200) that never arrived: an orphan.
        let orphan = span(
            "00000000000000b2",
            Some("2222222222222222"),
            "lost child",
            20,
            30,
        );
        let child = span(
            "00000000000000c3",
            Some("00000000000000a1"),
            "child",
            40,
            60,
        );
        let text = render_waterfall(&trace(vec![orphan, child, unknown, continued]), 10);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("GET / "), "{text}");
        assert!(
            lines[1].ends_with("ok  (continued from 00f067aa0ba902b7)"),
            "{text}"
        );
        assert!(lines[2].starts_with("  child"), "{text}");
        assert!(lines[3].starts_with("from elsewhere"), "{text}");
        assert!(
            lines[3].ends_with("(continued from 1111111111111111)"),
            "{text}"
        );
        assert!(lines[4].starts_with("lost child"), "{text}");
        assert!(
            lines[4].ends_with("(orphan: parent 2222222222222222 not received)"),
            "{text}"
        );
    }

    #[test]
    fn statuses_are_shown() {
        let mut failed = span("00000000000000b2", Some("00000000000000a1"), "db", 10, 20);
        failed.status = SpanStatus::Error("connection refused".to_owned());
        let mut bare = span("00000000000000c3", Some("00000000000000a1"), "bare", 20, 30);
        bare.status = SpanStatus::Error(String::new());
        let mut fine = span("00000000000000a1", None, "root", 0, 40);
        fine.status = SpanStatus::Ok;
        let text = render_waterfall(&trace(vec![fine, failed, bare]), 8);
        assert!(line_of(&text, "root").ends_with("  ok"), "{text}");
        assert!(
            line_of(&text, "db").ends_with("  error: connection refused"),
            "{text}"
        );
        assert!(line_of(&text, "bare").ends_with("  error"), "{text}");
    }

    #[test]
    fn header_lists_every_routing_and_handles_none() {
        let mut other = span("00000000000000b2", Some("00000000000000a1"), "b", 0, 1);
        other.routing = Some("tenant=b".to_owned());
        let text = render_waterfall(
            &trace(vec![span("00000000000000a1", None, "a", 0, 2), other]),
            4,
        );
        assert!(
            text.starts_with(
                "trace 4bf92f3577b34da6a3ce929d0e0e4736  routing=tenant=a, tenant=b  "
            )
        );
        let mut lone = span("00000000000000a1", None, "a", 0, 2);
        lone.routing = None;
        let text = render_waterfall(&trace(vec![lone]), 4);
        assert!(text.contains("  routing=(none)  "), "{text}");
        assert!(text.contains("  1 span  2.000 ms"), "{text}");
        let empty = render_waterfall(&trace(Vec::new()), 4);
        assert_eq!(empty.lines().count(), 1, "{empty}");
    }

    #[test]
    fn cycles_and_duplicates_render_every_span_once() {
        let spans = vec![
            span("00000000000000a1", Some("00000000000000b2"), "a", 0, 10),
            span("00000000000000b2", Some("00000000000000a1"), "b", 1, 10),
            span("00000000000000c3", Some("00000000000000c3"), "self", 2, 10),
            span("00000000000000d4", None, "dup", 3, 10),
            span("00000000000000d4", None, "dup", 4, 10),
        ];
        let text = render_waterfall(&trace(spans), 10);
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(
            line_of(&text, "a").ends_with("(parent 00000000000000b2 is in a cycle)"),
            "{text}"
        );
        assert!(text.lines().any(|l| l.starts_with("  b ")), "{text}");
        assert!(line_of(&text, "self").ends_with("(parent 00000000000000c3 is in a cycle)"));
    }

    #[test]
    fn names_are_cleaned_and_cut() {
        let long = "x".repeat(100);
        let text = render_waterfall(
            &trace(vec![
                span("00000000000000a1", None, "line\nbreak", 0, 10),
                span("00000000000000b2", None, &long, 0, 10),
            ]),
            4,
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("line?break"));
        assert!(text.contains(&format!("{}…", "x".repeat(MAX_LABEL_CHARS - 1))));
    }

    #[test]
    fn links_are_shown_in_json_and_in_the_waterfall() {
        let mut s = span("00000000000000b2", None, "batch", 0, 10);
        s.links = vec![ReceivedLink {
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            span_id: "b7ad6b7169203331".to_owned(),
            attributes: vec![("reason".to_owned(), "batched".to_owned())],
        }];
        s.dropped_links_count = 2;
        let json = s.to_json();
        assert_eq!(json["links"][0]["span_id"], "b7ad6b7169203331");
        assert_eq!(json["links"][0]["attributes"]["reason"], "batched");
        assert_eq!(json["dropped_links_count"], 2);
        let text = render_waterfall(&trace(vec![s]), 4);
        assert!(text.contains("batch (3 links)"), "{text}");
    }

    #[test]
    fn json_object_has_the_documented_fields() {
        let mut s = span("00000000000000b2", Some("00000000000000a1"), "db", 10, 25);
        s.status = SpanStatus::Error("boom".to_owned());
        s.attributes = vec![("db.system".to_owned(), "postgres".to_owned())];
        let json = s.to_json();
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(json["span_id"], "00000000000000b2");
        assert_eq!(json["parent_span_id"], "00000000000000a1");
        assert_eq!(json["parent_is_remote"], false);
        assert_eq!(json["name"], "db");
        assert_eq!(json["kind"], "internal");
        assert_eq!(json["start_unix_nanos"], T0 + 10 * MS);
        assert_eq!(json["end_unix_nanos"], T0 + 25 * MS);
        assert_eq!(json["duration_ms"], 15.0);
        assert_eq!(json["status"], "error");
        assert_eq!(json["status_message"], "boom");
        assert_eq!(json["attributes"]["db.system"], "postgres");
        assert_eq!(json["routing"], "tenant=a");
        assert_eq!(json["service_name"], "checkout");
        assert!(json["events"].as_array().unwrap().is_empty());
    }

    #[test]
    fn attribute_values_become_strings() {
        use any_value::Value;
        let v = |value| Some(AnyValue { value: Some(value) });
        assert_eq!(any_value_string(v(Value::IntValue(-3)).as_ref()), "-3");
        assert_eq!(any_value_string(v(Value::BoolValue(true)).as_ref()), "true");
        assert_eq!(any_value_string(v(Value::DoubleValue(1.5)).as_ref()), "1.5");
        assert_eq!(
            any_value_string(v(Value::BytesValue(vec![0xab, 1])).as_ref()),
            "ab01"
        );
        let array = Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::StringValue("a".into())),
                },
                AnyValue {
                    value: Some(Value::IntValue(2)),
                },
            ],
        });
        assert_eq!(any_value_string(v(array).as_ref()), "[a, 2]");
        assert_eq!(any_value_string(None), "");
    }
}
