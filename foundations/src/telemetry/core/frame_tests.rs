//! Unit tests of frames: a polled context's span current without an entry, made an entry
//! only when needed, floors kept right when entries below them leave, parking.

use crate::add_span_tags;
use crate::telemetry::TelemetryContext;
use crate::telemetry::core::pipeline::Internal;
use crate::telemetry::core::stack::{with_stack, with_stacks_as_they_are};
use crate::telemetry::propagation::ids::TraceId;
use crate::telemetry::tracing::{self, StartTraceOptions, TagValue};
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

/// `(depth, floor, 1 if a frame with a span is installed else 0)` of this thread's internal
/// stack.
fn shape() -> (usize, usize, usize) {
    with_stack::<Internal, _>(|stack| {
        (
            stack.depth,
            stack.floor,
            usize::from(stack.frame.span.is_some()),
        )
    })
    .expect("stack available")
}

/// Two contexts of two new traces, "a" and "b", with their trace ids.
fn two_traces() -> [(TelemetryContext, Option<TraceId>); 2] {
    ["a", "b"].map(|name| {
        let ctx = tracing::start_trace(name, StartTraceOptions::default()).into_context();
        let trace = ctx.scope_and(tracing::trace_id);
        (ctx, trace)
    })
}

/// Polls `future` once with a no-op waker.
fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// A future that runs `step` on each poll and is ready when it returns `true`.
struct Steps<S>(S);

impl<S: FnMut() -> bool + Unpin> Future for Steps<S> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if (self.0)() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn a_poll_makes_the_context_current_without_an_entry() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let outer = tracing::start_trace("outer", StartTraceOptions::default());
    let ctx = tracing::start_trace("request", StartTraceOptions::default()).into_context();
    let request_ids = ctx.scope_and(|| (tracing::trace_id(), tracing::span_id()));
    let (depth, ..) = shape();
    let mut polls = 0;
    let mut future = pin!(ctx.apply(Steps(|| {
        polls += 1;
        assert_eq!(
            (tracing::trace_id(), tracing::span_id()),
            request_ids,
            "the context's span is current, the outer one hidden"
        );
        assert_eq!(shape(), (depth, depth, 1), "no entry, one frame");
        polls == 3
    })));
    while poll_once(future.as_mut()).is_pending() {
        assert_eq!(shape(), (depth, 0, 0), "the frame left with the poll");
    }
    assert_eq!(polls, 3);
    drop(outer);
}

#[test]
fn the_context_span_becomes_an_entry_only_to_be_tagged_or_parent_a_child() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let ctx = tracing::start_trace("request", StartTraceOptions::default()).into_context();
    let request_id = ctx.scope_and(tracing::span_id);
    let (depth, ..) = shape();
    {
        let mut future = pin!(ctx.apply(Steps(|| {
            add_span_tags!("step" => "tagged in a poll");
            assert_eq!(shape().0, depth + 1, "materialized to be tagged");
            let _child = tracing::span("child");
            assert_eq!(shape().0, depth + 2);
            true
        })));
        assert!(poll_once(future.as_mut()).is_ready());
        assert_eq!(
            shape(),
            (depth, 0, 0),
            "the materialized entry ended in place"
        );
    }
    let traces = test.traces(Default::default());
    let request = traces
        .iter()
        .find(|trace| trace.name == "request")
        .unwrap_or_else(|| panic!("the request finished: {traces:?}"));
    assert_eq!(request.span_id, request_id.unwrap());
    assert!(
        request
            .tags
            .iter()
            .any(|(key, value)| key == "step"
                && *value == TagValue::String("tagged in a poll".into()))
    );
    assert_eq!(request.children[0].name, "child");
}

#[test]
fn an_entry_below_the_floor_leaving_during_a_poll_lowers_the_floor() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let outer = tracing::start_trace("outer", StartTraceOptions::default());
    let outer_child = tracing::span("outer_child");
    let ctx = tracing::start_trace("request", StartTraceOptions::default()).into_context();
    let request_trace = ctx.scope_and(tracing::trace_id);
    let (depth, ..) = shape();
    let mut outer = Some(outer);
    let mut future = pin!(ctx.apply(Steps(move || {
        // A `!Send` future may own a scope opened outside it, and end it in a poll.
        drop(outer.take());
        assert_eq!(shape(), (depth - 1, depth - 1, 1), "the floor moved down");
        let _child = tracing::span("child");
        assert_eq!(
            tracing::trace_id(),
            request_trace,
            "still the context's span"
        );
        true
    })));
    assert!(poll_once(future.as_mut()).is_ready());
    assert_eq!(shape(), (depth - 1, 0, 0));
    let outer_trace = tracing::trace_id();
    assert!(outer_trace.is_some() && outer_trace != request_trace);
    drop(outer_child);
    assert_eq!(shape(), (depth - 2, 0, 0));
}

#[test]
fn an_entry_below_nested_floors_leaving_in_the_inner_poll_lowers_the_outer_floor_too() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let outer = tracing::start_trace("outer", StartTraceOptions::default());
    let (base, ..) = shape();
    let [(a, a_trace), (b, b_trace)] = two_traces();
    let mut outer = Some(outer);
    let mut inner = Some(Box::pin(b.apply(Steps(move || {
        // Below both floors: the inner one moves now, the outer one when this frame leaves.
        drop(outer.take());
        assert_eq!(tracing::trace_id(), b_trace);
        true
    }))));
    let mut future = pin!(a.apply(Steps(move || {
        let a_child = tracing::span("a_child");
        // The frame's span was materialized to parent the child.
        assert_eq!(shape(), (base + 2, base, 1));
        let inner = inner.as_mut().expect("polled once");
        assert!(poll_once(inner.as_mut()).is_ready());
        assert_eq!(
            shape(),
            (base + 1, base - 1, 1),
            "the outer frame's floor moved down with the entries"
        );
        assert_eq!(tracing::trace_id(), a_trace, "a_child is current again");
        drop(a_child);
        assert_eq!(shape(), (base, base - 1, 1));
        assert_eq!(tracing::trace_id(), a_trace, "the frame's span");
        true
    })));
    assert!(poll_once(future.as_mut()).is_ready());
    assert_eq!(shape(), (base - 1, 0, 0));
}

/// Whether a frame is installed on this thread's internal stack, looked at without
/// installing one.
fn frame_installed() -> bool {
    with_stacks_as_they_are(|stacks| stacks.installed.internal.get().is_some()).unwrap()
}

#[test]
fn a_poll_installs_its_frame_only_when_its_code_uses_the_stack() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let ctx = tracing::start_trace("request", StartTraceOptions::default()).into_context();
    let request_trace = ctx.scope_and(tracing::trace_id);
    let mut polls = 0;
    let mut future = pin!(ctx.apply(Steps(|| {
        polls += 1;
        assert!(!frame_installed(), "nothing installed before the code asks");
        if polls == 2 {
            assert_eq!(tracing::trace_id(), request_trace);
            assert!(frame_installed(), "installed by the first use");
        }
        polls == 2
    })));
    assert!(poll_once(future.as_mut()).is_pending());
    assert!(!frame_installed());
    assert!(poll_once(future.as_mut()).is_ready());
    assert!(!frame_installed(), "uninstalled when the poll ended");
    assert_ne!(tracing::trace_id(), request_trace);
}

#[test]
fn an_outer_poll_that_had_not_used_the_stack_gets_its_frame_after_an_inner_poll_did() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let [(a, a_trace), (b, b_trace)] = two_traces();
    let mut inner = Some(Box::pin(b.apply(Steps(move || {
        let _child = tracing::span("b_child");
        assert_eq!(tracing::trace_id(), b_trace);
        true
    }))));
    let mut future = pin!(a.apply(Steps(move || {
        // `a` has not touched the stack: only the inner poll's frame gets installed.
        let inner = inner.as_mut().expect("polled once");
        assert!(poll_once(inner.as_mut()).is_ready());
        assert!(
            !frame_installed(),
            "the inner frame left, the outer one not installed yet"
        );
        let _child = tracing::span("a_child");
        assert_eq!(
            tracing::trace_id(),
            a_trace,
            "the outer context, installed now"
        );
        true
    })));
    assert!(poll_once(future.as_mut()).is_ready());
    assert_eq!(shape(), (shape().0, 0, 0));
    let after = tracing::trace_id();
    assert!(after != a_trace && after != b_trace);
}

#[test]
fn nested_contexts_restore_each_outer_frame() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let [(a, a_trace), (b, b_trace)] = two_traces();
    let mut inner = Some(Box::pin(b.apply(Steps(move || {
        assert_eq!(tracing::trace_id(), b_trace);
        true
    }))));
    let mut future = pin!(a.apply(Steps(move || {
        let _child = tracing::span("a_child");
        let inner = inner.as_mut().expect("polled once");
        assert!(poll_once(inner.as_mut()).is_ready());
        assert_eq!(tracing::trace_id(), a_trace, "the outer frame is back");
        assert_eq!(shape().2, 1);
        true
    })));
    assert!(poll_once(future.as_mut()).is_ready());
    assert_eq!(shape().2, 0);
}

#[test]
fn a_scope_held_across_polls_is_parked_with_the_materialized_span() {
    let test = TelemetryContext::test();
    let _test_scope = test.scope();
    let ctx = tracing::start_trace(
        "request",
        StartTraceOptions::default().force_sampling(false),
    )
    .into_context();
    let request_trace = ctx.scope_and(tracing::trace_id);
    let (base, ..) = shape();
    let mut held = None;
    let mut polls = 0;
    let mut future = pin!(ctx.apply(Steps(move || {
        polls += 1;
        match polls {
            1 => held = Some(tracing::span("held")),
            2 => assert!(held.is_some() && tracing::span_id().is_some()),
            _ => drop(held.take()),
        }
        polls == 3
    })));
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(
        shape(),
        (base, 0, 0),
        "parked: nothing left on the thread's stack"
    );
    let other = tracing::span("other");
    assert_ne!(
        tracing::trace_id(),
        request_trace,
        "no span leaked to other code"
    );
    drop(other);
    assert!(poll_once(future.as_mut()).is_pending());
    assert!(poll_once(future.as_mut()).is_ready());
    assert_eq!(shape(), (base, 0, 0));
}
