//! A callgrind harness for what the `peers` bench times: the same work, `N` times, in the
//! same build (feature `testing`, the exporter-less harness drained on a thread of its own),
//! without criterion. The `testing` build differs from a production one (see
//! `callgrind_hot_path`) by what the feature compiles in; this is how that difference is
//! counted.
//!
//! ```sh
//! cargo build --release -p foundations --features testing,user-tracing --example callgrind_peers
//! valgrind --tool=callgrind --toggle-collect='callgrind_peers::run*' \
//!     target/release/examples/callgrind_peers internal 2000
//! ```
//!
//! Cases, each a root and 9 children, each child made current with one tag, repeated N
//! times: `internal` (sampling ratio 1.0), `user`, `unsampled` (internal, ratio 0.0).
//! Per iteration: (count for N=2000 − count for N=1000) / 1000.

#[path = "../benches/common/mod.rs"]
mod common;

use common::Zone;
use foundations::add_user_span_tags;
use foundations::telemetry::testing::{HarnessOptions, install_tracing, install_user_tracing};
use foundations::telemetry::tracing::StartTraceOptions;
use foundations::telemetry::user_tracing;

#[inline(never)]
fn run(case: &str, n: usize) {
    match case {
        "internal" | "unsampled" => {
            for _ in 0..n {
                common::internal_root_plus_9_tagged_children(StartTraceOptions::default());
            }
        }
        "user" => {
            for _ in 0..n {
                let _root = user_tracing::start_user_trace("root", Zone(1), None);
                for _ in 0..9 {
                    let _child = user_tracing::user_span("child");
                    add_user_span_tags!("key" => "value");
                }
            }
        }
        other => panic!("unknown case {other}: internal, user or unsampled"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "internal".into());
    let n: usize = args.next().map_or(1000, |n| n.parse().expect("a count"));
    let ratio = if case == "unsampled" { 0.0 } else { 1.0 };
    common::spawn_batch_consumer(
        install_tracing(HarnessOptions::default().sampling_ratio(ratio)).expect("installed once"),
    );
    common::spawn_batch_consumer(
        install_user_tracing(HarnessOptions::default()).expect("installed once"),
    );
    run(&case, n);
}
