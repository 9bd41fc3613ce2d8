//! The demo HTTP service on its own, configured from `examples/config.yaml` (or the file
//! given as the first argument): the backend and the service on the configured addresses,
//! exporting internal spans and per-tenant user spans as the config says, until Ctrl-C.
//!
//! ```sh
//! mkdir -p /tmp/foundations-demo
//! cargo run -p foundations-examples --example trace-sink -- --socket /tmp/foundations-demo/user.sock &
//! cargo run -p foundations-examples --example trace-sink -- --socket /tmp/foundations-demo/internal.sock &
//! cargo run -p foundations-examples --example http-service
//! curl -H 'x-tenant: acme' http://127.0.0.1:8080/users/42
//! ```

use foundations::telemetry;
use foundations_examples::demo::DemoConfig;
use foundations_examples::service::{self, Service};
use std::path::PathBuf;
use std::time::Duration;

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
    let backend = bind(config.service.backend).await;
    let listener = bind(config.service.listen).await;
    tokio::spawn(service::serve(backend, service::backend));
    let app = Service::new(config.service.backend);
    tokio::spawn(service::serve(listener, move |request| {
        Service::handle(app.clone(), request)
    }));
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
