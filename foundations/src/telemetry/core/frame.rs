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
//! thread-local stack it was installed on. Only the guard of a poll nested in it keeps a
//! copy (in its [`Outer`]), to put it back when the nested frame leaves, which is before
//! the outer one does; it never reads through it. A materialized entry holds a cloned
//! handle, so parked entries own what they hold. Were [`leave`] ever
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
        let span = self.frame.span?;
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
        self.frame.materialized = Some(id);
        Some(())
    }

    /// An entry below the floor of the innermost frame was removed at `index` (out of
    /// order): that floor moves down with the entries now, and the floors the guards keep
    /// (of the frames it is nested in) when their frames leave (see [`Outer`]).
    #[cold]
    #[inline(never)]
    pub(super) fn lower_floors(&mut self, index: usize) {
        self.floor -= 1;
        self.lowered.push(index);
    }

    /// `floor`, lowered by the removals logged since `from` (in order, as [`lower_floors`]
    /// would have lowered it then). The log is cleared once the floor is 0: the frames this
    /// one is nested in, if any, have their floors at 0 too, where no removal can lower them.
    ///
    /// [`lower_floors`]: Self::lower_floors
    #[cold]
    #[inline(never)]
    fn lowered_floor(&mut self, mut floor: usize, from: usize) -> usize {
        for &index in &self.lowered[from..] {
            if index < floor {
                floor -= 1;
            }
        }
        if floor == 0 {
            self.lowered.clear();
        }
        floor
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

/// What [`enter`] replaced on one stack, kept by the caller's guard until [`leave`] puts
/// it back: the floor and frame of the frame it is nested in (none outside any), and where
/// the stack's log of removals below the floor stood, so that the floor kept here is
/// lowered by the removals made meanwhile.
pub(crate) struct Outer {
    floor: usize,
    frame: Frame,
    lowered: usize,
    /// The thread's test harness, which the context's replaces for the poll.
    #[cfg(feature = "testing")]
    test_harness: Option<Arc<Harness>>,
}

/// The frames [`enter`] installed, one per pipeline whose stack was available: [`leave`]
/// uninstalls exactly those.
#[derive(Default)]
pub(crate) struct Entered {
    internal: Option<Outer>,
    user: Option<Outer>,
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
        internal: stacks.internal.try_borrow_mut().ok().map(|mut stack| {
            enter_one(
                &mut stack,
                spans.internal.as_ref(),
                #[cfg(feature = "testing")]
                &test_harnesses.internal,
                &mut parked.internal,
            )
        }),
        user: stacks.user.try_borrow_mut().ok().map(|mut stack| {
            enter_one(
                &mut stack,
                spans.user.as_ref(),
                #[cfg(feature = "testing")]
                &test_harnesses.user,
                &mut parked.user,
            )
        }),
    })
    .unwrap_or_default()
}

#[inline(always)]
fn enter_one(
    stack: &mut ScopeStack,
    span: Option<&SpanHandle>,
    #[cfg(feature = "testing")] test_harness: &Option<Arc<Harness>>,
    parked: &mut Parked,
) -> Outer {
    let frame = Frame {
        span: span.map(NonNull::from),
        materialized: None,
    };
    let outer = Outer {
        floor: stack.floor,
        frame: std::mem::replace(&mut stack.frame, frame),
        lowered: stack.lowered.len(),
        #[cfg(feature = "testing")]
        test_harness: std::mem::replace(&mut stack.test_harness, test_harness.clone()),
    };
    stack.floor = stack.depth;
    if !parked.entries.is_empty() {
        restore(stack, parked);
    }
    outer
}

/// Puts parked entries back above the floor, below the vacant entries (kept for reuse).
#[cold]
#[inline(never)]
fn restore(stack: &mut ScopeStack, parked: &mut Parked) {
    let at = stack.depth;
    let count = parked.entries.len();
    stack.entries.splice(at..at, parked.entries.drain(..));
    stack.depth += count;
    stack.frame.materialized = parked.materialized.take();
}

/// Uninstalls the frames [`enter`] installed, parking whatever the poll left above them.
/// Call it once per [`enter`], with what it returned.
#[inline]
pub(crate) fn leave(entered: &mut Entered, parked: &mut PerPipeline<Parked>) {
    // `None`: the stacks are gone with the thread, and the frames with them.
    let _replaced = with_stacks(|stacks| {
        let mut replaced = PerPipeline::<Replaced>::default();
        // No code runs while a stack is borrowed, and a frame's guard drops before its poll
        // returns: a stack that was free when the frame was installed is free now.
        if let Some(outer) = &mut entered.internal {
            let Ok(mut stack) = stacks.internal.try_borrow_mut() else {
                std::process::abort();
            };
            replaced.internal = leave_one(&mut stack, &mut parked.internal, outer);
        }
        if let Some(outer) = &mut entered.user {
            let Ok(mut stack) = stacks.user.try_borrow_mut() else {
                std::process::abort();
            };
            replaced.user = leave_one(&mut stack, &mut parked.user, outer);
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

/// Parks what is above the floor and puts back the frame this one was nested in.
#[inline(always)]
fn leave_one(stack: &mut ScopeStack, parked: &mut Parked, outer: &mut Outer) -> Replaced {
    let materialized = stack.frame.materialized;
    if stack.depth != stack.floor && !stack.end_materialized_only(materialized) {
        park(stack, parked, materialized);
    }
    stack.floor = if stack.lowered.len() == outer.lowered {
        outer.floor
    } else {
        stack.lowered_floor(outer.floor, outer.lowered)
    };
    stack.frame = outer.frame;
    #[cfg(feature = "testing")]
    return std::mem::replace(&mut stack.test_harness, outer.test_harness.take());
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
