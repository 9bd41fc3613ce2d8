//! Frames: a [`TelemetryContext`](crate::telemetry::TelemetryContext) made current for one
//! poll of the future it drives, and what a suspended future left on the stacks.
//!
//! An instrumented future is polled again and again, and most polls record nothing. So
//! entering its context must not build anything: [`enter`] installs a *frame* on each
//! pipeline's stack, which is the stack's depth at that moment (its *floor*: the entries
//! below are hidden) and a pointer to the context's span. That is a few stores: no
//! reference count, no copy of the span, no entry. Only when the poll's code needs the
//! current span as an entry (to open a child, to tag it) is the frame's span
//! *materialized*: a handle to it is cloned into an ordinary entry above the floor. Reads
//! (`trace_id()`, capturing the context again) go through the pointer.
//!
//! A future that holds a scope across an `.await` (allowed for `!Send` futures: a
//! `LocalSet`, `spawn_local`, `join!` under `block_on`) leaves entries above the floor
//! when it returns `Pending`. Left there, they would be current while *other* futures are
//! polled on the thread: their spans would parent to another request, and a user span would
//! inherit another customer's routing. So [`leave`] takes every entry above the floor off the
//! stack into the future's [`Parked`], and the next [`enter`] puts them back, ids unchanged,
//! so the scopes the future holds find their entries again. Every poll leaves the stack as
//! it found it.
//!
//! # Why the pointer is sound
//!
//! This is the crate's one `unsafe` read ([`ScopeStack::frame_span`]). A frame points into
//! the context that [`enter`]'s caller borrows (shared) for as long as the frame is
//! installed, and [`leave`], run by the caller's drop guard (also when the poll panics),
//! uninstalls it before the borrow ends. Frames nest strictly: a poll is a function call,
//! and its guard is dropped before the poll returns. A frame is read only through the
//! thread-local stack it was installed on. Nothing else keeps the pointer: a materialized
//! entry holds a cloned handle, so parked entries own what they hold. Were [`leave`] ever
//! unable to reach the stack while it still exists, the process aborts rather than keep a
//! frame that would outlive its context.
//!
//! This module owns frames and parking; which entries exist is the stack's business.

use super::entry::Entry;
use super::entry_span::EntrySpan;
use super::pipeline::{PerPipeline, RawId};
use super::span::SpanHandle;
use super::stack::{Frame, ScopeStack, with_stacks};
use std::ptr::NonNull;

#[cfg(feature = "testing")]
use super::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

impl ScopeStack {
    /// The span of the innermost frame, if a frame is installed and its context has one.
    #[inline]
    #[allow(unsafe_code)]
    pub(super) fn frame_span(&self) -> Option<&SpanHandle> {
        let span = self.frames.last()?.span?;
        // SAFETY: an installed frame points into a context borrowed until the frame is left
        // (see "Why the pointer is sound" above), and `&self` keeps the frame installed.
        Some(unsafe { span.as_ref() })
    }

    /// Makes the innermost frame's span an entry above the floor; what code that needs the
    /// current span as an entry calls first when nothing is above the floor. `None` when
    /// there is no frame span.
    #[cold]
    #[inline(never)]
    pub(super) fn materialize(&mut self) -> Option<()> {
        let handle = self.frame_span()?.clone();
        let (id, entry) = self.push_vacant();
        entry.span = Some(EntrySpan::Shared(handle));
        // The context holds the span for longer than the entry lives.
        entry.outlived = true;
        if let Some(frame) = self.frames.last_mut() {
            frame.materialized = Some(id);
        }
        Some(())
    }

    /// An entry below the floor of the innermost frame, or of a frame it is nested in, was
    /// removed at `index` (out of order): the floors above it move down with the entries.
    #[cold]
    #[inline(never)]
    pub(super) fn lower_floors(&mut self, index: usize) {
        let floors = std::iter::once(&mut self.floor)
            .chain(self.frames.iter_mut().map(|frame| &mut frame.outer_floor));
        for floor in floors {
            if index < *floor {
                *floor -= 1;
            }
        }
    }
}

/// Entries of one pipeline's stack parked by a suspended future, bottom first. Dropping it
/// (the future was dropped while suspended) finishes their spans.
#[derive(Default)]
pub(crate) struct Parked {
    entries: Vec<Entry>,
    /// Which of them is the frame's materialized span.
    materialized: Option<RawId>,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Whether [`enter`] installed a frame on each pipeline's stack: [`leave`] uninstalls
/// exactly those.
#[derive(Clone, Copy, Default)]
pub(crate) struct Entered {
    internal: bool,
    user: bool,
}

/// Installs a frame on each of this thread's stacks, pointing to the context's span of that
/// pipeline in `spans`, which the caller keeps borrowed until it calls [`leave`]; puts back
/// what the previous poll parked. In tests, the context's harnesses replace the thread's
/// for the poll, in the same visit to the stacks.
#[inline]
pub(crate) fn enter(
    spans: &PerPipeline<Option<SpanHandle>>,
    #[cfg(feature = "testing")] test_harnesses: &PerPipeline<Option<Arc<Harness>>>,
    parked: &mut PerPipeline<Parked>,
) -> Entered {
    with_stacks(|stacks| Entered {
        internal: stacks.internal.try_borrow_mut().is_ok_and(|mut stack| {
            let frame = Frame::new(
                &stack,
                spans.internal.as_ref(),
                #[cfg(feature = "testing")]
                &test_harnesses.internal,
            );
            enter_one(&mut stack, frame, &mut parked.internal)
        }),
        user: stacks.user.try_borrow_mut().is_ok_and(|mut stack| {
            let frame = Frame::new(
                &stack,
                spans.user.as_ref(),
                #[cfg(feature = "testing")]
                &test_harnesses.user,
            );
            enter_one(&mut stack, frame, &mut parked.user)
        }),
    })
    .unwrap_or_default()
}

impl Frame {
    #[inline(always)]
    fn new(
        stack: &ScopeStack,
        span: Option<&SpanHandle>,
        #[cfg(feature = "testing")] test_harness: &Option<Arc<Harness>>,
    ) -> Frame {
        Frame {
            outer_floor: stack.floor,
            span: span.map(NonNull::from),
            materialized: None,
            #[cfg(feature = "testing")]
            previous_test_harness: test_harness.clone(),
        }
    }
}

#[inline(always)]
fn enter_one(stack: &mut ScopeStack, frame: Frame, parked: &mut Parked) -> bool {
    #[cfg(feature = "testing")]
    let frame = {
        let mut frame = frame;
        std::mem::swap(&mut frame.previous_test_harness, &mut stack.test_harness);
        frame
    };
    stack.frames.push(frame);
    stack.floor = stack.depth;
    if !parked.entries.is_empty() {
        restore(stack, parked);
    }
    true
}

/// Puts parked entries back above the floor, below the vacant entries (kept for reuse).
#[cold]
#[inline(never)]
fn restore(stack: &mut ScopeStack, parked: &mut Parked) {
    let at = stack.depth;
    let count = parked.entries.len();
    stack.entries.splice(at..at, parked.entries.drain(..));
    stack.depth += count;
    if let Some(frame) = stack.frames.last_mut() {
        frame.materialized = parked.materialized.take();
    }
}

/// Uninstalls the frames [`enter`] installed, parking whatever the poll left above them.
#[inline]
pub(crate) fn leave(entered: Entered, parked: &mut PerPipeline<Parked>) {
    // `None`: the stacks are gone with the thread, and the frames with them.
    let _replaced = with_stacks(|stacks| {
        let mut replaced = PerPipeline::<Replaced>::default();
        // No code runs while a stack is borrowed, and a frame's guard drops before its poll
        // returns: a stack that was free when the frame was installed is free now.
        if entered.internal {
            let Ok(mut stack) = stacks.internal.try_borrow_mut() else {
                std::process::abort();
            };
            replaced.internal = leave_one(&mut stack, &mut parked.internal);
        }
        if entered.user {
            let Ok(mut stack) = stacks.user.try_borrow_mut() else {
                std::process::abort();
            };
            replaced.user = leave_one(&mut stack, &mut parked.user);
        }
        replaced
    });
    // The test harnesses the poll had current drop here, the stacks released.
}

/// What leaving a frame replaces and its caller drops: in tests, the thread's test harness
/// during the poll.
#[cfg(feature = "testing")]
type Replaced = Option<Arc<Harness>>;
#[cfg(not(feature = "testing"))]
type Replaced = ();

/// Parks what is above the floor and restores the frame this one was nested in.
#[inline(always)]
fn leave_one(stack: &mut ScopeStack, parked: &mut Parked) -> Replaced {
    let Some(frame) = stack.frames.pop() else {
        return Replaced::default();
    };
    if stack.depth != stack.floor && !stack.end_materialized_only(frame.materialized) {
        park(stack, parked, frame.materialized);
    }
    stack.floor = frame.outer_floor;
    #[cfg(feature = "testing")]
    return std::mem::replace(&mut stack.test_harness, frame.previous_test_harness);
}

impl ScopeStack {
    /// Ends the materialized entry if it is all that is above the floor; `false`, changing
    /// nothing, otherwise.
    #[inline]
    fn end_materialized_only(&mut self, materialized: Option<RawId>) -> bool {
        let floor = self.floor;
        if self.depth != floor + 1 {
            return false;
        }
        let entry = &mut self.entries[floor];
        #[cfg(feature = "user-tracing")]
        if !matches!(entry.user, super::entry::UserLink::None) {
            return false;
        }
        if Some(entry.id) != materialized || !entry.joined.is_empty() {
            return false;
        }
        // A handle to a span the context also holds: dropping it runs no application code.
        entry.span = None;
        self.depth = floor;
        true
    }
}

#[cold]
#[inline(never)]
fn park(stack: &mut ScopeStack, parked: &mut Parked, materialized: Option<RawId>) {
    let (floor, depth) = (stack.floor, stack.depth);
    parked.entries.extend(stack.entries.drain(floor..depth));
    parked.materialized = materialized;
    stack.depth = floor;
}

#[cfg(all(test, feature = "testing"))]
#[path = "frame_tests.rs"]
mod tests;
