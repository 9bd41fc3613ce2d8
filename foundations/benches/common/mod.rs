//! Shared bench setup.

use foundations::telemetry::tracing::SpanDrain;
use std::time::Duration;

/// Drains `drain` on its own thread the way an exporter does: woken per batch of 512 spans
/// or every 100 ms, whichever comes first.
pub fn spawn_batch_consumer(drain: SpanDrain) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("consumer runtime");
        runtime.block_on(async move {
            let mut batch = Vec::with_capacity(512);
            loop {
                drain
                    .recv_batch(&mut batch, 512, Duration::from_millis(100))
                    .await;
                batch.clear();
            }
        })
    });
}
