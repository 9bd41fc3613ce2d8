//! Internal exporter throughput, OTLP/HTTP against OTLP/gRPC, over loopback TCP and over a
//! Unix socket, measured alternately in one run: producers → queue → one exporter worker →
//! an in-process receiver that walks each request down to its spans (the HTTP/1.1 sinks of
//! `OtlpSink::counting_tcp`/`counting`, the tonic HTTP/2 sinks of
//! `GrpcSink::counting`/`counting_unix`).
//!
//! Run: `cargo bench -p foundations-tests --bench internal_export_protocols`. Telemetry is
//! initialized once per process, so each protocol and transport runs in a child process
//! (this binary, re-executed with `FOUNDATIONS_BENCH_PROTOCOL` set) driven over a pipe. All
//! four children start first; then each round times one iteration of every child, in an
//! order that rotates from round to round, so that the VM's drift lands on all of them alike
//! rather than on whichever ran last. An iteration produces 200,000 spans in traces of 10
//! and waits until the receiver has counted all of them. The report gives, per child, the
//! median spans delivered per second, and per transport the gRPC/HTTP ratio of every round
//! and its median. `FOUNDATIONS_BENCH_ROUNDS` sets the rounds (default 7). Each child then
//! prints wire bytes per span, requests and drops, and the CPU time per span of its
//! producer, exporter and receiver threads: on a 2-core machine the in-process receiver
//! competes with the exporter, so the exporter thread's own figure is what a protocol costs
//! the exporting process.

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

/// The children, by protocol and transport.
const CHILDREN: [&str; 4] = ["http_tcp", "grpc_tcp", "http_unix", "grpc_unix"];

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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
    let mut rates = vec![Vec::with_capacity(rounds); CHILDREN.len()];
    for round in 0..rounds {
        for step in 0..CHILDREN.len() {
            let child = (round + step) % CHILDREN.len();
            let elapsed = producers[child].run(1);
            rates[child].push(SPANS as f64 / elapsed.as_secs_f64());
        }
    }
    println!(
        "internal_export, {rounds} rounds of 200k spans (traces of 10) per child, alternated:"
    );
    for (name, rates) in CHILDREN.iter().zip(&rates) {
        let mut sorted = rates.clone();
        println!(
            "  {name:>9}: median {:.3}M spans/s (min {:.3}M, max {:.3}M)",
            median(&mut sorted) / 1e6,
            sorted[0] / 1e6,
            sorted[sorted.len() - 1] / 1e6
        );
    }
    for (transport, http, grpc) in [("tcp", 0, 1), ("unix", 2, 3)] {
        let mut ratios: Vec<f64> = rates[grpc]
            .iter()
            .zip(&rates[http])
            .map(|(grpc, http)| grpc / http)
            .collect();
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "  gRPC/HTTP over {transport}: median {:.2}; per round {}",
            median(&mut ratios),
            per_round.join(" ")
        );
    }
    for (name, producer) in CHILDREN.iter().zip(producers) {
        println!("  {name}: {}", producer.finish());
    }
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
        "grpc_unix" => {
            let sink = GrpcSink::counting_unix();
            let output = format!("otlp_grpc:\n      endpoint: {}", sink.endpoint());
            (Sink::Grpc(sink), output)
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

fn main() {
    if let Ok(protocol) = std::env::var(CHILD) {
        return child(&protocol);
    }
    internal_export_protocols();
}
