//! A callgrind harness for the server layer in a production build (no `testing` code):
//! `telemetry::init` exporting every span over OTLP/HTTP to a receiver on a local socket,
//! as the production group of the `tower_server` bench does. Beside `callgrind_bridges`'s
//! `bare`/`traced` cases (test harness drained by a plain consumer), it shows what a live
//! exporter on another thread costs the calling thread.
//!
//! ```sh
//! cargo build --release -p foundations --features tower --example callgrind_tower_production
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='callgrind_tower_production::tower_requests::requests*' \
//!     target/release/examples/callgrind_tower_production traced 2000
//! ```
//!
//! Cases: `bare`, `traced` (one request through the server layer, its route a
//! `&'static str`). Per request: (count for N=2000 − count for N=1000) / 1000. The exporter's
//! counts are printed at the end: every span exported, or dropped and counted.

#[path = "../benches/common/otlp_receiver.rs"]
mod receiver;

#[path = "../benches/common/tower_requests.rs"]
mod tower_requests;

use std::time::Duration;
use tower_requests::{Bare, requests, traced};

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "traced".to_owned());
    let iters: u64 = args.next().map_or(2000, |n| n.parse().expect("a count"));

    let driver = receiver::init_exporting_to_receiver("callgrind");

    match case.as_str() {
        "bare" => requests(&mut Bare, iters),
        "traced" => requests(&mut traced(), iters),
        other => panic!("unknown case {other}"),
    }

    let stats = driver
        .shutdown(Duration::from_secs(30))
        .internal
        .expect("the internal exporter ran");
    println!(
        "{} spans produced, {} exported, {} dropped",
        stats.produced(),
        stats.spans_exported,
        stats.dropped(),
    );
}
