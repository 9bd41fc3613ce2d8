//! `#[with_test_telemetry]`: tests that receive a `TestTelemetryContext` and run inside it,
//! sync and async, with no setup code.

use foundations::span_fn;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations::telemetry::{self, TestTelemetryContext};
use foundations::with_test_telemetry;
use std::time::Duration;

#[derive(Debug)]
struct Tenant;

impl RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        "t".into()
    }
    fn encode(&self) -> String {
        "tenant=t".into()
    }
}

#[span_fn("lookup", user = true)]
async fn lookup(key: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    key + 1
}

#[with_test_telemetry(test)]
fn sync_test_runs_inside_the_context(ctx: TestTelemetryContext) {
    {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
    }
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].name, "root");
    assert_eq!(traces[0].children[0].name, "child");
}

#[with_test_telemetry(test)]
fn sync_test_sees_user_traces(ctx: TestTelemetryContext) {
    {
        let _user = user_tracing::start_user_trace("request", Tenant, None);
        let _both = tracing::span("both").with_user_span();
    }
    let user = ctx.user_traces(Default::default());
    assert_eq!(user[0].name, "request");
    assert_eq!(user[0].children[0].name, "both");
    assert_eq!(user[0].routing.as_deref(), Some("tenant=t"));
}

#[with_test_telemetry(tokio::test)]
async fn async_test_runs_inside_the_context(ctx: TestTelemetryContext) {
    let root = tracing::start_trace("root", StartTraceOptions::default()).into_context();
    root.apply(async {
        tokio::task::yield_now().await;
        assert_eq!(lookup(1).await, 2);
    })
    .await;
    let traces = ctx.traces(Default::default());
    assert_eq!(traces[0].name, "root");
    assert_eq!(traces[0].children[0].name, "lookup");
}

#[with_test_telemetry(tokio::test(flavor = "multi_thread", worker_threads = 2))]
async fn async_test_on_a_multi_thread_runtime(ctx: TestTelemetryContext) {
    let user = user_tracing::start_user_trace("request", Tenant, None).into_context();
    user.apply(async {
        let tasks: Vec<_> = (0..4).map(|i| telemetry::spawn(lookup(i))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    // Each spawned `lookup` started its own internal trace (none was current) and opened a
    // user span under the request.
    assert_eq!(ctx.traces(Default::default()).len(), 4);
    let user = ctx.user_traces(Default::default());
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].children.len(), 4);
    assert!(user[0].children.iter().all(|span| span.name == "lookup"));
}

#[with_test_telemetry(tokio::test)]
async fn async_test_may_return_a_result(
    ctx: TestTelemetryContext,
) -> Result<(), Box<dyn std::error::Error>> {
    let value: u32 = "41".parse()?;
    assert_eq!(ctx.apply(lookup(value)).await, 42);
    assert_eq!(ctx.traces(Default::default())[0].name, "lookup");
    Ok(())
}

#[with_test_telemetry(test)]
fn sync_test_may_return_a_result(_ctx: TestTelemetryContext) -> Result<(), String> {
    let _root = tracing::start_trace("root", StartTraceOptions::default());
    Ok(())
}

#[with_test_telemetry(test)]
#[should_panic(expected = "inside the test")]
fn other_test_attributes_are_kept(ctx: TestTelemetryContext) {
    drop(ctx);
    panic!("inside the test");
}

#[with_test_telemetry(test)]
fn tests_do_not_see_each_others_spans(ctx: TestTelemetryContext) {
    for _ in 0..50 {
        let _root = tracing::start_trace("isolated", StartTraceOptions::default());
        std::thread::yield_now();
    }
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 50);
    assert!(traces.iter().all(|trace| trace.name == "isolated"));
}

mod through_a_reexport {
    pub mod platform {
        pub use foundations;
    }

    use foundations::telemetry::TestTelemetryContext;
    use foundations::telemetry::tracing::{self, StartTraceOptions};
    use foundations::with_test_telemetry;

    #[with_test_telemetry(test, crate_path = "self::platform::foundations")]
    fn crate_path_is_honoured(ctx: TestTelemetryContext) {
        drop(tracing::start_trace("root", StartTraceOptions::default()));
        assert_eq!(ctx.traces(Default::default())[0].name, "root");
    }
}
