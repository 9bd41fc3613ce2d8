//! [`init`] and the [`TelemetryDriver`] it returns: installs the harnesses and runs the
//! exporters, and shuts them down with a flush.
//!
//! Exporter workers run on a dedicated OS thread, `foundations-exporter`, with its own
//! single-threaded tokio runtime. They never compete with the application's runtime for its
//! worker threads, and `init` works whether or not it is called inside a runtime.
//!
//! This module owns the process-wide lifecycle and the wiring: settings in, harnesses and
//! exporters out. It must not know how spans are recorded (that is the pipelines') or how
//! they are encoded and sent (that is `export`'s).

use crate::telemetry::core::harness::{self, HarnessOptions, InstallError};
use crate::telemetry::core::pipeline::Internal;
use crate::telemetry::core::queue::SpanDrain;
use crate::telemetry::export::{
    Exporter, ExporterConfig, ExporterStats, OtlpEncoder, Phase, Transport,
};
use crate::telemetry::settings::{
    Endpoint, OtlpProtocol, ResolvedTracing, SettingsError, TelemetrySettings, TracingSettings,
};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
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
/// use std::time::Duration;
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
    let mut exporters: Vec<Arc<Exporter>> = Vec::new();
    #[cfg(feature = "user-tracing")]
    let user_exporter = match &settings.user_tracing {
        Some(user) if user.enabled => Some(user_exporter(user)?),
        _ => None,
    };
    #[cfg(feature = "user-tracing")]
    exporters.extend(user_exporter.iter().cloned());

    // The internal pipeline: an exporter, or a worker that discards (output `none`).
    let mut discard: Option<SpanDrain> = None;
    let internal_exporter = if settings.tracing.enabled {
        let tracing_settings = &settings.tracing;
        let transport = match &resolved.endpoint {
            Some(endpoint) => Some(internal_transport(endpoint, resolved, tracing_settings)?),
            None => None,
        };
        let options = HarnessOptions::default()
            .sampling_ratio(resolved.sampling_ratio)
            .parent_based(resolved.parent_based)
            .max_queue_size(tracing_settings.export.max_queue_size);
        let drain = harness::install::<Internal>(&options).map_err(InitError::Install)?;
        match transport {
            Some(transport) => {
                let encoder =
                    OtlpEncoder::new(&resolved.service_name, resolved.resource_attributes.clone())
                        .with_static_tags(
                            tracing_settings
                                .static_tags
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        );
                let config = ExporterConfig::new(&tracing_settings.export, None, encoder);
                let exporter = Exporter::new(config, transport, drain);
                exporters.push(Arc::clone(&exporter));
                Some(exporter)
            }
            None => {
                discard = Some(drain);
                None
            }
        }
    } else {
        None
    };

    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("foundations-exporter")
        .build()
        .map_err(InitError::Runtime)?;
    let workers: Vec<_> = exporters
        .iter()
        .flat_map(|exporter| {
            (0..exporter.num_tasks()).map(|_| (Arc::clone(exporter), phase_rx.clone()))
        })
        .collect();
    let discard_phase = phase_rx.clone();
    let thread = std::thread::Builder::new()
        .name("foundations-exporter".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let mut handles: Vec<_> = workers
                    .into_iter()
                    .map(|(exporter, phase)| tokio::spawn(exporter.run_worker(phase)))
                    .collect();
                if let Some(drain) = discard {
                    handles.push(tokio::spawn(discard_spans(drain, discard_phase)));
                }
                for handle in handles {
                    let _ = handle.await;
                }
            });
            let _ = done_tx.send(());
        })
        .map_err(InitError::Runtime)?;

    #[cfg(feature = "user-tracing")]
    if let Some(exporter) = &user_exporter {
        let _ = USER_EXPORTER.set(Arc::clone(exporter));
    }
    if let Some(exporter) = &internal_exporter {
        let _ = INTERNAL_EXPORTER.set(Arc::clone(exporter));
    }

    Ok(TelemetryDriver {
        phase: phase_tx,
        done: done_rx,
        thread: Some(thread),
        internal_exporter,
        #[cfg(feature = "user-tracing")]
        user_exporter,
    })
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
            Transport::new(endpoint, settings.export.num_tasks, ca_bundle)
        }
    };
    transport.map_err(|message| SettingsError::new(field, message))
}

#[cfg(feature = "user-tracing")]
fn user_exporter(
    user: &crate::telemetry::settings::UserTracingSettings,
) -> Result<Arc<Exporter>, InitError> {
    let routing_header = hyper::header::HeaderName::from_bytes(user.routing_header.as_bytes())
        .map_err(|_| {
            SettingsError::new("user_tracing.routing_header", "not a valid header name")
        })?;
    let drain = harness::install::<crate::telemetry::core::pipeline::User>(
        &HarnessOptions::default().max_queue_size(user.export.max_queue_size),
    )
    .map_err(InitError::Install)?;
    let transport = Transport::new(
        Endpoint::Unix(user.socket_path.clone()),
        user.export.num_tasks,
        None,
    )
    .map_err(|message| SettingsError::new("user_tracing.socket_path", message))?;
    let encoder = OtlpEncoder::new(&user.service_name, Vec::new());
    let config = ExporterConfig::new(&user.export, Some(routing_header), encoder);
    Ok(Exporter::new(config, transport, drain))
}

/// Drops the internal pipeline's spans (output `none`) until shutdown.
async fn discard_spans(drain: SpanDrain, mut phase: watch::Receiver<Phase>) {
    let mut batch = Vec::with_capacity(1024);
    loop {
        tokio::select! {
            _ = drain.recv_batch(&mut batch, 1024, Duration::from_millis(500)) => batch.clear(),
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Running {
                    return;
                }
            }
        }
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
/// Dropping the driver without shutting down leaves the exporters running for the rest of
/// the process.
pub struct TelemetryDriver {
    phase: watch::Sender<Phase>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    internal_exporter: Option<Arc<Exporter>>,
    #[cfg(feature = "user-tracing")]
    user_exporter: Option<Arc<Exporter>>,
}

impl fmt::Debug for TelemetryDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryDriver").finish_non_exhaustive()
    }
}

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
    /// Counters of the internal exporter (an OTLP output).
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
    /// `dropped_at_shutdown`.
    pub fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let _ = self.phase.send(Phase::Draining);
        let flushed = self.done.recv_timeout(deadline).is_ok();
        if !flushed {
            let _ = self.phase.send(Phase::Aborted);
            // Aborting interrupts every wait; the workers finish promptly.
            let _ = self.done.recv_timeout(Duration::from_secs(5));
        }
        if let Some(thread) = self.thread.take() {
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
