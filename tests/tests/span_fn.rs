//! `#[span_fn]` at run time: the span trees it produces in `traces()` and `user_traces()`
//! for sync, async, `async_trait`-shaped, nested and spawned functions, and what the
//! expansion keeps of the annotated function.

use foundations::span_fn;
use foundations::telemetry::tracing::{self, SpanId, StartTraceOptions};
use foundations::telemetry::user_tracing;
use foundations::telemetry::{self, TelemetryContext, TestSpan};
use foundations_tests::Tenant;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// `name(child, child, ...)` for a tree, to compare whole trees in one assertion.
fn shape(span: &TestSpan) -> String {
    if span.children.is_empty() {
        return span.name.clone();
    }
    let children: Vec<_> = span.children.iter().map(shape).collect();
    format!("{}({})", span.name, children.join(", "))
}

fn shapes(traces: &[TestSpan]) -> Vec<String> {
    traces.iter().map(shape).collect()
}

const CONST_NAME: &str = "from_const";

mod names {
    pub const NESTED: &str = "from_module_const";
}

#[span_fn("sync_leaf")]
fn sync_leaf(x: u32) -> u32 {
    let _inner = tracing::span("inside_sync_leaf");
    x + 1
}

#[span_fn(CONST_NAME)]
fn with_const_name() -> Option<SpanId> {
    tracing::span_id()
}

#[span_fn(names::NESTED)]
fn with_module_const_name() {}

#[span_fn("early_return")]
fn early_return(fail: bool) -> Result<u32, String> {
    if fail {
        return Err("failed".into());
    }
    let parsed: u32 = "7".parse().map_err(|_| "parse".to_owned())?;
    Ok(parsed)
}

#[test]
fn sync_fn_is_wrapped_in_a_child_span() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        assert_eq!(sync_leaf(1), 2);
        let own_id = with_const_name();
        assert_ne!(own_id, tracing::span_id(), "the fn ran in its own span");
        with_module_const_name();
        assert_eq!(early_return(true), Err("failed".into()));
        assert_eq!(early_return(false), Ok(7));
    });
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        [
            "root(sync_leaf(inside_sync_leaf), from_const, from_module_const, early_return, \
             early_return)"
        ]
    );
}

#[test]
fn sync_fn_without_a_trace_starts_one() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| sync_leaf(0));
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["sync_leaf(inside_sync_leaf)"]
    );
}

#[test]
fn span_closes_when_a_sync_fn_panics() {
    #[span_fn("panics")]
    fn panics() {
        panic!("boom");
    }
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        assert!(std::panic::catch_unwind(panics).is_err());
        assert_eq!(tracing::span_id().map(|_| ()), Some(()));
        let _after = tracing::span("after");
    });
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["root(panics, after)"]
    );
}

#[span_fn("async_leaf")]
async fn async_leaf(x: u32) -> u32 {
    let first = tracing::span_id();
    for _ in 0..3 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            tracing::span_id(),
            first,
            "the span stays current across awaits"
        );
    }
    let _inner = tracing::span("after_awaits");
    x * 2
}

#[span_fn("async_result")]
async fn async_result(input: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    if input.is_empty() {
        // A coercion to the boxed error in an early return.
        return Err("empty".into());
    }
    let value: u32 = input.parse()?;
    tokio::task::yield_now().await;
    Ok(value)
}

#[span_fn("async_parent")]
async fn async_parent() -> u32 {
    let a = async_leaf(1).await;
    let b = sync_leaf(a);
    a + b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_fn_span_covers_every_poll() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let root = tracing::start_trace("root", StartTraceOptions::default()).into_context();
        root.apply(async {
            assert_eq!(async_leaf(2).await, 4);
            assert_eq!(async_result("12").await.unwrap(), 12);
            assert_eq!(async_result("").await.unwrap_err().to_string(), "empty");
            assert!(async_result("x").await.is_err());
        })
        .await;
    })
    .await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["root(async_leaf(after_awaits), async_result, async_result, async_result)"]
    );
}

#[tokio::test]
async fn async_fn_span_opens_on_first_poll_not_at_call() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        // Created outside any trace, polled inside one: the span is a child of the trace.
        let future = async_leaf(5);
        let root = tracing::start_trace("root", StartTraceOptions::default()).into_context();
        assert_eq!(root.apply(future).await, 10);

        // Created and dropped without a poll: no span at all.
        let root = tracing::start_trace("never_polled", StartTraceOptions::default());
        drop(async_leaf(6));
        drop(root);
    })
    .await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["root(async_leaf(after_awaits))", "never_polled"]
    );
}

#[tokio::test]
async fn nested_span_fns_nest_their_spans() {
    let ctx = TelemetryContext::test();
    assert_eq!(ctx.apply(async_parent()).await, 2 + 3);
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["async_parent(async_leaf(after_awaits), sync_leaf(inside_sync_leaf))"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_span_fns_are_children_of_the_spawner() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let root = tracing::start_trace("root", StartTraceOptions::default()).into_context();
        root.apply(async {
            let tasks: Vec<_> = (0..4).map(|i| telemetry::spawn(async_leaf(i))).collect();
            for (i, task) in (0..4).zip(tasks) {
                assert_eq!(task.await.unwrap(), i * 2);
            }
        })
        .await;
        // A plain `tokio::spawn` carries no context: the span starts its own trace.
        tokio::spawn(ctx.apply(async_leaf(9))).await.unwrap();
    })
    .await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        [
            "root(async_leaf(after_awaits), async_leaf(after_awaits), \
             async_leaf(after_awaits), async_leaf(after_awaits))",
            "async_leaf(after_awaits)"
        ]
    );
}

// ---- async_trait-shaped functions ----

trait Store {
    fn load(&self, key: u32) -> Pin<Box<dyn Future<Output = String> + Send + '_>>;
}

struct MemStore {
    prefix: String,
}

impl Store for MemStore {
    /// What `#[async_trait]` makes of an `async fn`, written out.
    #[span_fn("MemStore::load")]
    fn load(&self, key: u32) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let _inner = tracing::span("load_inner");
            format!("{}{key}", self.prefix)
        })
    }
}

#[async_trait::async_trait]
trait Greeter {
    async fn greet(&self, name: &str) -> String;

    #[span_fn("Greeter::default_greet")]
    async fn default_greet(&self) -> String {
        self.greet("default").await
    }
}

struct Polite;

#[async_trait::async_trait]
impl Greeter for Polite {
    #[span_fn("Polite::greet")]
    async fn greet(&self, name: &str) -> String {
        tokio::task::yield_now().await;
        let _inner = tracing::span("greet_inner");
        format!("hello {name}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_trait_shaped_fns_wrap_the_boxed_future() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let store = MemStore { prefix: "k".into() };
        // Created before the trace starts: the span opens on the first poll.
        let pending = store.load(1);
        let root = tracing::start_trace("root", StartTraceOptions::default()).into_context();
        root.apply(async {
            assert_eq!(pending.await, "k1");
            let greeter: &(dyn Greeter + Sync) = &Polite;
            assert_eq!(greeter.greet("you").await, "hello you");
            assert_eq!(greeter.default_greet().await, "hello default");
        })
        .await;
    })
    .await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        [
            "root(MemStore::load(load_inner), Polite::greet(greet_inner), \
             Greeter::default_greet(Polite::greet(greet_inner)))"
        ]
    );
}

// ---- user = true ----

struct Audited;

impl Store for Audited {
    #[span_fn("Audited::load", user = true)]
    fn load(&self, key: u32) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            key.to_string()
        })
    }
}

#[async_trait::async_trait]
impl Greeter for Audited {
    #[span_fn("Audited::greet", user = true)]
    async fn greet(&self, name: &str) -> String {
        let key = self.load(1).await;
        format!("{name}{key}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_true_on_async_trait_shaped_fns() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let user_root = user_tracing::start_user_trace("request", Tenant::new("acme"), None);
        let both = tracing::start_trace("root", StartTraceOptions::default()).into_context();
        drop(user_root);
        both.apply(async {
            assert_eq!(Audited.greet("n").await, "n1");
            // Built here, polled in a task: parented where it runs.
            let pending = Audited.load(2);
            assert_eq!(telemetry::spawn(pending).await.unwrap(), "2");
        })
        .await;
    })
    .await;
    let expected = |root: &str| {
        [format!(
            "{root}(Audited::greet(Audited::load), Audited::load)"
        )]
    };
    assert_eq!(shapes(&ctx.traces(Default::default())), expected("root"));
    assert_eq!(
        shapes(&ctx.user_traces(Default::default())),
        expected("request")
    );
}

#[span_fn("dual_sync", user = true)]
fn dual_sync() {
    let _inner = tracing::span("internal_only");
}

#[span_fn("dual_async", user = true)]
async fn dual_async() {
    tokio::task::yield_now().await;
    dual_sync();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_true_opens_a_parallel_user_span() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let user_root = user_tracing::start_user_trace("request", Tenant::new("acme"), None);
        let root = tracing::start_trace("root", StartTraceOptions::default());
        let both = root.into_context();
        drop(user_root);
        both.apply(async {
            dual_async().await;
            telemetry::spawn(dual_async()).await.unwrap();
        })
        .await;
    })
    .await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["root(dual_async(dual_sync(internal_only)), dual_async(dual_sync(internal_only)))"]
    );
    let user = ctx.user_traces(Default::default());
    assert_eq!(
        shapes(&user),
        ["request(dual_async(dual_sync), dual_async(dual_sync))"]
    );
    for span in user[0].iter() {
        assert_eq!(span.routing.as_deref(), Some("tenant=acme"));
    }
}

#[tokio::test]
async fn user_true_without_a_user_trace_only_records_internally() {
    let ctx = TelemetryContext::test();
    ctx.apply(dual_async()).await;
    ctx.scope_and(dual_sync);
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        [
            "dual_async(dual_sync(internal_only))",
            "dual_sync(internal_only)"
        ]
    );
    assert!(ctx.user_traces(Default::default()).is_empty());
}

#[test]
fn user_false_is_the_default() {
    #[span_fn("internal_side_only", user = false)]
    fn internal_side_only() {}

    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _user_root = user_tracing::start_user_trace("request", Tenant::new("t"), None);
        internal_side_only();
    });
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["internal_side_only"]
    );
    assert_eq!(shapes(&ctx.user_traces(Default::default())), ["request"]);
}

// ---- what the expansion keeps ----

struct Counter {
    count: u64,
}

impl Counter {
    const STEP_NAME: &'static str = "Counter::step";

    #[span_fn(Self::STEP_NAME)]
    fn step(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[span_fn("Counter::step_async")]
    async fn step_async(&mut self, by: u64) -> u64 {
        tokio::task::yield_now().await;
        self.count += by;
        self.count
    }

    #[span_fn("Counter::into_count")]
    fn into_count(self) -> u64 {
        self.count
    }
}

#[span_fn("generic_sum")]
fn generic_sum<T, I>(items: I) -> T
where
    T: std::iter::Sum<T>,
    I: IntoIterator<Item = T>,
{
    items.into_iter().sum()
}

#[span_fn("generic_async")]
async fn generic_async<'a, T>(value: &'a T, mut copies: usize) -> Vec<T>
where
    T: Clone + Send + Sync + 'a,
{
    let mut out = Vec::new();
    while copies > 0 {
        tokio::task::yield_now().await;
        out.push(value.clone());
        copies -= 1;
    }
    out
}

#[span_fn("with_patterns")]
async fn with_patterns((a, b): (u32, u32), _unused: String, ref_arg: &str) -> String {
    format!("{a}{b}{ref_arg}")
}

mod visibility {
    use super::span_fn;

    /// Documented, `pub(crate)`, `#[must_use]` and `#[inline]`: all kept.
    #[must_use]
    #[inline]
    #[span_fn("visibility::kept")]
    pub(crate) fn kept() -> u8 {
        #![allow(clippy::let_and_return)]
        let value = 3;
        value
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn methods_generics_and_signatures_are_kept() {
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let mut counter = Counter { count: 0 };
        assert_eq!(counter.step(), 1);
        assert_eq!(assert_send(counter.step_async(2)).await, 3);
        assert_eq!(counter.into_count(), 3);
        assert_eq!(generic_sum::<u64, _>([1, 2, 3]), 6);
        let text = String::from("x");
        assert_eq!(generic_async(&text, 2).await, ["x", "x"]);
        let with_patterns = with_patterns((1, 2), String::new(), "z");
        assert_eq!(assert_send(with_patterns).await, "12z");
        // A sync fn under `#[span_fn]` still coerces to a plain fn pointer.
        let pointer: fn() -> u8 = visibility::kept;
        assert_eq!(pointer(), 3);
    })
    .await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        [
            "Counter::step",
            "Counter::step_async",
            "Counter::into_count",
            "generic_sum",
            "generic_async",
            "with_patterns",
            "visibility::kept"
        ]
    );
}

#[test]
fn async_fns_are_not_boxed() {
    #[span_fn("holds_a_big_buffer")]
    async fn holds_a_big_buffer() -> u8 {
        let buffer = [7u8; 4096];
        tokio::task::yield_now().await;
        buffer[4095]
    }
    async fn hand_written() -> u8 {
        tracing::span("holds_a_big_buffer")
            .into_context()
            .apply(async move {
                let buffer = [7u8; 4096];
                tokio::task::yield_now().await;
                buffer[4095]
            })
            .await
    }
    let wrapped = std::mem::size_of_val(&holds_a_big_buffer());
    // The buffer lives inside the future itself, not behind a pointer, and the wrapper costs
    // no more than the hand-written `span(..).into_context().apply(..)`.
    assert!(wrapped > 4096, "{wrapped}");
    assert!(
        wrapped <= std::mem::size_of_val(&hand_written()),
        "{wrapped}"
    );
}

mod reexporting {
    /// A crate that re-exports foundations under another path.
    pub mod platform {
        pub use foundations;
    }
}

#[span_fn(
    "through_reexport",
    crate_path = "crate::reexporting::platform::foundations"
)]
fn through_reexport() {}

#[span_fn(
    "through_reexport_user",
    user = true,
    crate_path = "reexporting::platform::foundations"
)]
async fn through_reexport_user() {}

#[tokio::test]
async fn crate_path_reaches_a_reexported_foundations() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(through_reexport);
    ctx.apply(through_reexport_user()).await;
    assert_eq!(
        shapes(&ctx.traces(Default::default())),
        ["through_reexport", "through_reexport_user"]
    );
}

#[span_fn("local_future", async_local = true)]
async fn local_future(shared: Rc<u32>) -> u32 {
    let kept = Rc::clone(&shared);
    tokio::task::yield_now().await;
    *kept + 1
}

#[test]
fn async_local_accepts_futures_that_are_not_send() {
    let ctx = TelemetryContext::test();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let value = local.block_on(&runtime, async {
        tokio::task::spawn_local(ctx.apply(local_future(Rc::new(1))))
            .await
            .unwrap()
    });
    assert_eq!(value, 2);
    assert_eq!(shapes(&ctx.traces(Default::default())), ["local_future"]);
}
