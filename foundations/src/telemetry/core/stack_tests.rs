//! Unit tests of the scope stacks: joined unsampled entries, out-of-order ends, captures.

use super::*;
use crate::telemetry::TelemetryContext;
use crate::telemetry::tracing::{self, SpanId, StartTraceOptions, TraceId};

/// Live entries on this thread's internal stack.
fn depth() -> usize {
    with_stack::<Internal, _>(|stack| stack.depth).expect("stack available")
}

fn ids() -> Option<(TraceId, SpanId)> {
    Some((tracing::trace_id()?, tracing::span_id()?))
}

fn unsampled_root() -> tracing::SpanScope {
    tracing::start_trace("root", StartTraceOptions::default().force_sampling(false))
}

#[test]
fn unsampled_children_fold_into_their_parents_entry() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let root_ids = ids();
        assert!(root_ids.is_some());
        let a = tracing::span("a");
        let b = tracing::span("b");
        assert_eq!(
            depth(),
            base + 1,
            "one entry for the root and its joined children"
        );
        assert_eq!(
            ids(),
            root_ids,
            "an unsampled child is its parent's identity"
        );
        assert!(!tracing::w3c_traceparent().unwrap().flags.is_sampled());
        drop((b, a, root));
        assert_eq!(depth(), base);
        assert_eq!(ids(), None);
    });
    assert!(ctx.traces(Default::default()).is_empty());
}

#[test]
fn folded_scopes_end_in_any_order() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let root_ids = ids();
        let a = tracing::span("a");
        let b = tracing::span("b");
        drop(root);
        assert_eq!(ids(), root_ids, "the children still hold the identity");
        drop(a);
        assert_eq!(ids(), root_ids);
        drop(b);
        assert_eq!(ids(), None);
        assert_eq!(depth(), base);
        // The slot is reusable and starts unfolded.
        let next = unsampled_root();
        assert_ne!(ids(), root_ids);
        drop(next);
        assert_eq!(depth(), base);
    });
}

#[test]
fn a_folded_scope_leaves_with_its_identity_as_a_context() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = unsampled_root();
        let root_ids = ids();
        let captured = tracing::span("child").into_context();
        assert_eq!(ids(), root_ids, "the root is still current");
        drop(root);
        assert_eq!(ids(), None);
        captured.scope_and(|| {
            assert_eq!(ids(), root_ids);
            // Spans under the captured identity join into the context's own entry.
            let base = depth();
            let _grandchild = tracing::span("grandchild");
            assert_eq!(depth(), base);
            assert_eq!(ids(), root_ids);
        });
    });
    assert!(ctx.traces(Default::default()).is_empty());
}

#[test]
fn ending_a_folded_scope_does_not_touch_the_entries_above_it() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let recorded = tracing::start_trace("recorded", StartTraceOptions::default());
        let recorded_ids = ids();
        let recorded_ctx = recorded.into_context();

        let root = unsampled_root();
        let root_ids = ids();
        let joined = tracing::span("joined");
        let above = recorded_ctx.scope();
        drop(joined);
        assert_eq!(
            ids(),
            recorded_ids,
            "the context entered above stays current"
        );
        drop(above);
        assert_eq!(ids(), root_ids);
        drop(root);
    });
    assert_eq!(ctx.traces(Default::default())[0].name, "recorded");
}

#[test]
fn a_context_scope_may_end_before_a_child_folded_into_it() {
    let ctx = TelemetryContext::test();
    let captured = ctx.scope_and(|| unsampled_root().into_context());
    let root_ids = captured.scope_and(ids);
    assert!(root_ids.is_some());
    let (guard, child) = {
        let guard = captured.scope();
        (guard, tracing::span("child"))
    };
    drop(guard);
    assert_eq!(ids(), root_ids, "the child still holds the identity");
    drop(child);
    assert_eq!(ids(), None);
}

#[test]
fn a_recorded_child_is_never_folded() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
        assert_eq!(depth(), base + 2);
    });
    assert_eq!(ctx.traces(Default::default())[0].children[0].name, "child");
}
