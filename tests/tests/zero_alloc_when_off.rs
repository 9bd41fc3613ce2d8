//! With no harness installed, opening spans allocates nothing. Counted with a global
//! allocator that counts per thread, so tests running in parallel don't disturb each other.

use foundations::telemetry::TelemetryContext;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations::{add_span_log_fields, add_span_tags, add_user_span_tags};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn span_with_nothing_installed_allocates_nothing() {
    // Warm up thread-locals first.
    drop(tracing::span("warm-up"));
    let allocations = allocations_during(|| {
        for _ in 0..10_000 {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            let _span = tracing::span("span");
            add_span_tags!("k" => "v");
            add_span_log_fields!("k" => "v");
            assert!(tracing::trace_id().is_none());
        }
    });
    assert_eq!(allocations, 0);
}

#[test]
fn unsampled_trace_allocates_nothing() {
    let test = TelemetryContext::test();
    let _scope = test.scope();
    // Warm up: the scope stack's first push grows its buffer once per thread.
    for _ in 0..3 {
        let _root = tracing::start_trace("w", StartTraceOptions::default().force_sampling(false));
        let _child = tracing::span("w");
    }
    let allocations = allocations_during(|| {
        for _ in 0..1_000 {
            let _root =
                tracing::start_trace("root", StartTraceOptions::default().force_sampling(false));
            for _ in 0..9 {
                let _child = tracing::span("child");
                add_span_tags!("k" => "v");
            }
            assert!(tracing::trace_id().is_some());
        }
    });
    assert_eq!(allocations, 0);
    assert!(test.traces(Default::default()).is_empty());
}

#[test]
fn counter_sees_allocations() {
    // Guards the two tests above against a counter that cannot fail.
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(1u64))));
    assert!(n >= 1);
}

#[test]
fn user_apis_without_a_user_trace_allocate_nothing() {
    let test = TelemetryContext::test();
    let _scope = test.scope();
    let _internal = tracing::start_trace("internal", StartTraceOptions::default());
    // The internal span allocates when recorded, so measure the user side on its own:
    // an unsampled internal trace allocates nothing, and neither may the user APIs.
    let _unsampled =
        tracing::start_trace("off", StartTraceOptions::default().force_sampling(false));
    // Warm up with the same stack depth as below (the stack's buffer grows once).
    for _ in 0..3 {
        let _both = tracing::span("warm").with_user_span();
        let _dual = user_tracing::dual_span("warm");
    }
    let allocations = allocations_during(|| {
        for _ in 0..1_000 {
            let _user = user_tracing::user_span("user");
            let _both = tracing::span("both").with_user_span();
            let _dual = user_tracing::dual_span("dual");
            add_user_span_tags!("k" => "v");
            assert!(user_tracing::w3c_traceparent().is_none());
        }
    });
    assert_eq!(allocations, 0);
}
