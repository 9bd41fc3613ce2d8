//! The `tracing` bridge: `tracing` spans and events recorded as internal spans, nested with
//! foundations spans both ways, across `.await` and spawned tasks.
//!
//! One global subscriber serves every test (a registry with the bridge, filtered so that
//! `hyper`/`h2` internals stay out); each test records into its own test context, so the
//! tests run in parallel without seeing each other's spans.

use foundations::telemetry::bridge::TracingBridge;
use foundations::telemetry::tracing::{self as ftracing, StartTraceOptions, TagValue};
use foundations::telemetry::user_tracing::{self, RoutingMetadata};
use foundations::telemetry::{self, TelemetryContext, TestSpan};
use std::sync::Once;
use tracing::Instrument;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = Targets::new()
            .with_default(LevelFilter::TRACE)
            .with_target("hyper", LevelFilter::OFF)
            .with_target("h2", LevelFilter::OFF);
        tracing_subscriber::registry()
            .with(TracingBridge::new().with_filter(filter))
            .init();
    });
}

#[derive(Debug)]
struct Tenant(u32);

impl RoutingMetadata for Tenant {
    fn group_key(&self) -> String {
        self.0.to_string()
    }
    fn encode(&self) -> String {
        format!("tenant={}", self.0)
    }
}

fn log_field<'a>(span: &'a TestSpan, log: usize, name: &str) -> Option<&'a str> {
    span.logs
        .get(log)?
        .fields
        .iter()
        .find_map(|(field, value)| (field == name).then_some(value.as_str()))
}

#[tracing::instrument]
async fn load_user(id: u64) -> u64 {
    tokio::task::yield_now().await;
    // A foundations span inside a `tracing` span is its child.
    let _inner = ftracing::span("cache_lookup");
    id + 1
}

#[tracing::instrument(fields(otel.kind = "client"))]
async fn fetch(id: u64) -> u64 {
    tokio::task::yield_now().await;
    load_user(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrumented_async_fns_nest_under_start_trace_across_awaits_and_spawns() {
    install();
    let ctx = TelemetryContext::test();
    ctx.apply(async {
        let root = ftracing::start_trace("request", StartTraceOptions::default());
        let root_ctx = root.into_context();
        root_ctx
            .clone()
            .apply(async {
                assert_eq!(fetch(1).await, 2);
                // A spawned task keeps both the foundations context and the `tracing` span.
                let spawned = telemetry::spawn(fetch(2).in_current_span());
                assert_eq!(spawned.await.unwrap(), 3);
                // A plain `tokio::spawn` of a future instrumented here: its span was created
                // under the current span and is entered on whichever worker polls it.
                let span = tracing::info_span!("spawned");
                let plain = tokio::spawn(
                    async {
                        tokio::task::yield_now().await;
                        let _inner = ftracing::span("in_spawned");
                    }
                    .instrument(span),
                );
                plain.await.unwrap();
            })
            .await;
        drop(root_ctx);
    })
    .await;

    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1, "one trace: {traces:#?}");
    let root = &traces[0];
    assert_eq!(root.name, "request");
    let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fetch", "fetch", "spawned"]);
    for fetch in root.children.iter().filter(|c| c.name == "fetch") {
        assert_eq!(fetch.parent_id, Some(root.span_id));
        assert_eq!(
            fetch.tag("span.kind"),
            Some(&TagValue::String("client".into()))
        );
        let load = &fetch.children[0];
        assert_eq!(load.name, "load_user");
        assert_eq!(load.parent_id, Some(fetch.span_id));
        assert_eq!(load.children[0].name, "cache_lookup");
        assert_eq!(load.children[0].parent_id, Some(load.span_id));
    }
    let spawned = root.find("spawned").unwrap();
    assert_eq!(spawned.children[0].name, "in_spawned");
    assert_eq!(root.iter().count(), 1 + 2 * 3 + 2);
    assert!(root.iter().all(|s| s.trace_id == root.trace_id));
}

#[test]
fn a_tracing_span_without_a_current_span_starts_a_root_and_hosts_foundations_spans() {
    install();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let outer = tracing::info_span!("job", attempt = 3i64);
        let _outer = outer.enter();
        let _child = ftracing::span("step");
        let inner = tracing::debug_span!("inner");
        inner.in_scope(|| drop(ftracing::span("leaf")));
        // `parent: None` is always a new root, whatever is current.
        tracing::info_span!(parent: None, "detached").in_scope(|| {});
    });
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 2, "{traces:#?}");
    let job = traces.iter().find(|t| t.name == "job").unwrap();
    assert_eq!(job.parent_id, None);
    assert_eq!(job.tag("attempt"), Some(&TagValue::Integer(3)));
    let step = job.find("step").unwrap();
    assert_eq!(step.parent_id, Some(job.span_id));
    // Opened while the foundations span `step` was current: its child.
    let inner = step.find("inner").unwrap();
    assert_eq!(inner.parent_id, Some(step.span_id));
    assert_eq!(inner.children[0].name, "leaf");
    let detached = traces.iter().find(|t| t.name == "detached").unwrap();
    assert_ne!(detached.trace_id, job.trace_id);
}

#[test]
fn an_explicit_bridged_parent_wins_over_the_current_span() {
    install();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = ftracing::start_trace("root", StartTraceOptions::default());
        let a = tracing::info_span!("a");
        let _other = ftracing::span("other");
        tracing::info_span!(parent: &a, "b").in_scope(|| {});
    });
    let root = &ctx.traces(Default::default())[0];
    let a = root.find("a").unwrap();
    assert_eq!(a.children.len(), 1);
    assert_eq!(a.children[0].name, "b");
    assert!(root.find("other").unwrap().children.is_empty());
}

#[test]
fn fields_become_typed_tags_and_otel_fields_are_honoured() {
    install();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let span = tracing::info_span!(
            "db",
            db.rows = 12u64,
            ratio = 0.5f64,
            cached = false,
            query = "select 1",
            big = u64::MAX,
            debug = ?vec![1, 2],
            otel.name = "SELECT users",
            otel.kind = "CLIENT",
            late = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        span.record("late", 7i64);
        span.record("otel.status_code", "ERROR");
        drop(span);
        tracing::info_span!("renamed_late", otel.name = tracing::field::Empty).in_scope(|| {
            tracing::Span::current().record("otel.name", "GET /users/{id}");
        });
    });
    let traces = ctx.traces(Default::default());
    let db = traces.iter().find(|t| t.name == "SELECT users").unwrap();
    assert_eq!(db.tag("db.rows"), Some(&TagValue::Integer(12)));
    assert_eq!(db.tag("ratio"), Some(&TagValue::Float(0.5)));
    assert_eq!(db.tag("cached"), Some(&TagValue::Boolean(false)));
    assert_eq!(db.tag("query"), Some(&TagValue::String("select 1".into())));
    assert_eq!(
        db.tag("big"),
        Some(&TagValue::String(u64::MAX.to_string().into()))
    );
    assert_eq!(db.tag("debug"), Some(&TagValue::String("[1, 2]".into())));
    assert_eq!(
        db.tag("span.kind"),
        Some(&TagValue::String("client".into()))
    );
    assert_eq!(db.tag("late"), Some(&TagValue::Integer(7)));
    assert_eq!(db.tag("error"), Some(&TagValue::Boolean(true)));
    assert_eq!(db.tag("otel.name"), None, "conventions are not tags");
    assert!(traces.iter().any(|t| t.name == "GET /users/{id}"));
}

#[test]
fn two_fields_come_out_typed_before_and_after_their_values_are_interned() {
    install();
    let ctx = TelemetryContext::test();
    // Enough spans for the string values to be interned on the way (a value is interned
    // once a thread has seen it a few times): every span, before and after, is checked.
    // (The order of a span's tags is checked where it is kept, in the core's tests.)
    const SPANS: usize = 40;
    ctx.scope_and(|| {
        for i in 0..SPANS {
            // An integer and a string: both inline in the record.
            tracing::info_span!("int_then_text", http.status = 200i64, key = "value")
                .in_scope(|| {});
            // The other way round.
            tracing::info_span!("text_then_bool", key = "value", hit = i % 2 == 0).in_scope(|| {});
            // Two strings, and an integer too large for the small inline slot.
            tracing::info_span!("text_then_text", a = "first", b = "second").in_scope(|| {});
            tracing::info_span!("text_then_big", a = "first", n = i64::MAX).in_scope(|| {});
            // A value that changes every time stays correct too.
            let id = format!("id-{i}");
            tracing::info_span!("int_then_owned", n = 1i64, id = id.as_str()).in_scope(|| {});
        }
    });
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 5 * SPANS);
    // Tags sorted by name, as test spans keep them.
    let tags_of = |name: &str| -> Vec<Vec<(String, TagValue)>> {
        let tags: Vec<_> = traces
            .iter()
            .filter(|span| span.name == name)
            .map(|span| span.tags.clone())
            .collect();
        assert_eq!(tags.len(), SPANS, "{name}");
        tags
    };
    let text = |s: &str| TagValue::String(s.to_owned().into());
    let tag = |name: &str, value: TagValue| (name.to_owned(), value);
    for tags in tags_of("int_then_text") {
        assert_eq!(
            tags,
            [
                tag("http.status", TagValue::Integer(200)),
                tag("key", text("value"))
            ]
        );
    }
    let hits: Vec<TagValue> = tags_of("text_then_bool")
        .into_iter()
        .map(|tags| {
            assert_eq!(tags[0].0, "hit");
            assert_eq!(tags[1], tag("key", text("value")));
            tags[0].1.clone()
        })
        .collect();
    assert!(hits.contains(&TagValue::Boolean(true)) && hits.contains(&TagValue::Boolean(false)));
    for tags in tags_of("text_then_text") {
        assert_eq!(tags, [tag("a", text("first")), tag("b", text("second"))]);
    }
    for tags in tags_of("text_then_big") {
        assert_eq!(
            tags,
            [
                tag("a", text("first")),
                tag("n", TagValue::Integer(i64::MAX))
            ]
        );
    }
    let mut ids: Vec<String> = tags_of("int_then_owned")
        .into_iter()
        .map(|tags| {
            assert_eq!(tags[1], tag("n", TagValue::Integer(1)));
            assert_eq!(tags[0].0, "id");
            match &tags[0].1 {
                TagValue::String(id) => id.to_string(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..SPANS).map(|i| format!("id-{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[derive(Debug)]
struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}

impl std::error::Error for Failure {}

#[test]
fn events_become_log_entries_and_errors_set_the_status() {
    install();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        tracing::info_span!("quiet").in_scope(|| {
            tracing::info!(user.id = 42, "loaded {} rows", 3);
        });
        tracing::info_span!("failing").in_scope(|| {
            let _inner = ftracing::span("inner_foundations");
            tracing::error!("upstream refused");
        });
        let with_field = tracing::info_span!("error_field");
        tracing::warn!(parent: &with_field, error = &Failure as &dyn std::error::Error, "retrying");
        drop(with_field);
        tracing::info_span!("error_span_field", error = "bad input").in_scope(|| {});
        // Outside any span: nothing to log to, nothing recorded.
        tracing::info!("no span");
    });
    let traces = ctx.traces(Default::default());
    let find = |name: &str| traces.iter().find(|t| t.name == name).unwrap();

    let quiet = find("quiet");
    assert_eq!(quiet.logs.len(), 1);
    assert_eq!(log_field(quiet, 0, "event"), Some("loaded 3 rows"));
    assert_eq!(log_field(quiet, 0, "message"), Some("loaded 3 rows"));
    assert_eq!(log_field(quiet, 0, "level"), Some("INFO"));
    assert_eq!(log_field(quiet, 0, "target"), Some("tracing_bridge"));
    assert_eq!(log_field(quiet, 0, "user.id"), Some("42"));
    assert_eq!(quiet.tag("error"), None);

    // The event went to the current span: the foundations span inside the `tracing` one.
    let failing = find("failing");
    assert!(failing.logs.is_empty());
    let inner = &failing.children[0];
    assert_eq!(log_field(inner, 0, "level"), Some("ERROR"));
    assert_eq!(inner.tag("error"), Some(&TagValue::Boolean(true)));
    assert_eq!(
        inner.tag("error.message"),
        Some(&TagValue::String("upstream refused".into()))
    );

    let with_field = find("error_field");
    assert_eq!(with_field.tag("error"), Some(&TagValue::Boolean(true)));
    assert_eq!(
        with_field.tag("error.message"),
        Some(&TagValue::String("disk full".into()))
    );
    assert_eq!(log_field(with_field, 0, "level"), Some("WARN"));

    let span_field = find("error_span_field");
    assert_eq!(span_field.tag("error"), Some(&TagValue::Boolean(true)));
    assert_eq!(
        span_field.tag("error.message"),
        Some(&TagValue::String("bad input".into()))
    );
    assert_eq!(traces.len(), 4);
}

#[test]
fn filtered_targets_are_not_bridged_and_their_children_hang_from_the_current_span() {
    install();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = ftracing::start_trace("request", StartTraceOptions::default());
        let conn = tracing::trace_span!(target: "hyper::proto::h1::conn", "poll_read");
        conn.in_scope(|| {
            tracing::trace!(target: "hyper::proto::h1::io", "read 512 bytes");
            // The application's span inside hyper's: a child of what is current.
            tracing::info_span!("handler").in_scope(|| {});
        });
        tracing::info_span!(target: "h2::codec", "frame").in_scope(|| {});
        tracing::info_span!(target: "app::hyper_client", "not_hyper").in_scope(|| {});
    });
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1, "{traces:#?}");
    let root = &traces[0];
    let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["handler", "not_hyper"]);
    assert!(root.logs.is_empty(), "the hyper event was filtered out");
}

#[test]
fn the_user_pipeline_is_fed_only_by_opted_in_spans_inside_a_user_trace() {
    install();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root = ftracing::start_trace("request", StartTraceOptions::default());
        // Opting in without a user trace: internal only.
        tracing::info_span!("early", foundations.user = true).in_scope(|| {});
        let _user = user_tracing::start_user_trace("customer_request", Tenant(7), None);
        // Not opted in: internal only, even inside the user trace.
        tracing::info_span!("library_span", secret = "internal").in_scope(|| {
            tracing::info!("library event");
        });
        tracing::info_span!("customer_visible", foundations.user = true, rows = 3i64).in_scope(
            || {
                tracing::info!("served from cache");
                tracing::info_span!("not_opted_in_child").in_scope(|| {});
            },
        );
    });
    let internal = &ctx.traces(Default::default())[0];
    for name in [
        "early",
        "library_span",
        "customer_visible",
        "not_opted_in_child",
    ] {
        assert!(internal.find(name).is_some(), "{name} is internal");
    }
    assert_eq!(internal.find("customer_visible").unwrap().logs.len(), 1);

    let user = &ctx.user_traces(Default::default())[0];
    assert_eq!(user.name, "customer_request");
    assert_eq!(user.children.len(), 1, "{user:#?}");
    let visible = &user.children[0];
    assert_eq!(visible.name, "customer_visible");
    assert_eq!(visible.routing.as_deref(), Some("tenant=7"));
    assert_eq!(visible.tag("rows"), Some(&TagValue::Integer(3)));
    assert_eq!(log_field(visible, 0, "message"), Some("served from cache"));
    assert!(visible.children.is_empty());
    assert_eq!(user.iter().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_instrumented_requests_are_never_cross_parented() {
    install();
    let ctx = TelemetryContext::test();
    let tasks: Vec<_> = ctx.scope_and(|| {
        (0..200u64)
            .map(|n| {
                let span = tracing::info_span!("request", n);
                tokio::spawn(
                    async move {
                        let id = fetch(n).await;
                        tokio::task::yield_now().await;
                        let _f = ftracing::span("respond");
                        id
                    }
                    .instrument(span),
                )
            })
            .collect()
    });
    for (n, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), n as u64 + 1);
    }
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 200);
    for root in &traces {
        let n = match root.tag("n") {
            Some(TagValue::Integer(n)) => *n as u64,
            other => panic!("{other:?}"),
        };
        assert_eq!(root.iter().count(), 5, "{root:#?}");
        assert!(root.iter().all(|s| s.trace_id == root.trace_id));
        let fetch = root.find("fetch").unwrap();
        assert_eq!(fetch.parent_id, Some(root.span_id));
        assert_eq!(fetch.tag("id"), Some(&TagValue::Integer(n as i64)));
        let load = fetch.find("load_user").unwrap();
        assert_eq!(load.parent_id, Some(fetch.span_id));
        assert_eq!(load.tag("id"), Some(&TagValue::Integer(n as i64)));
        assert_eq!(root.find("respond").unwrap().parent_id, Some(root.span_id));
    }
}
