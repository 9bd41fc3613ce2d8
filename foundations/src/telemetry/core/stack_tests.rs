//! Unit tests of the scope stacks: unsampled entries, out-of-order ends, captures.

use super::*;
use crate::telemetry::TelemetryContext;
use crate::telemetry::core::pipeline::Internal;
use crate::telemetry::tracing::{self, SpanId, StartTraceOptions, TraceId};

/// Live entries on this thread's internal stack.
pub(in crate::telemetry::core) fn depth() -> usize {
    with_stack::<Internal, _>(|stack| stack.depth).expect("stack available")
}

pub(in crate::telemetry::core) fn ids() -> Option<(TraceId, SpanId)> {
    Some((tracing::trace_id()?, tracing::span_id()?))
}

pub(in crate::telemetry::core) fn unsampled_root() -> tracing::SpanScope {
    tracing::start_trace("root", StartTraceOptions::default().force_sampling(false))
}

#[test]
fn unsampled_children_join_their_parents_entry_with_their_own_span_id() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let root_ids = ids().expect("an unsampled root has ids");
        let a = tracing::span("a");
        let a_ids = ids().unwrap();
        let b = tracing::span("b");
        let b_ids = ids().unwrap();
        assert_eq!(
            depth(),
            base + 1,
            "the children are joined into the root's entry"
        );
        assert_eq!(a_ids.0, root_ids.0, "same trace");
        assert_eq!(b_ids.0, root_ids.0, "same trace");
        assert_ne!(a_ids.1, root_ids.1, "a child names itself, not its parent");
        assert_ne!(b_ids.1, a_ids.1);
        let outbound = tracing::w3c_traceparent().unwrap();
        assert!(!outbound.flags.is_sampled());
        assert_eq!(outbound.parent_id, b_ids.1);
        drop(b);
        assert_eq!(
            ids(),
            Some(a_ids),
            "the parent is current again, with its id"
        );
        drop((a, root));
        assert_eq!(depth(), base);
        assert_eq!(ids(), None);
    });
    assert!(ctx.traces(Default::default()).is_empty());
}

#[test]
fn unsampled_scopes_end_in_any_order() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let a = tracing::span("a");
        let a_ids = ids();
        let b = tracing::span("b");
        let b_ids = ids();
        drop(root);
        assert_eq!(ids(), b_ids, "the children keep their identities");
        drop(b);
        assert_eq!(ids(), a_ids);
        drop(a);
        assert_eq!(ids(), None);
        assert_eq!(depth(), base);
    });
}

#[test]
fn an_unsampled_scope_leaves_with_its_identity_as_a_context() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = unsampled_root();
        let root_ids = ids();
        let child = tracing::span("child");
        let child_ids = ids();
        let captured = child.into_context();
        assert_eq!(ids(), root_ids, "the root is current again");
        drop(root);
        assert_eq!(ids(), None);
        captured.scope_and(|| {
            assert_eq!(ids(), child_ids);
            let _grandchild = tracing::span("grandchild");
            let grandchild_ids = ids().unwrap();
            assert_eq!(grandchild_ids.0, child_ids.unwrap().0);
            assert_ne!(grandchild_ids.1, child_ids.unwrap().1);
        });
    });
    assert!(ctx.traces(Default::default()).is_empty());
}

#[test]
fn ending_an_unsampled_scope_does_not_touch_the_entries_above_it() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let recorded = tracing::start_trace("recorded", StartTraceOptions::default());
        let recorded_ids = ids();
        let recorded_ctx = recorded.into_context();

        let root = unsampled_root();
        let root_ids = ids();
        let child = tracing::span("child");
        let above = recorded_ctx.scope();
        drop(child);
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
fn a_context_scope_may_end_before_an_unsampled_child_opened_in_it() {
    let ctx = TelemetryContext::test();
    let captured = ctx.scope_and(|| unsampled_root().into_context());
    let root_ids = captured.scope_and(ids);
    assert!(root_ids.is_some());
    let (guard, child) = {
        let guard = captured.scope();
        (guard, tracing::span("child"))
    };
    let child_ids = ids();
    assert_ne!(child_ids, root_ids);
    drop(guard);
    assert_eq!(ids(), child_ids, "the child keeps its identity");
    drop(child);
    assert_eq!(ids(), None);
}

#[test]
fn a_recorded_child_has_its_own_entry() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        let _child = tracing::span("child");
        assert_eq!(depth(), base + 2);
    });
    assert_eq!(ctx.traces(Default::default())[0].children[0].name, "child");
}

#[test]
fn joined_children_end_in_any_order_and_keep_their_ids() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let root_ids = ids();
        let a = tracing::span("a");
        let a_ids = ids();
        let b = tracing::span("b");
        // Not read yet while `c` is open: drawn later, on first read.
        let c = tracing::span("c");
        drop(c);
        let b_ids = ids();
        assert_eq!(ids(), b_ids, "an id, once read, stays");
        drop(a);
        assert_eq!(
            ids(),
            b_ids,
            "ending a middle scope leaves the innermost current"
        );
        drop(root);
        assert_eq!(ids(), b_ids);
        assert_eq!(depth(), base + 1, "the entry stays for its last scope");
        drop(b);
        assert_eq!(ids(), None);
        assert_eq!(depth(), base);
        let all = [root_ids.unwrap().1, a_ids.unwrap().1, b_ids.unwrap().1];
        assert!(all[0] != all[1] && all[1] != all[2] && all[0] != all[2]);
        // Siblings never share an id.
        let root = unsampled_root();
        let first = tracing::span("sibling");
        let first_id = tracing::span_id();
        drop(first);
        let second = tracing::span("sibling");
        assert_ne!(tracing::span_id(), first_id);
        drop((second, root));
    });
}

#[test]
fn unsampled_children_beyond_the_inline_room_take_entries_of_their_own() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let mut scopes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        seen.insert(tracing::span_id().unwrap());
        for _ in 0..super::super::joined::MAX_JOINED + 3 {
            scopes.push(tracing::span("deep"));
            assert!(
                seen.insert(tracing::span_id().unwrap()),
                "a new id per span"
            );
            assert!(!tracing::span_is_sampled());
        }
        // The first child past the room takes an entry, and the next ones join it.
        assert_eq!(depth(), base + 2);
        let captured = TelemetryContext::current();
        let deepest = tracing::span_id();
        while let Some(scope) = scopes.pop() {
            drop(scope);
        }
        drop(root);
        assert_eq!(depth(), base);
        captured.scope_and(|| assert_eq!(tracing::span_id(), deepest));
    });
}

#[test]
fn a_joined_child_leaves_with_its_own_identity_as_a_context() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let child = tracing::span("child");
        let child_ids = ids();
        let captured = child.into_context();
        captured.scope_and(|| assert_eq!(ids(), child_ids));
        drop(root);
        assert_eq!(depth(), base);
        // The root's scope ends first while a child is joined, then the child leaves as a
        // context: the entry goes with it.
        let root = unsampled_root();
        let child = tracing::span("child");
        drop(root);
        let child_ids = ids();
        let captured = child.into_context();
        assert_eq!(depth(), base);
        captured.scope_and(|| assert_eq!(ids(), child_ids));
    });
}
