//! Unit tests of the fast lane against the general path: same decisions, same ids.

use super::*;
use crate::telemetry::TelemetryContext;
use crate::telemetry::core::scope::Scope;
use crate::telemetry::core::stack::tests::{depth, ids, unsampled_root};
use crate::telemetry::tracing::{self, StartTraceOptions};

/// What the lane does here: "joined", "child" (an entry of its own) or "general"
/// (handed back); what it opened is ended again at once.
fn lane_here() -> &'static str {
    match open_child("lane") {
        Ok(Some(id)) => {
            let kind = if id.is_joined_child() {
                "joined"
            } else {
                "child"
            };
            drop(Scope::of(Some(id)));
            kind
        }
        Ok(None) => panic!("the stacks are available"),
        Err(_) => "general",
    }
}

#[test]
fn the_lane_takes_unsampled_and_recorded_children_and_leaves_the_rest() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        assert_eq!(lane_here(), "general", "no current span: a root");
        let root = unsampled_root();
        assert_eq!(lane_here(), "joined");
        assert_eq!(depth(), base + 1, "the joined child ended, the entry stays");
        drop(root);
        let recorded = tracing::start_trace("r", StartTraceOptions::default());
        assert_eq!(lane_here(), "child", "a recorded span takes a child entry");
        drop(recorded);
        assert_eq!(depth(), base);
    });
}

#[test]
fn a_full_entry_is_not_joined_by_the_lane() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = unsampled_root();
        let scopes: Vec<_> = (0..crate::telemetry::core::joined::MAX_JOINED)
            .map(|_| tracing::span("j"))
            .collect();
        assert!(try_join_quietly().is_none(), "quiet, but no room");
        assert_eq!(lane_here(), "child", "no room: an entry of its own");
        drop(scopes);
        drop(root);
    });
}

#[test]
fn a_quiet_stretch_starts_at_a_lane_join_and_ends_at_any_other_access() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let root = unsampled_root();
        assert!(
            try_join_quietly().is_none(),
            "a root is pushed by the general path"
        );
        let first = tracing::span("first");
        let quick = try_join_quietly().expect("the lane's join starts a stretch");
        assert!(quick.is_joined_child());
        // Ending a joined child in the lane keeps the stretch.
        drop(Scope::of(Some(quick)));
        let again = try_join_quietly().expect("still quiet");
        let _ = tracing::span_id();
        assert!(
            try_join_quietly().is_none(),
            "any other access to the stacks ends the stretch"
        );
        drop((Scope::of(Some(again)), first, root));
    });
}

/// A tag of literals is checked and handed over in one borrow: during a quiet stretch it
/// is skipped without ending the stretch, on a recorded span it lands, and with no span
/// it is a no-op.
#[test]
fn a_tag_of_literals_keeps_a_quiet_stretch_and_lands_on_a_recorded_span() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        crate::add_span_tags!("nowhere" => "1");
        let root = unsampled_root();
        let first = tracing::span("first");
        let quick = try_join_quietly().expect("the lane's join starts a stretch");
        crate::add_span_tags!("skipped" => 2);
        let again = try_join_quietly().expect("a tag of literals keeps the stretch");
        drop((Scope::of(Some(again)), Scope::of(Some(quick)), first, root));
        let recorded = tracing::start_trace(
            "recorded",
            StartTraceOptions::default().force_sampling(true),
        );
        crate::add_span_tags!("landed" => "yes");
        crate::add_span_tags!("landed" => "again", "second" => true);
        drop(recorded);
    });
    let traces = ctx.traces(Default::default());
    assert_eq!(traces.len(), 1, "only the recorded trace");
    assert_eq!(tag_names(&traces, "recorded"), ["landed", "second"]);
}

#[test]
fn a_frame_to_install_sends_the_child_to_the_general_path_which_joins_it() {
    let ctx = TelemetryContext::test();
    let unsampled = ctx.scope_and(|| {
        let root = unsampled_root();
        root.into_context()
    });
    let base = ctx.scope_and(depth);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(unsampled.apply(async {
        // The poll's frame is not installed yet: the lane declines.
        assert_eq!(lane_here(), "general");
        let trace = tracing::trace_id();
        let child = tracing::span("in_poll");
        assert_eq!(tracing::trace_id(), trace, "joined into the frame's trace");
        assert!(!tracing::span_is_sampled());
        drop(child);
        // Installed now: the lane takes the next child.
        assert_eq!(lane_here(), "joined");
    }));
    assert!(future.as_mut().poll(&mut cx).is_ready());
    assert_eq!(ctx.scope_and(depth), base);
}

#[test]
fn a_joined_scope_that_is_not_the_innermost_ends_by_the_general_path() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let outer = match open_child("outer") {
            Ok(Some(id)) if id.is_joined_child() => id,
            _ => panic!("an unsampled root takes joined children"),
        };
        let outer_ids = ids();
        let inner = tracing::span("inner");
        let inner_ids = ids();
        // The outer one is not innermost: the lane leaves it to the general end.
        drop(Scope::<Internal>::of(Some(outer)));
        assert_eq!(ids(), inner_ids);
        assert_ne!(outer_ids, inner_ids);
        drop(root);
        assert_eq!(depth(), base + 1, "the entry stays for its last scope");
        // The last scope of an entry whose owner ended: the general end vacates it.
        drop(inner);
        assert_eq!(depth(), base);
    });
}

/// Whether the lane holds children beside the stack (a quiet stretch's, not settled).
fn quiet_children_held() -> bool {
    with_stacks_in_lane(|stacks| !stacks.quiet_children.is_empty()).expect("stacks")
}

/// The id the top internal entry is pushed under.
fn top_entry_id() -> u64 {
    with_stack::<Internal, _>(|stack| stack.entries[stack.depth - 1].id.get()).unwrap()
}

fn quiet_child() -> Scope<Internal> {
    Scope::of(Some(try_join_quietly().expect("a quiet stretch with room")))
}

#[test]
fn children_of_a_quiet_stretch_reach_their_entry_at_the_next_access_with_ids_of_their_own() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let first = tracing::span("first");
        let first_ids = ids().unwrap();
        // Reading ids ended the stretch; a lane join (opened and ended at once) starts
        // another.
        drop(tracing::span("starts_a_stretch_again"));
        let (a, b, c) = (quiet_child(), quiet_child(), quiet_child());
        assert!(quiet_children_held(), "held beside the stack");
        let c_ids = ids().unwrap();
        assert!(!quiet_children_held(), "any other access settles them");
        assert_eq!(depth(), base + 1, "joined into the root's entry");
        assert_eq!(c_ids.0, first_ids.0);
        assert_ne!(
            c_ids.1, first_ids.1,
            "the innermost has a span id of its own"
        );
        drop(b);
        assert_eq!(ids(), Some(c_ids), "the innermost stays current");
        drop(c);
        let a_ids = ids().unwrap();
        assert_ne!(a_ids.1, c_ids.1);
        assert_ne!(a_ids.1, first_ids.1);
        drop(a);
        assert_eq!(ids(), Some(first_ids));
        drop((first, root));
        assert_eq!(depth(), base);
    });
}

#[test]
fn a_quiet_child_ended_out_of_order_settles_the_stretch_and_ends_alone() {
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        let first = tracing::span("first");
        let (outer, inner) = (quiet_child(), quiet_child());
        // Nothing read yet: the outer one ends while both are held beside the stack.
        drop(outer);
        assert!(!quiet_children_held());
        let inner_ids = ids().unwrap();
        drop(inner);
        assert_ne!(ids(), Some(inner_ids), "the inner one ended too");
        drop((first, root));
        assert_eq!(depth(), base);
    });
}

#[test]
fn an_unsampled_root_that_owns_nothing_ends_in_the_lane_and_waits_for_its_children() {
    use crate::telemetry::core::pipeline::LANE_BIT;
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = unsampled_root();
        assert_ne!(top_entry_id() & LANE_BIT, 0, "marked for the lane");
        let first = tracing::span("first");
        let quiet = quiet_child();
        // The root's scope ends first: its children keep the entry.
        drop(root);
        assert_eq!(depth(), base + 1);
        let quiet_ids = ids().unwrap();
        drop(quiet);
        assert_ne!(ids(), Some(quiet_ids));
        drop(first);
        assert_eq!(depth(), base, "the last child takes the entry with it");

        // A root with a tracestate owns it: the general end drops it.
        let inbound = crate::telemetry::tracing::TraceparentContext::parse(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )
        .unwrap();
        let state = "vendor=value".parse().unwrap();
        let continued = tracing::start_trace(
            "continued",
            StartTraceOptions::default().continue_trace(inbound, Some(state)),
        );
        assert_eq!(top_entry_id() & LANE_BIT, 0, "not marked");
        assert!(tracing::w3c_tracestate().is_some());
        drop(continued);
        assert_eq!(depth(), base);
    });
}

#[test]
fn a_recorded_child_ends_in_the_lane_unless_its_finish_runs_application_code() {
    use crate::telemetry::core::pipeline::LANE_BIT;
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let base = depth();
        let root = tracing::start_trace("root", StartTraceOptions::default());
        let plain = tracing::span("plain");
        assert_ne!(top_entry_id() & LANE_BIT, 0, "the lane's child is marked");
        drop(plain);
        assert_eq!(depth(), base + 1);
        let with_callback = tracing::span("with_callback");
        crate::set_span_finish_callback!(|_: &mut cf_rustracing::span::Span<SpanState>| {
            // Runs only with the stack released: this span is recorded then.
            drop(tracing::span("opened_in_callback"));
        });
        drop(with_callback);
        assert_eq!(depth(), base + 1);
        drop(root);
        assert_eq!(depth(), base);
    });
    let traces = ctx.traces(Default::default());
    let names: Vec<&str> = traces[0].children.iter().map(|c| c.name.as_ref()).collect();
    // The callback's span is the root's child: its parent had left the stack.
    for name in ["plain", "with_callback", "opened_in_callback"] {
        assert!(names.contains(&name), "{name} not among {names:?}");
    }
}

/// The tag names of the recorded span `name`.
fn tag_names(traces: &[crate::telemetry::testing::TestSpan], name: &str) -> Vec<String> {
    fn find(span: &crate::telemetry::testing::TestSpan, name: &str) -> Option<Vec<String>> {
        if span.name == name {
            return Some(span.tags.iter().map(|(key, _)| key.to_string()).collect());
        }
        span.children.iter().find_map(|child| find(child, name))
    }
    traces
        .iter()
        .find_map(|root| find(root, name))
        .unwrap_or_else(|| {
            let roots: Vec<_> = traces.iter().map(|root| &root.name).collect();
            panic!("no span {name} among the roots {roots:?}")
        })
}

#[test]
fn after_a_joined_child_anything_that_changes_the_current_span_ends_the_quiet_stretch() {
    let ctx = TelemetryContext::test();
    let recorded = ctx.scope_and(|| {
        tracing::start_trace(
            "recorded",
            StartTraceOptions::default().force_sampling(true),
        )
        .into_context()
    });
    ctx.scope_and(|| {
        let root = unsampled_root();
        let child = tracing::span("joined");
        crate::add_span_tags!("dropped" => "unsampled");
        // A context's scope makes a recorded span current: its tags must land.
        let scope = recorded.scope();
        crate::add_span_tags!("by_scope" => "1");
        drop(scope);
        let joined_again = tracing::span("joined_again");
        // So must a poll of a context that carries it (the frame's span is current).
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut polled = std::pin::pin!(recorded.clone().apply(async {
            crate::add_span_tags!("by_poll" => "1");
        }));
        assert!(polled.as_mut().poll(&mut cx).is_ready());
        // And a recorded span opened on top of the joined child.
        drop(joined_again);
        let inner =
            tracing::start_trace("inner", StartTraceOptions::default().force_sampling(true));
        crate::add_span_tags!("by_root" => "1");
        drop((inner, child, root));
    });
    drop(recorded);
    // A registry test running in parallel may hold the tracked root's last handle for a
    // moment while it reads its tags (`live_traces`): the root then finishes on that
    // thread, just after this drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let traces = loop {
        let traces = ctx.traces(Default::default());
        if traces.iter().any(|root| root.name == "recorded") || std::time::Instant::now() > deadline
        {
            break traces;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert_eq!(tag_names(&traces, "recorded"), ["by_poll", "by_scope"]);
    assert_eq!(tag_names(&traces, "inner"), ["by_root"]);
}

#[cfg(feature = "user-tracing")]
#[test]
fn an_active_user_trace_sends_the_child_to_the_general_path() {
    use crate::telemetry::core::routing::TestTenant;
    use crate::telemetry::user_tracing;
    let ctx = TelemetryContext::test();
    ctx.scope_and(|| {
        let _user = user_tracing::start_user_trace("user_root", TestTenant, None);
        let _root = unsampled_root();
        assert_eq!(lane_here(), "general", "the child must keep its name");
        // The general path keeps it: the user span is named after the internal one.
        let child = tracing::span("named").with_user_span();
        drop(child);
    });
    let users = ctx.user_traces(Default::default());
    assert!(
        users[0].iter().any(|span| span.name == "named"),
        "the user span took the internal child's name"
    );
}
