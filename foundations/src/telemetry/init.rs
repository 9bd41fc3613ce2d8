//! [`init`] and the [`TelemetryDriver`] it returns: installs the harnesses and runs the
//! exporters, and shuts them down with a flush.
//!
//! Exporter workers run on dedicated OS threads, one per pipeline (`foundations-export`,
//! `foundations-export-user`), each with its own single-threaded tokio runtime. They never
//! compete with the application's runtime for its worker threads, one pipeline's encoding
//! and compression never delay the other's timers, and `init` works whether or not it is
//! called inside a runtime.
//!
//! This module owns the process-wide lifecycle and the wiring: settings in, harnesses and
//! exporters out. It must not know how spans are recorded (that is the pipelines') or how
//! they are encoded and sent (that is `export`'s).

use crate::telemetry::core::harness::{self, HarnessOptions, InstallError};
use crate::telemetry::core::limits::SpanLimits;
#[cfg(feature = "user-tracing")]
use crate::telemetry::core::pipeline::User;
use crate::telemetry::core::pipeline::{Internal, Pipeline};
use crate::telemetry::core::queue::SpanDrain;
use crate::telemetry::core::registry;
use crate::telemetry::export::{
    Exporter, ExporterConfig, ExporterStats, ExporterThread, OtlpEncoder, Phase, Transport, Work,
};
use crate::telemetry::settings::SpanLimitsSettings;
use crate::telemetry::settings::{
    Endpoint, OtlpProtocol, ResolvedTracing, SettingsError, TelemetrySettings, TracingSettings,
};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The running user exporter, for [`user_exporter_stats`].
#[cfg(feature = "user-tracing")]
static USER_EXPORTER: OnceLock<Arc<Exporter>> = OnceLock::new();

/// The running internal exporter, for [`internal_exporter_stats`].
static INTERNAL_EXPORTER: OnceLock<Arc<Exporter>> = OnceLock::new();

/// Why [`init`] failed. Nothing is installed when it fails.
#[derive(Debug)]
#[non_exhaustive]
pub enum InitError {
    /// `init` was already called in this process.
    AlreadyInitialized,
    /// The settings are invalid; the error names the field.
    Settings(SettingsError),
    /// A harness could not be installed.
    Install(InstallError),
    /// The exporter thread or its runtime could not be started.
    Runtime(std::io::Error),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::AlreadyInitialized => {
                f.write_str("telemetry is already initialized in this process")
            }
            InitError::Settings(error) => error.fmt(f),
            InitError::Install(error) => write!(f, "cannot install tracing: {error}"),
            InitError::Runtime(error) => write!(f, "cannot start the exporter thread: {error}"),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Settings(error) => Some(error),
            InitError::Install(error) => Some(error),
            InitError::Runtime(error) => Some(error),
            InitError::AlreadyInitialized => None,
        }
    }
}

impl From<SettingsError> for InitError {
    fn from(error: SettingsError) -> Self {
        InitError::Settings(error)
    }
}

/// Installs the telemetry of this process from `settings` and starts its exporters.
///
/// - the internal pipeline's harness, when `tracing.enabled`, and its exporter to the
///   configured `output` (with `none`, spans are recorded and discarded). Unset identity,
///   sampling and endpoint values are taken from the OpenTelemetry environment variables
///   (see [`TracingSettings::resolve`](crate::telemetry::settings::TracingSettings::resolve)).
/// - the user pipeline's harness and its OTLP/HTTP exporter over a Unix socket, when
///   `user_tracing` is present and enabled (feature `user-tracing`).
///
/// # Errors
///
/// Invalid settings (naming the field) or a second call, before anything is installed, so a
/// corrected call may follow; or, rarely, a harness that the application had already
/// installed by hand, or a failure to start the exporter thread.
///
/// # Examples
///
/// ```no_run
/// use foundations::telemetry::{self, settings::TelemetrySettings};
/// use std::time::{Duration, Instant};
///
/// let settings = TelemetrySettings::from_yaml(
///     "user_tracing:\n  socket_path: /run/otel/traces.sock\n",
/// )?;
/// let driver = telemetry::init(&settings)?;
/// // ... serve requests ...
/// let report = driver.shutdown(Duration::from_secs(5));
/// println!("exported {} user spans", report.user.map_or(0, |s| s.spans_exported));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryDriver, InitError> {
    settings.validate()?;
    let resolved = settings.tracing.resolve(|name| std::env::var(name).ok())?;
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return Err(InitError::AlreadyInitialized);
    }
    match start(settings, &resolved) {
        Ok(driver) => Ok(driver),
        Err(error) => {
            INITIALIZED.store(false, Ordering::Release);
            Err(error)
        }
    }
}

fn start(
    settings: &TelemetrySettings,
    resolved: &ResolvedTracing,
) -> Result<TelemetryDriver, InitError> {
    // Everything that can fail comes first: nothing is installed until all of it succeeded,
    // so a failed `init` leaves the process as it was and a corrected one may follow.
    #[cfg(feature = "user-tracing")]
    let user = match &settings.user_tracing {
        Some(user) if user.enabled => Some(prepare_user(user)?),
        _ => None,
    };
    let internal = match settings.tracing.enabled {
        true => Some(prepare_internal(&settings.tracing, resolved)?),
        false => None,
    };
    if let Some(internal) = &internal {
        harness::check::<Internal>(&internal.options).map_err(InitError::Install)?;
    }
    #[cfg(feature = "user-tracing")]
    if let Some(user) = &user {
        harness::check::<User>(&user.options).map_err(InitError::Install)?;
    }
    // One exporter thread per pipeline: encoding and compressing one pipeline's batches
    // never delays the other's timers (its timeouts, backoffs and flush intervals).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let internal_thread = match &internal {
        Some(_) => Some(
            ExporterThread::start("foundations-export", done_tx.clone())
                .map_err(InitError::Runtime)?,
        ),
        None => None,
    };
    #[cfg(feature = "user-tracing")]
    let user_thread = match &user {
        Some(_) => Some(
            ExporterThread::start("foundations-export-user", done_tx)
                .map_err(InitError::Runtime)?,
        ),
        None => None,
    };

    // Installing: from here on only a harness installed concurrently by hand can fail.
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut threads = Vec::new();
    let mut discard = None;
    let mut internal_exporter = None;
    if let (Some(internal), Some(thread)) = (internal, internal_thread) {
        let mut work = Work::new(phase_rx.clone());
        internal_exporter = internal.install::<Internal>(&mut work)?;
        discard = work.discard.clone();
        threads.push(thread.run(work));
    }
    #[cfg(feature = "user-tracing")]
    let mut user_exporter = None;
    #[cfg(feature = "user-tracing")]
    if let (Some(user), Some(thread)) = (user, user_thread) {
        let mut work = Work::new(phase_rx);
        user_exporter = user.install::<User>(&mut work)?;
        threads.push(thread.run(work));
    }

    #[cfg(feature = "user-tracing")]
    if let Some(exporter) = &user_exporter {
        let _ = USER_EXPORTER.set(Arc::clone(exporter));
    }
    if let Some(exporter) = &internal_exporter {
        let _ = INTERNAL_EXPORTER.set(Arc::clone(exporter));
    }
    // Last, once nothing can fail: a failed `init` leaves the switches as they were.
    let live = &settings.tracing.live_traces;
    registry::set_enabled(live.enabled);
    registry::set_descendants_enabled(live.descendants);
    Ok(TelemetryDriver {
        phase: phase_tx,
        done: done_rx,
        running: threads.len(),
        threads,
        internal_exporter,
        #[cfg(feature = "user-tracing")]
        user_exporter,
        discard,
    })
}

/// A pipeline ready to install: its harness options and, unless its spans are discarded
/// (internal output `none`), its exporter's configuration and transport.
struct Prepared {
    options: HarnessOptions,
    exporter: Option<(ExporterConfig, Transport)>,
}

impl Prepared {
    /// Installs the harness and adds its consumer to `work`: the exporter (returned), or a
    /// worker that discards.
    fn install<P: Pipeline>(self, work: &mut Work) -> Result<Option<Arc<Exporter>>, InitError> {
        let drain = harness::install::<P>(&self.options).map_err(InitError::Install)?;
        Ok(match self.exporter {
            Some((config, transport)) => {
                let exporter = Exporter::new(config, transport, drain);
                work.exporters.push(Arc::clone(&exporter));
                Some(exporter)
            }
            None => {
                work.discard = Some(drain);
                None
            }
        })
    }
}

fn prepare_internal(
    tracing_settings: &TracingSettings,
    resolved: &ResolvedTracing,
) -> Result<Prepared, InitError> {
    let options = HarnessOptions::default()
        .sampling_ratio(resolved.sampling_ratio)
        .parent_based(resolved.parent_based)
        .max_queue_size(tracing_settings.export.max_queue_size)
        .max_roots_per_second(tracing_settings.rate_limit.limit())
        .span_limits(span_limits(&tracing_settings.span_limits));
    let exporter = match &resolved.endpoint {
        Some(endpoint) => {
            // Reads and parses the CA bundle: a bad one fails here, before any install.
            let transport = internal_transport(endpoint, resolved, tracing_settings)?;
            let static_tags = tracing_settings
                .static_tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let encoder =
                OtlpEncoder::new(&resolved.service_name, resolved.resource_attributes.clone())
                    .with_static_tags(static_tags);
            let config = ExporterConfig::new(&tracing_settings.export, None, encoder);
            Some((config, transport))
        }
        None => None,
    };
    Ok(Prepared { options, exporter })
}

/// The core's span limits from a section's (validated) `span_limits`.
fn span_limits(settings: &SpanLimitsSettings) -> SpanLimits {
    SpanLimits::default()
        .with_max_attributes(settings.max_attributes)
        .with_max_events(settings.max_events)
        .with_max_attributes_per_event(settings.max_attributes_per_event)
        .with_max_links(settings.max_links)
        .with_max_attribute_value_length(settings.max_attribute_value_length)
}

/// The internal exporter's transport to its resolved endpoint, in its resolved protocol.
fn internal_transport(
    endpoint: &str,
    resolved: &ResolvedTracing,
    settings: &TracingSettings,
) -> Result<Transport, SettingsError> {
    let field = settings.output.field();
    let ca_bundle = settings.output.ca_bundle();
    let endpoint_error = |message| SettingsError::new(format!("{field}.endpoint"), message);
    let transport = match resolved.protocol {
        OtlpProtocol::Grpc => {
            let endpoint = Endpoint::parse_grpc(endpoint).map_err(endpoint_error)?;
            let export = &settings.export;
            Transport::grpc(
                endpoint,
                ca_bundle,
                export.compression,
                export.request_timeout(),
            )
        }
        _ => {
            let endpoint = Endpoint::parse(endpoint, false).map_err(endpoint_error)?;
            Transport::new(endpoint, ca_bundle)
        }
    };
    transport.map_err(|message| SettingsError::new(field, message))
}

#[cfg(feature = "user-tracing")]
fn prepare_user(
    user: &crate::telemetry::settings::UserTracingSettings,
) -> Result<Prepared, InitError> {
    let routing_header = hyper::header::HeaderName::from_bytes(user.routing_header.as_bytes())
        .map_err(|_| {
            SettingsError::new("user_tracing.routing_header", "not a valid header name")
        })?;
    let transport = Transport::new(Endpoint::Unix(user.socket_path.clone()), None)
        .map_err(|message| SettingsError::new("user_tracing.socket_path", message))?;
    let encoder = OtlpEncoder::new(&user.service_name, Vec::new());
    let config = ExporterConfig::new(&user.export, Some(routing_header), encoder);
    Ok(Prepared {
        options: HarnessOptions::default()
            .max_queue_size(user.export.max_queue_size)
            .max_roots_per_second(user.rate_limit.limit())
            .span_limits(span_limits(&user.span_limits)),
        exporter: Some((config, transport)),
    })
}

/// Delivers every span queued before this call, waiting at most `deadline`, and returns
/// what became of them. Exporting goes on afterwards (unlike
/// [`TelemetryDriver::shutdown`]).
///
/// Safe from anywhere: plain threads, `spawn_blocking`, or inside an async task on any
/// runtime flavour, `current_thread` included. The exporters run on their own thread, so
/// waiting here cannot deadlock them; it does block the calling thread up to `deadline`.
/// Without [`init`] it returns at once, with nothing to report.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let report = foundations::telemetry::flush(Duration::from_secs(1));
/// assert!(report.flushed, "nothing to deliver without init");
/// ```
pub fn flush(deadline: Duration) -> FlushReport {
    #[cfg(feature = "user-tracing")]
    let user = USER_EXPORTER.get();
    #[cfg(not(feature = "user-tracing"))]
    let user = None;
    flush_exporters(INTERNAL_EXPORTER.get(), user, deadline)
}

/// What [`flush`] achieved, per pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// `true` when every span queued before the call was exported or dropped (for a counted
    /// reason) by the deadline.
    pub flushed: bool,
    /// The internal exporter's spans settled during the flush, if it runs.
    pub internal: Option<FlushCounts>,
    /// The user exporter's spans settled during the flush, if it runs.
    pub user: Option<FlushCounts>,
}

/// Spans one exporter settled between the start and the end of a [`flush`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushCounts {
    /// Spans the receiver accepted.
    pub exported: u64,
    /// Spans dropped, whatever the reason (see [`ExporterStats`] for the reasons).
    pub dropped: u64,
}

fn flush_exporters(
    internal: Option<&Arc<Exporter>>,
    user: Option<&Arc<Exporter>>,
    deadline: Duration,
) -> FlushReport {
    let until = std::time::Instant::now() + deadline;
    let start: Vec<_> = [internal, user]
        .map(|exporter| exporter.map(|exporter| (exporter, exporter.stats())))
        .into_iter()
        .collect();
    for (exporter, _) in start.iter().flatten() {
        exporter.flush();
    }
    // A span has entered the queue when `spans_queued` counts it; it is settled once it is
    // exported or dropped after that (drops at the queue's door never entered it).
    let settled = |stats: &ExporterStats| {
        stats.spans_exported + stats.dropped()
            - stats.dropped_queue_full
            - stats.dropped_after_shutdown
            - stats.dropped_callback_panicked
    };
    // Polled, not notified: a flush is rare, and a check is a few atomic loads. The pause
    // grows to 1 ms, so a flush returns at most that long after its spans settled.
    let mut pause = Duration::from_micros(50);
    let flushed = loop {
        let done = start
            .iter()
            .flatten()
            .all(|(exporter, before)| settled(&exporter.stats()) >= before.spans_queued);
        let now = std::time::Instant::now();
        if done || now >= until {
            break done;
        }
        std::thread::sleep(pause.min(until - now));
        pause = (pause * 2).min(Duration::from_millis(1));
    };
    let counts = |entry: &Option<(&Arc<Exporter>, ExporterStats)>| {
        entry.as_ref().map(|(exporter, before)| {
            let after = exporter.stats();
            FlushCounts {
                exported: after.spans_exported - before.spans_exported,
                dropped: after.dropped() - before.dropped(),
            }
        })
    };
    FlushReport {
        flushed,
        internal: counts(&start[0]),
        user: counts(&start[1]),
    }
}

/// The counters of the internal exporter, while one runs (an OTLP output).
pub fn internal_exporter_stats() -> Option<ExporterStats> {
    INTERNAL_EXPORTER.get().map(|exporter| exporter.stats())
}

/// The counters of the user exporter, while one runs (feature `user-tracing`).
///
/// # Examples
///
/// ```
/// assert!(foundations::telemetry::user_exporter_stats().is_none(), "not initialized");
/// ```
#[cfg(feature = "user-tracing")]
pub fn user_exporter_stats() -> Option<ExporterStats> {
    USER_EXPORTER.get().map(|exporter| exporter.stats())
}

/// Handle to the telemetry started by [`init`].
///
/// Call [`shutdown`](Self::shutdown) before the process exits to deliver what is queued.
/// Dropping the driver without shutting down is safe: the exporters (and, with output
/// `none`, the worker that discards internal spans) keep running for the rest of the
/// process, so queues never fill up unseen; what is queued when the process exits is lost.
pub struct TelemetryDriver {
    phase: watch::Sender<Phase>,
    /// One message per exporter thread as it ends; `running` counts those still to come.
    done: std::sync::mpsc::Receiver<()>,
    running: usize,
    threads: Vec<std::thread::JoinHandle<()>>,
    internal_exporter: Option<Arc<Exporter>>,
    #[cfg(feature = "user-tracing")]
    user_exporter: Option<Arc<Exporter>>,
    /// The internal queue when its spans are discarded (output `none`), to close it.
    discard: Option<SpanDrain>,
}

impl fmt::Debug for TelemetryDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryDriver").finish_non_exhaustive()
    }
}

/// How long [`TelemetryDriver::shutdown`] waits, past its deadline, for aborted workers to
/// count what they held.
const ABORT_GRACE: Duration = Duration::from_millis(200);

/// What [`TelemetryDriver::shutdown`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// `true` when everything queued was delivered (or dropped for a counted reason) before
    /// the deadline.
    pub flushed: bool,
    /// The internal exporter's final counters, if it ran.
    pub internal: Option<ExporterStats>,
    /// The user exporter's final counters, if it ran.
    pub user: Option<ExporterStats>,
}

impl TelemetryDriver {
    /// Waits until every exporter thread has ended, or `until`; `true` when they all have.
    fn wait_for_threads(&mut self, until: Instant) -> bool {
        while self.running > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                return false;
            }
            self.running -= 1;
        }
        true
    }

    fn exporters(&self) -> impl Iterator<Item = &Arc<Exporter>> {
        #[cfg(feature = "user-tracing")]
        let user = self.user_exporter.as_ref();
        #[cfg(not(feature = "user-tracing"))]
        let user = None;
        self.internal_exporter.iter().chain(user)
    }

    /// Delivers every span queued before this call, waiting at most `deadline`, and keeps
    /// exporting: [`flush`] on this driver's exporters.
    pub fn flush(&self, deadline: Duration) -> FlushReport {
        flush_exporters(self.internal_exporter.as_ref(), self.user(), deadline)
    }

    #[cfg(feature = "user-tracing")]
    fn user(&self) -> Option<&Arc<Exporter>> {
        self.user_exporter.as_ref()
    }

    #[cfg(not(feature = "user-tracing"))]
    fn user(&self) -> Option<&Arc<Exporter>> {
        None
    }

    /// Counters of the internal exporter (output `otlp_http`).
    pub fn internal_stats(&self) -> Option<ExporterStats> {
        self.internal_exporter
            .as_ref()
            .map(|exporter| exporter.stats())
    }

    /// Counters of the user exporter (feature `user-tracing`).
    #[cfg(feature = "user-tracing")]
    pub fn user_stats(&self) -> Option<ExporterStats> {
        self.user_exporter.as_ref().map(|exporter| exporter.stats())
    }

    /// Stops the exporters after delivering every queued span, waiting at most `deadline`.
    ///
    /// Spans finished after this call are no longer exported. When the deadline passes
    /// first, in-flight requests are abandoned and what is left is counted as
    /// `dropped_at_shutdown`; a request whose receiver already answered `2xx` counts as
    /// exported. Returns within `deadline` plus 200 ms, whatever the receivers do.
    pub fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        // From now on spans are counted (`dropped_after_shutdown`), never queued: what is
        // queued is all there is to deliver.
        for exporter in self.exporters() {
            exporter.close();
        }
        if let Some(discard) = &self.discard {
            discard.close();
        }
        let _ = self.phase.send(Phase::Draining);
        let until = Instant::now() + deadline;
        let flushed = self.wait_for_threads(until);
        if !flushed {
            let _ = self.phase.send(Phase::Aborted);
            // Aborting interrupts every wait of every exchange (connect, write, headers and
            // body), so the workers finish at once; this bounds how long that may take.
            self.wait_for_threads(Instant::now() + ABORT_GRACE);
        }
        for thread in std::mem::take(&mut self.threads) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        ShutdownReport {
            flushed,
            internal: self
                .internal_exporter
                .as_ref()
                .map(|exporter| exporter.stats()),
            #[cfg(feature = "user-tracing")]
            user: self.user_exporter.as_ref().map(|exporter| exporter.stats()),
            #[cfg(not(feature = "user-tracing"))]
            user: None,
        }
    }
}
