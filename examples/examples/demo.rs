//! The main demo. `cargo run -p foundations-examples --example demo`
//!
//! Starts, in one process: two trace sinks on Unix sockets (one per pipeline), a backend and
//! an HTTP service on loopback. Sends four requests: two tenants, one continuing an inbound
//! `traceparent`, one failing, one without a tenant. Then shuts telemetry down with a flush
//! and prints every trace as a waterfall: the user pipeline's (per customer, with its
//! routing) and the internal pipeline's.

fn main() {
    let mut stdout = std::io::stdout();
    match foundations_examples::demo::run_demo(&mut stdout) {
        Ok(report) => {
            let dropped = report.user_stats.map_or(0, |s| s.dropped())
                + report.internal_stats.map_or(0, |s| s.dropped());
            if dropped > 0 {
                eprintln!("demo: {dropped} spans were dropped");
                std::process::exit(1);
            }
        }
        Err(error) => {
            eprintln!("demo failed: {error}");
            std::process::exit(1);
        }
    }
}
