//! Where exporters run: a thread per pipeline with its own single-threaded runtime, and the
//! [`Work`] it runs (an exporter's workers, or the worker that discards spans when a
//! pipeline has no output).
//!
//! A worker that panics, whatever the cause, is restarted here; the worker module settles
//! what it held (counted as `dropped_worker_panicked`, the restart as `worker_restarts`).
//!
//! This module owns the threads and their life, and its workers'; it starts nothing by
//! itself (`init` does) and decides nothing about what is sent.

use super::worker::{Exporter, Phase};
use crate::telemetry::core::queue::SpanDrain;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// An exporter thread with its runtime, started before anything is installed and given its
/// [`Work`] after: a thread that receives none (a later step of `init` failed) just ends.
pub(crate) struct ExporterThread {
    work: std::sync::mpsc::Sender<Work>,
    thread: std::thread::JoinHandle<()>,
}

impl ExporterThread {
    pub(crate) fn start(name: &str, done: std::sync::mpsc::Sender<()>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(name)
            .build()?;
        let (work, work_rx) = std::sync::mpsc::channel::<Work>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Ok(work) = work_rx.recv() {
                    runtime.block_on(work.run());
                }
                let _ = done.send(());
            })?;
        Ok(Self { work, thread })
    }

    /// Hands the thread its work; returns the thread, to join.
    pub(crate) fn run(self, work: Work) -> std::thread::JoinHandle<()> {
        let _ = self.work.send(work);
        self.thread
    }
}

/// What an exporter thread runs: its exporter's workers, or the discarding worker.
pub(crate) struct Work {
    pub(crate) exporters: Vec<Arc<Exporter>>,
    pub(crate) discard: Option<SpanDrain>,
    phase: watch::Receiver<Phase>,
}

impl Work {
    pub(crate) fn new(phase: watch::Receiver<Phase>) -> Self {
        Self {
            exporters: Vec::new(),
            discard: None,
            phase,
        }
    }

    async fn run(self) {
        let mut handles = Vec::new();
        for exporter in self.exporters {
            for worker in 0..exporter.num_tasks() {
                handles.push(tokio::spawn(supervise(
                    Arc::clone(&exporter),
                    worker,
                    self.phase.clone(),
                )));
            }
        }
        if let Some(drain) = self.discard {
            handles.push(tokio::spawn(discard_spans(drain, self.phase.clone())));
        }
        for handle in handles {
            let _ = handle.await;
        }
    }
}

/// Runs worker `worker` of `exporter` until it ends, restarting it whenever it panics: its
/// batch in flight is dropped and counted, and the restart counted. The panic is caught by
/// the runtime, at the worker's task boundary, so nothing a worker runs (encoding, the
/// application's routing, a transport) can leave its pipeline without a worker.
async fn supervise(exporter: Arc<Exporter>, worker: usize, phase: watch::Receiver<Phase>) {
    loop {
        let run = tokio::spawn(Arc::clone(&exporter).run_worker(worker, phase.clone()));
        match run.await {
            Err(error) if error.is_panic() => exporter.settle_panicked_worker(worker),
            // Ended, or cancelled with the runtime: nothing to restart.
            _ => return,
        }
    }
}

/// Drops the internal pipeline's spans (output `none`) until shutdown; for the life of the
/// process when the driver is dropped without one, so the queue never fills.
async fn discard_spans(drain: SpanDrain, mut phase: watch::Receiver<Phase>) {
    let mut batch = Vec::with_capacity(1024);
    let mut driver_gone = false;
    loop {
        tokio::select! {
            _ = drain.recv_batch(&mut batch, 1024, Duration::from_millis(500)) => batch.clear(),
            changed = phase.changed(), if !driver_gone => match changed {
                Err(_) => driver_gone = true,
                Ok(()) if *phase.borrow() != Phase::Running => return,
                Ok(()) => {}
            },
        }
    }
}
