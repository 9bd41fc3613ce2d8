//! `trace-sink`: receive OTLP/HTTP traces on a Unix socket and print each one as a waterfall.
//!
//! ```text
//! cargo run -p foundations-examples --example trace-sink -- --socket /tmp/traces.sock \
//!     [--json out.jsonl] [--quiet-ms 300] [--width 60] [--routing-header cf-trace-config]
//! ```
//!
//! Point the user pipeline's Unix-socket exporter at the socket. A trace is printed once no
//! new span of it arrived for `--quiet-ms`; Ctrl-C (or SIGTERM) prints what is pending,
//! removes the socket and exits 0. Bad arguments exit 2, a socket that cannot be bound 1.
//! See `foundations_examples::trace_sink` for the HTTP behaviour and the JSON fields.

use foundations_examples::trace_sink::cli::{USAGE, parse_args};
use foundations_examples::trace_sink::{SinkOptions, TraceSink};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("trace-sink: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let mut options = SinkOptions::default()
        .with_quiet_period(Duration::from_millis(args.quiet_ms))
        .with_width(args.width)
        .with_routing_header(args.routing_header)
        .print_to_stdout();
    if let Some(json) = &args.json {
        options = match options.json_file(json) {
            Ok(options) => options,
            Err(e) => {
                eprintln!("trace-sink: cannot open the JSON output: {e}");
                return ExitCode::from(2);
            }
        };
    }
    let mut sink = match TraceSink::start(&args.socket, options) {
        Ok(sink) => sink,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::InvalidInput {
                2
            } else {
                1
            };
            eprintln!("trace-sink: cannot start: {e}");
            return ExitCode::from(code);
        }
    };
    eprintln!(
        "trace-sink: listening on {} (POST /v1/traces); Ctrl-C to stop",
        args.socket.display()
    );

    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(shutdown_signal()));
    if let Err(e) = waited {
        eprintln!("trace-sink: cannot wait for signals: {e}");
    }

    sink.stop();
    let stats = sink.stats();
    eprintln!(
        "trace-sink: stopped; {} traces, {} spans from {} requests ({} refused, {} spans rejected)",
        sink.traces().len(),
        stats.spans,
        stats.accepted_requests,
        stats.refused_requests,
        stats.rejected_spans,
    );
    ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
