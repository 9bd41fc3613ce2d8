//! Tests of the live registry through the public API: what is listed, and what never is.

use crate::add_span_tags;
use crate::telemetry::TelemetryContext;
use crate::telemetry::tracing::{
    self, LiveTrace, SpanId, StartTraceOptions, TagValue, TraceId, TraceparentContext,
};

/// Descendant tracking is process-wide: tests here only ever turn it on (the integration
/// test `live_traces` covers it off, alone in its process).
fn track_descendants() {
    tracing::set_live_descendants_enabled(true);
}

/// The listed trace `trace_id`, if any. Other tests register concurrently: look up by id.
fn listed(trace_id: TraceId) -> Option<LiveTrace> {
    tracing::live_traces()
        .into_iter()
        .find(|trace| trace.root.trace_id == trace_id)
}

/// Whether `trace_id` leaves the list within a few seconds. A shared root finishes when its
/// last handle drops, and a snapshot (another test's) may hold one for the instant it reads
/// the root's tags: the root then finishes when that read ends.
fn unlisted_soon(trace_id: TraceId) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while listed(trace_id).is_some() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// Every span id and trace id the registry lists now, roots and descendants.
fn listed_ids() -> (Vec<TraceId>, Vec<SpanId>) {
    let mut traces = Vec::new();
    let mut spans = Vec::new();
    for trace in tracing::live_traces() {
        for span in std::iter::once(&trace.root).chain(&trace.descendants) {
            traces.push(span.trace_id);
            spans.push(span.span_id);
        }
    }
    (traces, spans)
}

#[test]
fn a_recorded_root_is_listed_with_its_open_descendants_until_it_finishes() {
    track_descendants();
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = tracing::start_trace("request", StartTraceOptions::default());
        add_span_tags!("http.route" => "/users", "attempt" => 1);
        add_span_tags!("attempt" => 2);
        let trace_id = tracing::trace_id().unwrap();
        let root_id = tracing::span_id().unwrap();
        let child = tracing::span("load");
        let child_id = tracing::span_id().unwrap();
        let grandchild = tracing::span("query");
        let grandchild_id = tracing::span_id().unwrap();

        let trace = listed(trace_id).expect("the recorded root is listed");
        assert_eq!(trace.root.name, "request");
        assert_eq!(trace.root.span_id, root_id);
        assert_eq!(trace.root.parent_span_id, None);
        let tags: Vec<_> = trace
            .root
            .tags
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(tags, ["http.route", "attempt"]);
        assert_eq!(trace.root.tags[1].1, TagValue::Integer(2));
        let names: Vec<_> = trace.descendants.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["load", "query"]);
        assert_eq!(trace.descendants[0].span_id, child_id);
        assert_eq!(trace.descendants[0].parent_span_id, Some(root_id));
        assert_eq!(trace.descendants[1].span_id, grandchild_id);
        assert_eq!(trace.descendants[1].parent_span_id, Some(child_id));
        assert!(trace.root.start_time <= trace.descendants[0].start_time);

        drop(grandchild);
        let trace = listed(trace_id).unwrap();
        assert_eq!(trace.descendants.len(), 1, "a finished descendant leaves");
        drop(child);
        drop(root);
        assert!(listed(trace_id).is_none(), "a finished root leaves");
    });
    assert_eq!(ctx.traces(Default::default())[0].iter().count(), 3);
}

#[test]
fn unsampled_roots_and_their_children_are_not_listed() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _root =
            tracing::start_trace("quiet", StartTraceOptions::default().force_sampling(false));
        let _child = tracing::span("quiet_child");
        let trace_id = tracing::trace_id().unwrap();
        assert!(listed(trace_id).is_none());
        assert!(!listed_ids().0.contains(&trace_id));
    });
}

#[test]
fn a_continued_root_names_its_remote_parent() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let inbound: TraceparentContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        let _root = tracing::start_trace(
            "continued",
            StartTraceOptions::default().continue_trace(inbound, None),
        );
        let trace = listed(inbound.trace_id).expect("listed");
        assert_eq!(trace.root.parent_span_id, Some(inbound.parent_id));
    });
}

#[test]
fn descendants_opened_in_other_threads_are_listed_under_their_root() {
    track_descendants();
    let ctx = TelemetryContext::test();
    let (trace_id, shared) = ctx.scope_and(|| {
        let root = tracing::start_trace("fan_out", StartTraceOptions::default());
        (tracing::trace_id().unwrap(), root.into_context())
    });
    let (opened, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            shared.scope_and(|| {
                let _worker = tracing::span("worker");
                opened.wait();
                release.wait();
            })
        });
        opened.wait();
        let trace = listed(trace_id).expect("the shared root is listed");
        assert_eq!(trace.descendants[0].name, "worker");
        release.wait();
    });
    drop(shared);
    assert!(unlisted_soon(trace_id));
}

#[cfg(feature = "user-tracing")]
mod user_spans {
    use super::*;
    use crate::telemetry::core::routing::TestTenant as Tenant;
    use crate::telemetry::user_tracing;

    /// The current user span's ids.
    fn user_ids() -> (TraceId, SpanId) {
        let tp = user_tracing::w3c_traceparent().expect("a user span is current");
        (tp.trace_id, tp.parent_id)
    }

    fn assert_never_listed(user_trace: TraceId, user_spans: &[SpanId]) {
        let (traces, spans) = listed_ids();
        assert!(!traces.contains(&user_trace), "a user trace is listed");
        for span in user_spans {
            assert!(!spans.contains(span), "a user span is listed");
        }
        assert!(
            tracing::live_traces()
                .iter()
                .flat_map(|t| std::iter::once(&t.root).chain(&t.descendants))
                .all(|span| !span.name.starts_with("user_only")),
            "a user span's name is listed"
        );
    }

    #[test]
    fn user_roots_and_user_spans_are_never_listed() {
        track_descendants();
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let _root = user_tracing::start_user_trace("user_only_root", Tenant, None);
            let (user_trace, root_id) = user_ids();
            let _child = user_tracing::user_span("user_only_child");
            let (_, child_id) = user_ids();
            assert_never_listed(user_trace, &[root_id, child_id]);
        });
        assert_eq!(ctx.user_traces(Default::default())[0].iter().count(), 2);
    }

    #[test]
    fn a_dual_span_lists_only_its_internal_half() {
        track_descendants();
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let _user_root = user_tracing::start_user_trace("user_only_root", Tenant, None);
            let (user_trace, user_root) = user_ids();
            let _root = tracing::start_trace("internal_root", StartTraceOptions::default());
            let trace_id = tracing::trace_id().unwrap();
            let _both = user_tracing::dual_span("both");
            let (_, user_both) = user_ids();
            let internal_both = tracing::span_id().unwrap();

            let trace = listed(trace_id).expect("the internal root is listed");
            assert_eq!(trace.descendants.len(), 1);
            assert_eq!(trace.descendants[0].span_id, internal_both);
            assert_never_listed(user_trace, &[user_root, user_both]);
        });
        assert_eq!(
            ctx.user_traces(Default::default())[0].children[0].name,
            "both"
        );
    }

    #[test]
    fn a_user_trace_started_inside_an_internal_span_is_never_listed() {
        track_descendants();
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let _root = tracing::start_trace("internal_root", StartTraceOptions::default());
            let trace_id = tracing::trace_id().unwrap();
            let _inner = tracing::span("internal_child");
            let _user_root = user_tracing::start_user_trace("user_only_inner", Tenant, None);
            let (user_trace, user_root) = user_ids();
            let _user_child = user_tracing::user_span("user_only_grandchild");
            let (_, user_child) = user_ids();
            let _dual = tracing::span("dual_inside").with_user_span();
            let (_, user_dual) = user_ids();

            let trace = listed(trace_id).unwrap();
            let names: Vec<_> = trace.descendants.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["internal_child", "dual_inside"]);
            assert_never_listed(user_trace, &[user_root, user_child, user_dual]);
        });
    }
}

#[test]
fn a_shared_roots_tags_are_read_from_the_span_itself() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = tracing::start_trace("request", StartTraceOptions::default());
        add_span_tags!("before" => "copied");
        let trace_id = tracing::trace_id().expect("recorded");
        // Sharing the root (a context) makes the registry read its tags at snapshot time.
        let shared = root.into_context();
        shared.scope_and(|| {
            add_span_tags!("after" => "read live", "before" => "replaced");
        });
        let open = listed(trace_id).expect("listed while open");
        assert_eq!(
            open.root.tags,
            vec![
                ("after".to_owned(), TagValue::String("read live".into())),
                ("before".to_owned(), TagValue::String("replaced".into())),
            ],
            "the span's own tags, in the order of their last writes"
        );
        drop(shared);
        assert!(unlisted_soon(trace_id), "gone when it finished");
    });
}

#[test]
fn a_root_that_outlives_its_thread_stays_listed_until_it_finishes() {
    let ctx = TelemetryContext::test();
    let (trace_id, root) = std::thread::spawn(move || {
        ctx.scope_and(|| {
            let root = tracing::start_trace("outlives", StartTraceOptions::default());
            (tracing::trace_id().unwrap(), root.into_context())
        })
    })
    .join()
    .unwrap();
    let trace = listed(trace_id).expect("listed after its thread exited");
    assert_eq!(trace.root.name, "outlives");
    drop(root);
    assert!(unlisted_soon(trace_id));
}

#[test]
fn exited_threads_tables_go_to_new_threads() {
    let ctx = TelemetryContext::test();
    let tables: std::collections::HashSet<usize> = (0..32)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                ctx.scope_and(|| {
                    let _root = tracing::start_trace("short", StartTraceOptions::default());
                    super::super::registry_slots::thread_table()
                })
            })
            .join()
            .unwrap()
        })
        .collect();
    // One after the other, each thread could take over the last one's table; other tests'
    // threads may take some first, but not most.
    assert!(tables.len() <= 16, "{} tables for 32 threads", tables.len());
}

#[test]
fn many_open_roots_on_one_thread_are_all_listed() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let contexts: Vec<_> = (0..200)
            .map(|_| {
                let root = tracing::start_trace("many", StartTraceOptions::default());
                (tracing::trace_id().unwrap(), root.into_context())
            })
            .collect();
        let listed_traces = listed_ids().0;
        for (trace_id, _) in &contexts {
            assert!(listed_traces.contains(trace_id));
        }
        let ids: Vec<_> = contexts.iter().map(|(trace_id, _)| *trace_id).collect();
        drop(contexts);
        for trace_id in ids {
            assert!(unlisted_soon(trace_id));
        }
    });
}

/// Writers churn roots whose name is a function of their trace id (static and owned names
/// alternating) while a reader snapshots: an entry mixing two occupants of a slot, or a
/// name of one with the id of another, fails the check.
#[test]
fn snapshots_taken_while_roots_churn_are_never_torn() {
    const NAMES: [&str; 4] = ["churn_a", "churn_b", "churn_c", "churn_d"];
    const BASE: u128 = 0x7e57_0000_0000_0000_0000_0000_0000_0000;
    fn name_of(n: u128) -> std::borrow::Cow<'static, str> {
        match n % 2 {
            0 => NAMES[(n / 2 % 4) as usize].into(),
            _ => format!("churn_owned_{n}").into(),
        }
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Writers go on until the reader has checked enough roots (bounded in time: on a loaded
    // machine the reader may be scheduled late).
    const ENOUGH: usize = 10_000;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ctx = TelemetryContext::test();
    let (done, checked) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for writer in 0..2u128 {
            let (ctx, done, checked) = (ctx.clone(), &done, &checked);
            scope.spawn(move || {
                ctx.scope_and(|| {
                    let mut i = 0u128;
                    while checked.load(Ordering::Relaxed) < ENOUGH
                        && std::time::Instant::now() < deadline
                    {
                        let n = writer * 1_000_000_000 + i;
                        i += 1;
                        let inbound: TraceparentContext =
                            format!("00-{:032x}-00f067aa0ba902b7-01", BASE + n)
                                .parse()
                                .unwrap();
                        let root = tracing::start_trace(
                            name_of(n),
                            StartTraceOptions::default().continue_trace(inbound, None),
                        );
                        add_span_tags!("n" => n.to_string());
                        drop(root);
                    }
                });
                done.fetch_add(1, Ordering::Release);
            });
        }
        while done.load(Ordering::Acquire) < 2 {
            for trace in tracing::live_traces() {
                let n = trace.root.trace_id.to_u128().wrapping_sub(BASE);
                if n >= 2_000_000_000 {
                    continue;
                }
                assert_eq!(trace.root.name, name_of(n), "trace {n}");
                assert_eq!(
                    trace.root.parent_span_id.unwrap().to_u64(),
                    0x00f0_67aa_0ba9_02b7
                );
                if let Some((_, value)) = trace.root.tags.iter().find(|(name, _)| name == "n") {
                    assert_eq!(*value, TagValue::String(n.to_string().into()), "trace {n}");
                }
                checked.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let checked = checked.into_inner();
    assert!(
        checked >= ENOUGH,
        "the reader saw only {checked} roots open"
    );
}
