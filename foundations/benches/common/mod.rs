//! Shared bench setup.

use foundations::add_span_tags;
use foundations::telemetry::testing::SpanDrain;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use std::time::Duration;

/// The traced work the internal hot-path benches time: a root started with `options` and
/// 9 children, each tagged as instrumented code does. 10 spans.
#[allow(dead_code)] // Not every bench that shares this module uses it.
#[inline]
pub fn internal_root_plus_9_tagged_children(options: StartTraceOptions) {
    let _root = tracing::start_trace("root", options);
    for _ in 0..9 {
        let _child = tracing::span("child");
        add_span_tags!("key" => "value");
    }
}

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

/// A user trace's routing for the user-pipeline benches: one zone.
#[cfg(feature = "user-tracing")]
#[allow(dead_code)] // Not every bench that shares this module uses it.
#[derive(Debug)]
pub struct Zone(pub u64);

#[cfg(feature = "user-tracing")]
impl foundations::telemetry::user_tracing::RoutingMetadata for Zone {
    fn group_key(&self) -> String {
        self.0.to_string()
    }
    fn encode(&self) -> String {
        format!("zone={}", self.0)
    }
}
