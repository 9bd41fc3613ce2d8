//! Internal exporter throughput, OTLP/HTTP against OTLP/gRPC, over loopback TCP and over a
//! Unix socket, measured alternately in one run: producers → queue → one exporter worker →
//! an in-process receiver that walks each request down to its spans. The same spans, in
//! the same batches (512), go out either way.
//!
//! Receivers: for HTTP, hyper's HTTP/1.1 server (`OtlpSink::counting_tcp`/`counting`); for
//! gRPC, its counterpart, hyper's HTTP/2 server reading the gRPC frame itself
//! (`GrpcSink::counting`/`counting_unix`, children `grpc_*`), and, as a second peer, tonic's
//! server (`GrpcSink::counting_tonic`/`counting_tonic_unix`, children `tonic_*`). The
//! exporter is the same in both gRPC children; only the receiver differs.
//!
//! Run: `cargo bench -p foundations-tests --bench internal_export_protocols`. Telemetry is
//! initialized once per process, so each protocol and transport runs in a child process
//! (this binary, re-executed with `FOUNDATIONS_BENCH_PROTOCOL` set) driven over a pipe. All
//! children start first; then each round times one iteration of every child, in an order
//! that rotates from round to round, so that the VM's drift lands on all of them alike
//! rather than on whichever ran last. An iteration produces 200,000 spans in traces of 10
//! and waits until the receiver has counted all of them; the child reports its wall time
//! and the CPU time its exporter thread and its receiver's threads used in it (from
//! `/proc/self/task/*/schedstat`, nanoseconds). The report gives, per child, the medians of
//! spans per second and of CPU ns per span, and per transport the ratios to HTTP of every
//! round: throughput (higher is better) and exporter CPU (lower is better), with their
//! medians. `FOUNDATIONS_BENCH_ROUNDS` sets the rounds (default 7). Each child then prints
//! wire bytes per span, requests and drops, and its CPU per span over its whole life. On a
//! 2-core machine the in-process receiver competes with the exporter, so the exporter
//! thread's own CPU is what a protocol costs the exporting process, and the steadier figure.

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

/// One timed iteration as a child measured it.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    /// CPU time of the exporter thread, and of the receiver's threads.
    exporter: Duration,
    receiver: Duration,
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

    fn run(&mut self, iterations: u64) -> Sample {
        writeln!(self.input, "{iterations}").expect("producer alive");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("producer answer");
        let nanos: Vec<u64> = line
            .split_whitespace()
            .map(|n| n.parse().expect("nanoseconds"))
            .collect();
        Sample {
            wall: Duration::from_nanos(nanos[0]),
            exporter: Duration::from_nanos(nanos[1]),
            receiver: Duration::from_nanos(nanos[2]),
        }
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

/// The children, by protocol, transport and (for gRPC) receiver: `grpc_*` send to hyper's
/// HTTP/2 server reading the gRPC frame itself, the counterpart of the HTTP children's
/// receiver (hyper's HTTP/1.1 server); `tonic_*` send to tonic's server.
const CHILDREN: [&str; 6] = [
    "http_tcp",
    "grpc_tcp",
    "tonic_tcp",
    "http_unix",
    "grpc_unix",
    "tonic_unix",
];

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn per_span(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / SPANS as f64
}

fn internal_export_protocols() {
    let rounds: usize = std::env::var("FOUNDATIONS_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(7)
        .max(1);
    let mut producers: Vec<Producer> = CHILDREN.iter().map(|name| Producer::start(name)).collect();
    // One untimed iteration each: connections open, queues and allocators warm.
    for producer in &mut producers {
        producer.run(1);
    }
    let mut samples = vec![Vec::with_capacity(rounds); CHILDREN.len()];
    for round in 0..rounds {
        for step in 0..CHILDREN.len() {
            let child = (round + step) % CHILDREN.len();
            samples[child].push(producers[child].run(1));
        }
    }
    println!(
        "internal_export, {rounds} rounds of 200k spans (traces of 10) per child, alternated; \
         per child the medians of: spans/s, CPU ns per span of the exporter thread and of the \
         receiver:"
    );
    for (name, samples) in CHILDREN.iter().zip(&samples) {
        let mut rates: Vec<f64> = samples
            .iter()
            .map(|s| SPANS as f64 / s.wall.as_secs_f64())
            .collect();
        let mut exporter: Vec<f64> = samples.iter().map(|s| per_span(s.exporter)).collect();
        let mut receiver: Vec<f64> = samples.iter().map(|s| per_span(s.receiver)).collect();
        let rate = median(&mut rates);
        println!(
            "  {name:>10}: {:.3}M spans/s (min {:.3}M, max {:.3}M); exporter {:.0} ns/span; \
             receiver {:.0} ns/span",
            rate / 1e6,
            rates[0] / 1e6,
            rates[rates.len() - 1] / 1e6,
            median(&mut exporter),
            median(&mut receiver),
        );
    }
    println!("  ratios to HTTP over the same transport, per round then the median:");
    for (label, http, other) in [
        ("gRPC/HTTP tcp ", 0, 1),
        ("tonic/HTTP tcp ", 0, 2),
        ("gRPC/HTTP unix", 3, 4),
        ("tonic/HTTP unix", 3, 5),
    ] {
        // Throughput: higher is better; exporter CPU: lower is better.
        let mut wall: Vec<f64> = samples[other]
            .iter()
            .zip(&samples[http])
            .map(|(o, h)| h.wall.as_secs_f64() / o.wall.as_secs_f64())
            .collect();
        let mut cpu: Vec<f64> = samples[other]
            .iter()
            .zip(&samples[http])
            .map(|(o, h)| o.exporter.as_secs_f64() / h.exporter.as_secs_f64())
            .collect();
        let rounds: Vec<String> = wall.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "  {label:>15}: throughput {:.2} ({}); exporter CPU {:.2}",
            median(&mut wall),
            rounds.join(" "),
            median(&mut cpu),
        );
    }
    for (name, producer) in CHILDREN.iter().zip(producers) {
        println!("  {name}: {}", producer.finish());
    }
}

/// CPU time used so far by this process's threads: (the producer, i.e. the main thread;
/// the exporter thread; every other thread, i.e. the receiver). Read from each thread's
/// `schedstat` (nanoseconds), falling back to `stat` (clock ticks) where it is missing.
fn cpu_by_role() -> (Duration, Duration, Duration) {
    let pid = std::process::id().to_string();
    let (mut producer, mut exporter, mut other) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        let cpu = thread_cpu(&task.path());
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

fn thread_cpu(task: &std::path::Path) -> Duration {
    let schedstat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
    if let Some(nanos) = schedstat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n > 0)
    {
        return Duration::from_nanos(nanos);
    }
    // utime and stime: the 12th and 13th fields after the parenthesised name, in USER_HZ.
    let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

/// The child: exports over `protocol` and answers timing requests on stdin/stdout.
fn child(protocol: &str) {
    enum Sink {
        Http(OtlpSink),
        Grpc(GrpcSink),
    }
    let (sink, output) = match protocol {
        "http_tcp" => {
            let sink = OtlpSink::counting_tcp();
            let output = format!(
                "otlp_http:\n      endpoint: http://{}",
                sink.addr().unwrap()
            );
            (Sink::Http(sink), output)
        }
        "http_unix" => {
            let sink = OtlpSink::counting();
            let output = format!(
                "otlp_http:\n      endpoint: unix://{}",
                sink.path().display()
            );
            (Sink::Http(sink), output)
        }
        grpc => {
            let sink = match grpc {
                "grpc_unix" => GrpcSink::counting_unix(),
                "tonic_tcp" => GrpcSink::counting_tonic(),
                "tonic_unix" => GrpcSink::counting_tonic_unix(),
                _ => GrpcSink::counting(),
            };
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
        let (_, exporter_before, receiver_before) = cpu_by_role();
        for _ in 0..iterations {
            let target = count() + SPANS;
            let started = Instant::now();
            produce();
            while count() < target {
                std::thread::sleep(Duration::from_micros(200));
            }
            total += started.elapsed();
        }
        let (_, exporter_after, receiver_after) = cpu_by_role();
        writeln!(
            stdout,
            "{} {} {}",
            total.as_nanos(),
            (exporter_after - exporter_before).as_nanos(),
            (receiver_after - receiver_before).as_nanos()
        )
        .unwrap();
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
        producer.as_nanos() as f64 / stats.spans_exported.max(1) as f64,
        exporter.as_nanos() as f64 / stats.spans_exported.max(1) as f64,
        receiver.as_nanos() as f64 / stats.spans_exported.max(1) as f64,
    )
    .unwrap();
}

fn main() {
    if let Ok(protocol) = std::env::var(CHILD) {
        return child(&protocol);
    }
    internal_export_protocols();
}
