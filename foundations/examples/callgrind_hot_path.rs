//! A callgrind harness for the hot path in a production build (no `testing` code):
//! `telemetry::init` with an OTLP output, as a service runs. It is how this repository's
//! instruction counts for the hot path are taken; counts are stable where wall time on a
//! shared machine is not.
//!
//! ```sh
//! cargo build --release -p foundations --features user-tracing --example callgrind_hot_path
//! valgrind --tool=callgrind --toggle-collect='callgrind_hot_path::run*' \
//!     target/release/examples/callgrind_hot_path recorded 2000
//! ```
//!
//! Cases, each repeated N times:
//! - `recorded`: a sampled root and 9 children, each child made current with one tag;
//! - `unsampled`: the same with sampling ratio 0.0;
//! - `polls`: one poll of a future that carries both pipelines' spans (`TelemetryContext::apply`);
//! - `off`: `tracing::span()` with nothing installed.
//!
//! Per iteration: (count for N=2000 − count for N=1000) / 1000. The exporter's endpoint
//! refuses connections: recorded spans are counted as dropped there, which the calling
//! thread does not see.

use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::{self, TelemetryContext, tracing, user_tracing};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A future that returns `Pending` `0` more times, then `Ready`.
struct Yields(usize);

impl Future for Yields {
    type Output = ();

    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            Poll::Ready(())
        } else {
            self.0 -= 1;
            Poll::Pending
        }
    }
}

/// A user trace's routing.
#[derive(Debug)]
struct Tenant;

impl user_tracing::RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        "t".into()
    }

    fn encode(&self) -> String {
        "tenant=1".into()
    }
}

fn settings(ratio: f64) -> TelemetrySettings {
    TelemetrySettings::from_yaml(&format!(
        "tracing:\n  service_name: hot\n  sampling:\n    ratio: {ratio}\n  output:\n    \
         otlp_http:\n      endpoint: http://127.0.0.1:9\nuser_tracing:\n  socket_path: \
         /tmp/callgrind-hot-path.sock\n  service_name: hot\n"
    ))
    .expect("valid settings")
}

#[inline(never)]
fn run(case: &str, n: usize) {
    match case {
        "recorded" | "unsampled" => {
            for _ in 0..n {
                let _root = tracing::start_trace("root", Default::default());
                for _ in 0..9 {
                    let _child = tracing::span("child");
                    foundations::add_span_tags!("key" => "value");
                }
            }
        }
        "polls" => {
            let _root = tracing::start_trace("root", Default::default());
            let _user = user_tracing::start_user_trace("root", Tenant, None);
            let mut future = std::pin::pin!(TelemetryContext::current().apply(Yields(n)));
            let mut cx = Context::from_waker(Waker::noop());
            while future.as_mut().poll(&mut cx).is_pending() {}
        }
        "off" => {
            for _ in 0..n {
                drop(black_box(tracing::span(black_box("span"))));
            }
        }
        other => panic!("unknown case {other}: recorded, unsampled, polls or off"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "recorded".into());
    let n: usize = args.next().map_or(1000, |n| n.parse().expect("a count"));
    let _driver = match case.as_str() {
        "off" => None,
        "unsampled" => Some(telemetry::init(&settings(0.0)).expect("init")),
        _ => Some(telemetry::init(&settings(1.0)).expect("init")),
    };
    run(&case, n);
}
