//! User exporter throughput and wire size, end to end in one process: producers → queue →
//! one exporter worker → HTTP/1.1 over a Unix socket → an OTLP receiver that decodes every
//! request.
//!
//! Run: `cargo bench -p foundations-tests --bench user_export`. Each iteration produces
//! 200,000 spans in traces of 10 and then calls `flush`, which returns once the receiver has
//! answered for every one of them: the throughput line is spans per second from the first
//! span produced to `flush` returning (the last partial batch goes out on the flush, not on
//! the flush interval's timer). The receiver walks each body down to the spans to count them
//! without materialising them. After the run it prints the CPU time per span of the
//! producing thread (while producing), the exporter thread and the receiver: producer,
//! exporter and receiver share this machine's cores, so their sum is what the wall time is
//! made of. Then wire bytes per span, connections opened and the process's peak RSS.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundations::add_user_span_tags;
use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Tenant};
use std::time::{Duration, Instant};

const SPANS: usize = 200_000;

fn produce() {
    for _ in 0..SPANS / 10 {
        let _root = user_tracing::start_user_trace("request", Tenant::new(7), None);
        for _ in 0..9 {
            let _child = user_tracing::user_span("child");
            add_user_span_tags!("key" => "value");
        }
    }
}

/// CPU time (user + system) of this process's threads whose name starts with `prefix`.
fn threads_cpu(prefix: &str) -> Duration {
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is the 3rd field, utime the 14th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse().ok())
            .collect();
        ticks += fields.iter().sum::<u64>();
    }
    Duration::from_nanos(ticks * 1_000_000_000 / ticks_per_second)
}

/// CPU time (user + system) of the calling thread so far.
fn own_thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage filled it.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn user_export(c: &mut Criterion) {
    let sink = OtlpSink::counting();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  num_tasks: 1\n  max_batch_size: 512\n  \
         flush_interval_ms: 20\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    let mut group = c.benchmark_group("user_export");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut producer_cpu = Duration::ZERO;
    let mut produced = 0usize;
    group.bench_function("200k_spans_traces_of_10", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let target = sink.span_count() + SPANS;
                let started = Instant::now();
                let cpu_before = own_thread_cpu();
                produce();
                producer_cpu += own_thread_cpu() - cpu_before;
                produced += SPANS;
                let report = driver.flush(Duration::from_secs(30));
                total += started.elapsed();
                assert!(report.flushed, "flushed within the deadline");
                assert!(
                    sink.span_count() >= target,
                    "flush returned before delivery"
                );
            }
            total
        })
    });
    group.finish();

    // Before shutdown: the exporter thread exits with it.
    let exporter_cpu = threads_cpu("foundations-exp");
    let receiver_cpu = threads_cpu("tokio-rt-worker");
    let spans = sink.span_count().max(1) as f64;
    let stats = driver.shutdown(Duration::from_secs(10)).user.unwrap();
    println!(
        "user_export: CPU per span: producer {:.0} ns, exporter thread {:.0} ns, receiver \
         {:.0} ns, over {} spans",
        producer_cpu.as_nanos() as f64 / produced.max(1) as f64,
        exporter_cpu.as_nanos() as f64 / spans,
        receiver_cpu.as_nanos() as f64 / spans,
        spans,
    );
    println!(
        "user_export: {:.1} wire bytes/span, {} requests, {} connections (num_tasks 1), \
         {} dropped, peak RSS {} KiB",
        sink.wire_bytes() as f64 / sink.span_count() as f64,
        sink.request_count(),
        sink.connections(),
        stats.dropped(),
        peak_rss_kib().unwrap_or(0),
    );
}

criterion_group!(benches, user_export);
criterion_main!(benches);
