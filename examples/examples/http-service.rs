//! The demo HTTP service on its own, configured from `examples/config.yaml` (or the file
//! given as the first argument): the backend and the service on the configured addresses,
//! exporting internal spans and per-tenant user spans as the config says, until Ctrl-C.
//!
//! The service is an axum router traced by foundations' tower layers (see
//! `examples/src/service.rs`); `tracing` spans (of the service or its libraries, hyper's own
//! kept out) are recorded as internal spans through the `tracing` bridge.
//!
//! ```sh
//! mkdir -p /tmp/foundations-demo
//! cargo run -p foundations-examples --example trace-sink -- --socket /tmp/foundations-demo/user.sock &
//! cargo run -p foundations-examples --example trace-sink -- --socket /tmp/foundations-demo/internal.sock &
//! cargo run -p foundations-examples --example http-service
//! curl -H 'x-tenant: acme' http://127.0.0.1:8080/users/42
//! curl http://127.0.0.1:8080/debug/traces    # the requests in flight, as JSON
//! ```

use foundations::telemetry;
use foundations::telemetry::bridge::TracingBridge;
use foundations_examples::demo::DemoConfig;
use foundations_examples::service::{self, Service};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.yaml"));
    let config = match DemoConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("http-service: {error}");
            std::process::exit(2);
        }
    };
    let driver = match telemetry::init(&config.telemetry) {
        Ok(driver) => driver,
        Err(error) => {
            eprintln!("http-service: {error}");
            std::process::exit(2);
        }
    };
    let bind = |addr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|error| {
                eprintln!("http-service: cannot listen on {addr}: {error}");
                std::process::exit(1);
            })
    };
    // `tracing` spans become internal spans; hyper's and h2's internals stay out.
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF);
    tracing_subscriber::registry()
        .with(TracingBridge::new().with_filter(filter))
        .init();

    // `GET /debug/traces` then shows where each request in flight is, not only that it is.
    foundations::telemetry::tracing::set_live_descendants_enabled(true);

    let backend = bind(config.service.backend).await;
    let listener = bind(config.service.listen).await;
    tokio::spawn(service::serve(backend, service::backend));
    let app = Service::new(config.service.backend);
    tokio::spawn(async move { axum::serve(listener, app.router()).await });
    println!(
        "http-service: listening on http://{}",
        config.service.listen
    );

    let _ = tokio::signal::ctrl_c().await;
    let report = tokio::task::spawn_blocking(move || driver.shutdown(Duration::from_secs(5)))
        .await
        .expect("shutdown");
    println!("http-service: stopped; {report:?}");
}
