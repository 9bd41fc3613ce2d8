//! What the live registry and the root rate limit cost per root, each against its own
//! absence in the same run, on the installed internal harness (100% sampling, queue
//! drained by a consumer thread).
//!
//! - `live_registry/*`: a recorded root without and with a tag, and a root with 9 tagged
//!   children, with the
//!   registry on and off (`tracing::set_live_traces_enabled`).
//! - `rate_limit/*`: a recorded root with the limit enabled (10,000,000 roots per second:
//!   asked, never refusing at this pace) against `force_sampling(true)` roots, which take
//!   the same path without asking the limiter.
//!
//! Run: `cargo bench -p foundations --features testing --bench live_and_rate_limit`.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use foundations::add_span_tags;
use foundations::telemetry::testing::{HarnessOptions, install_tracing};
use foundations::telemetry::tracing::{self, StartTraceOptions};

fn root_only(options: StartTraceOptions) {
    let _root = tracing::start_trace("root", options);
    add_span_tags!("http.route" => "/users");
}

fn registry_and_limit(c: &mut Criterion) {
    let options = HarnessOptions::default()
        .sampling_ratio(1.0)
        .max_roots_per_second(Some(10_000_000));
    let drain = install_tracing(options).expect("harness installs once per bench process");
    common::spawn_batch_consumer(drain);

    let mut group = c.benchmark_group("live_registry");
    for (label, on) in [("off", false), ("on", true), ("off_again", false)] {
        group.bench_function(format!("untagged_root/registry_{label}"), |b| {
            tracing::set_live_traces_enabled(on);
            b.iter(|| drop(tracing::start_trace("root", StartTraceOptions::default())))
        });
        group.bench_function(format!("root_only/registry_{label}"), |b| {
            tracing::set_live_traces_enabled(on);
            b.iter(|| root_only(StartTraceOptions::default()))
        });
        group.bench_function(
            format!("root_plus_9_tagged_children/registry_{label}"),
            |b| {
                tracing::set_live_traces_enabled(on);
                b.iter(
                    || common::internal_root_plus_9_tagged_children(StartTraceOptions::default()),
                )
            },
        );
    }
    group.finish();

    tracing::set_live_traces_enabled(false);
    let mut group = c.benchmark_group("rate_limit");
    for label in ["skipped", "enabled", "skipped_again", "enabled_again"] {
        let options = if label.starts_with("skipped") {
            StartTraceOptions::default().force_sampling(true)
        } else {
            StartTraceOptions::default()
        };
        group.bench_function(format!("root_only/limit_{label}"), |b| {
            b.iter(|| root_only(options.clone()))
        });
    }
    group.finish();
}

criterion_group!(benches, registry_and_limit);
criterion_main!(benches);
