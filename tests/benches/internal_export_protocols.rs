//! Internal exporter throughput, OTLP/HTTP against OTLP/gRPC, in one criterion run:
//! producers → queue → one exporter worker → loopback TCP → an in-process receiver that
//! walks each request down to its spans (the HTTP/1.1 sink of `OtlpSink::counting_tcp`,
//! the tonic HTTP/2 sink of `GrpcSink::counting`).
//!
//! Run: `cargo bench -p foundations-tests --bench internal_export_protocols`. Telemetry is
//! initialized once per process, so each protocol runs in a child process (this binary,
//! re-executed with `FOUNDATIONS_BENCH_PROTOCOL` set) that criterion drives over a pipe: both
//! children start before either is measured, and each iteration produces 200,000 spans in
//! traces of 10 and waits until the receiver has counted all of them. The throughput line is
//! spans delivered per second. Each child prints wire bytes per span, requests and drops at
//! the end, and the CPU time per span of its producer, exporter and receiver threads: on a
//! 2-core machine the in-process receiver competes with the exporter, so the exporter
//! thread's own figure is what a protocol costs the exporting process.

use criterion::{Criterion, Throughput, criterion_group};
use foundations::add_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::{GrpcSink, OtlpSink};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const SPANS: usize = 200_000;
const CHILD: &str = "FOUNDATIONS_BENCH_PROTOCOL";

fn produce() {
    for _ in 0..SPANS / 10 {
        let _root = tracing::start_trace("request", StartTraceOptions::default());
        for _ in 0..9 {
            let _child = tracing::span("child");
            add_span_tags!("key" => "value");
        }
    }
}

/// A child process exporting over one protocol; `run(n)` times `n` iterations there.
struct Producer {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Producer {
    fn start(protocol: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this bench"))
            .env(CHILD, protocol)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the producer");
        let input = child.stdin.take().expect("piped");
        let mut output = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        output.read_line(&mut line).expect("ready line");
        assert_eq!(line.trim(), "ready", "{protocol} producer");
        Self {
            child,
            input,
            output,
        }
    }

    fn run(&mut self, iterations: u64) -> Duration {
        writeln!(self.input, "{iterations}").expect("producer alive");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("producer answer");
        Duration::from_nanos(line.trim().parse().expect("nanoseconds"))
    }

    /// Ends the child and returns its summary line.
    fn finish(mut self) -> String {
        drop(self.input);
        let mut summary = String::new();
        let _ = self.output.read_line(&mut summary);
        let _ = self.child.wait();
        summary.trim().to_owned()
    }
}

fn internal_export_protocols(c: &mut Criterion) {
    let mut http = Producer::start("http");
    let mut grpc = Producer::start("grpc");

    let mut group = c.benchmark_group("internal_export");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("otlp_http_tcp/200k_spans_traces_of_10", |b| {
        b.iter_custom(|iterations| http.run(iterations))
    });
    group.bench_function("otlp_grpc_tcp/200k_spans_traces_of_10", |b| {
        b.iter_custom(|iterations| grpc.run(iterations))
    });
    group.finish();

    println!("internal_export/otlp_http_tcp: {}", http.finish());
    println!("internal_export/otlp_grpc_tcp: {}", grpc.finish());
}

/// CPU seconds used so far by this process's threads: (the producer, i.e. the main thread;
/// the exporter thread; every other thread, i.e. the receiver).
fn cpu_by_role() -> (f64, f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let pid = std::process::id().to_string();
    let (mut producer, mut exporter, mut other) = (0.0, 0.0, 0.0);
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let (Ok(stat), Ok(comm)) = (
            std::fs::read_to_string(task.path().join("stat")),
            std::fs::read_to_string(task.path().join("comm")),
        ) else {
            continue;
        };
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let cpu = fields.get(11..13).map_or(0.0, |f| {
            f.iter().filter_map(|v| v.parse::<f64>().ok()).sum::<f64>() / ticks
        });
        if task.file_name().to_string_lossy() == pid {
            producer += cpu;
        } else if comm.trim() == "foundations-exp" {
            exporter += cpu;
        } else {
            other += cpu;
        }
    }
    (producer, exporter, other)
}

/// The child: exports over `protocol` and answers timing requests on stdin/stdout.
fn child(protocol: &str) {
    enum Sink {
        Http(OtlpSink),
        Grpc(GrpcSink),
    }
    let (sink, output) = match protocol {
        "http" => {
            let sink = OtlpSink::counting_tcp();
            let output = format!(
                "otlp_http:\n      endpoint: http://{}",
                sink.addr().unwrap()
            );
            (Sink::Http(sink), output)
        }
        _ => {
            let sink = GrpcSink::counting();
            let output = format!("otlp_grpc:\n      endpoint: {}", sink.endpoint());
            (Sink::Grpc(sink), output)
        }
    };
    let count = || match &sink {
        Sink::Http(sink) => sink.span_count(),
        Sink::Grpc(sink) => sink.span_count(),
    };
    let yaml = format!(
        "tracing:\n  num_tasks: 1\n  max_batch_size: 512\n  flush_interval_ms: 20\n  \
         output:\n    {output}\n"
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let iterations: u64 = line.unwrap().trim().parse().unwrap();
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            let target = count() + SPANS;
            let started = Instant::now();
            produce();
            while count() < target {
                std::thread::sleep(Duration::from_micros(200));
            }
            total += started.elapsed();
        }
        writeln!(stdout, "{}", total.as_nanos()).unwrap();
        stdout.flush().unwrap();
    }
    let (producer, exporter, receiver) = cpu_by_role();
    let stats = driver.shutdown(Duration::from_secs(10)).internal.unwrap();
    let (wire, requests) = match &sink {
        Sink::Http(sink) => (sink.wire_bytes(), sink.request_count()),
        Sink::Grpc(sink) => (sink.wire_bytes(), sink.call_count()),
    };
    writeln!(
        stdout,
        "{:.1} wire bytes/span, {requests} requests, {} spans exported, {} dropped; CPU ns \
         per span: producer {:.0}, exporter thread {:.0}, receiver {:.0}",
        wire as f64 / count().max(1) as f64,
        stats.spans_exported,
        stats.dropped(),
        producer * 1e9 / stats.spans_exported.max(1) as f64,
        exporter * 1e9 / stats.spans_exported.max(1) as f64,
        receiver * 1e9 / stats.spans_exported.max(1) as f64,
    )
    .unwrap();
}

criterion_group!(benches, internal_export_protocols);

fn main() {
    if let Ok(protocol) = std::env::var(CHILD) {
        return child(&protocol);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
