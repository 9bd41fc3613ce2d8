//! Frames: a [`TelemetryContext`](crate::telemetry::TelemetryContext) made current for one
//! poll of the future it drives, and what a suspended future left on the stacks.
//!
//! An instrumented future is polled again and again, and most polls record nothing. So
//! entering its context must not build anything: [`enter`] registers the poll's record
//! ([`Polled`], kept in the poll's own call frame) as the thread's polled context, and marks
//! both stacks as lacking its frame. That is a few stores, and leaving is as many. A stack
//! gets the poll's *frame* when code in the poll first uses it: the stack's depth at that
//! moment (its *floor*: the entries below are hidden) and a pointer to the context's span;
//! still no reference count, no copy of the span, no entry. Only when the poll's code needs
//! the current span as an entry (to open a child, to tag it) is the frame's span
//! *materialized*: a handle to it is cloned into an ordinary entry above the floor. Reads
//! (`trace_id()`, capturing the context again) go through the pointer.
//!
//! A future that holds a scope across an `.await` (allowed for `!Send` futures: a
//! `LocalSet`, `spawn_local`, `join!` under `block_on`) leaves entries above the floor
//! when it returns `Pending`. Left there, they would be current while *other* futures are
//! polled on the thread: their spans would parent to another request, and a user span would
//! inherit another customer's routing. So [`leave`] takes every entry above the floor off the
//! stack into the future's [`Parked`], and the next [`enter`] puts them back (installing the
//! frame first), ids unchanged, so the scopes the future holds find their entries again.
//! Every poll leaves the stacks as it found them.
//!
//! # Why the pointers are sound
//!
//! These are the crate's two `unsafe` reads: of a frame's span ([`ScopeStack::frame_span`])
//! and of the registered poll record ([`Stacks::install_frame`]). The record and the context
//! it points into are borrowed (shared) by the poll's guard for as long as the record is
//! registered, and [`leave`], run by that guard's drop (also when the poll panics),
//! uninstalls the poll's frames and unregisters the record before the borrows end. Polls
//! nest strictly: a poll is a function call, and its guard is dropped before it returns.
//! Both pointers are read only through the thread-local stacks they were registered on. A
//! nested poll's record keeps the outer record's pointer and frame (in its [`Outer`]) only
//! to put them back when it ends, which is before the outer poll does; it never reads
//! through them. A materialized entry holds a cloned handle, so parked entries own what they
//! hold. Were [`leave`] ever unable to reach a stack while it still exists, the process
//! aborts rather than keep a frame that would outlive its context.
//!
//! This module owns frames and parking; which entries exist is the stack's business.

use super::entry::Entry;
use super::entry_span::EntrySpan;
use super::entry_span::SpanHandle;
use super::pipeline::{Internal, PerPipeline, Pipeline, RawId, User};
use super::polled::{Frame, Outer, Polled, PolledRef};
use super::stack::{ScopeStack, Stacks, pending_bit, with_stacks_as_they_are};
use std::cell::Cell;
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

    /// The entry of the current span: the top one above the floor of the installed frame,
    /// the frame's span made an entry if nothing is above it (see `frame`), or none.
    #[inline(always)]
    pub(super) fn top(&mut self) -> Option<&mut Entry> {
        if self.depth == self.floor {
            self.materialize()?;
        }
        self.entries[..self.depth].last_mut()
    }

    /// Whether a span is current, without making a frame's span an entry.
    #[inline]
    pub(super) fn has_current(&self) -> bool {
        if self.depth == self.floor {
            self.frame_span().is_some()
        } else {
            self.entries[self.depth - 1].span.is_some()
        }
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
    /// order): that floor moves down with the entries now, and the floors the poll records keep
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

impl<'a> Polled<'a> {
    /// The record of a poll of a context with these spans (and, in tests, harnesses).
    #[inline(always)]
    pub(crate) fn new(
        spans: &'a PerPipeline<Option<SpanHandle>>,
        #[cfg(feature = "testing")] test_harnesses: &'a PerPipeline<Option<Arc<Harness>>>,
    ) -> Self {
        Self {
            spans,
            #[cfg(feature = "testing")]
            test_harnesses,
            outer: Cell::new(None),
            outer_pending: Cell::new(0),
            replaced: PerPipeline::new(Cell::new(None), Cell::new(None)),
        }
    }

    fn as_ref(&self) -> PolledRef {
        NonNull::from(self).cast()
    }
}

/// Makes `polled` the context being polled on this thread, until [`leave`]; puts back what
/// its previous poll parked. Its frames are installed on the stacks when code in the poll
/// first uses them (see [`Stacks`]), or here on a stack that gets parked entries back.
/// `false` when the thread's stacks are gone (then do not call [`leave`]).
///
/// `polled` and the context it borrows must stay where they are until [`leave`] returns: the
/// stacks point to them meanwhile.
#[inline]
pub(crate) fn enter(polled: &Polled<'_>, parked: &mut PerPipeline<Parked>) -> bool {
    with_stacks_as_they_are(|stacks| {
        polled
            .outer
            .set(stacks.polled.replace(Some(polled.as_ref())));
        polled.outer_pending.set(
            stacks
                .pending
                .replace(pending_bit::<Internal>() | pending_bit::<User>()),
        );
        if !parked.internal.entries.is_empty() || !parked.user.entries.is_empty() {
            restore_parked(stacks, parked);
        }
    })
    .is_some()
}

/// Installs the frames of the stacks that have parked entries to get back, and puts them
/// back.
#[cold]
#[inline(never)]
fn restore_parked(stacks: &Stacks, parked: &mut PerPipeline<Parked>) {
    if !parked.internal.entries.is_empty()
        && let Ok(mut stack) = stacks.pipelines.internal.try_borrow_mut()
    {
        stacks.install_frame::<Internal>(&mut stack);
        restore(&mut stack, &mut parked.internal);
    }
    if !parked.user.entries.is_empty()
        && let Ok(mut stack) = stacks.pipelines.user.try_borrow_mut()
    {
        stacks.install_frame::<User>(&mut stack);
        restore(&mut stack, &mut parked.user);
    }
}

impl Stacks {
    /// Installs the frame of the context being polled on the stack of pipeline `P`, if it
    /// is not installed yet: what every access to a stack does first.
    #[inline(always)]
    pub(super) fn install_polled<P: Pipeline>(&self, stack: &mut ScopeStack) {
        if self.pending.get() & pending_bit::<P>() != 0 {
            self.install_frame::<P>(stack);
        }
    }

    /// Installs the frame of the context being polled on the stack of pipeline `P`, which
    /// the caller borrowed: its floor is the stack's depth now (nothing of this poll is on
    /// the stack yet), and its span the context's. What it replaces (the frame of a poll
    /// this one is nested in, if that one had installed it) is kept by the poll, for
    /// [`leave`]. Nothing to do outside any poll.
    #[cold]
    #[inline(never)]
    pub(super) fn install_frame<P: Pipeline>(&self, stack: &mut ScopeStack) {
        self.pending.set(self.pending.get() & !pending_bit::<P>());
        let Some(polled) = self.polled.get() else {
            return;
        };
        // SAFETY: a registered poll stays in place, with the context it borrows, until it
        // leaves (see "Why the pointers are sound" above), and it is registered now.
        #[allow(unsafe_code)]
        let polled_now = unsafe { polled.as_ref() };
        let frame = Frame {
            span: polled_now.spans.get::<P>().as_ref().map(NonNull::from),
            materialized: None,
        };
        let outer = Outer {
            floor: stack.floor,
            frame: std::mem::replace(&mut stack.frame, frame),
            installed: self.installed.get::<P>().replace(Some(polled)),
            lowered: stack.lowered.len(),
            #[cfg(feature = "testing")]
            test_harness: std::mem::replace(
                &mut stack.test_harness,
                polled_now.test_harnesses.get::<P>().clone(),
            ),
        };
        polled_now.replaced.get::<P>().set(Some(outer));
        stack.floor = stack.depth;
    }

    /// [`install_frame`](Self::install_frame) on each stack that is free and lacks it.
    #[cold]
    #[inline(never)]
    pub(super) fn install_both(&self) {
        let pending = self.pending.get();
        if pending & pending_bit::<Internal>() != 0
            && let Ok(mut stack) = self.pipelines.internal.try_borrow_mut()
        {
            self.install_frame::<Internal>(&mut stack);
        }
        if pending & pending_bit::<User>() != 0
            && let Ok(mut stack) = self.pipelines.user.try_borrow_mut()
        {
            self.install_frame::<User>(&mut stack);
        }
    }
}

/// Puts parked entries back above the floor, below the vacant entries (kept for reuse).
fn restore(stack: &mut ScopeStack, parked: &mut Parked) {
    let at = stack.depth;
    let count = parked.entries.len();
    stack.entries.splice(at..at, parked.entries.drain(..));
    stack.depth += count;
    stack.frame.materialized = parked.materialized.take();
}

/// Ends the poll [`enter`] began: on each stack where its frame was installed, parks what
/// the poll left above the floor and puts back what the frame replaced; then the poll it was
/// nested in (if any) is the one being polled again.
#[inline]
pub(crate) fn leave(polled: &Polled<'_>, parked: &mut PerPipeline<Parked>) {
    let me = Some(polled.as_ref());
    // `None`: the stacks are gone with the thread, and the frames with them.
    let _replaced = with_stacks_as_they_are(|stacks| {
        let mut replaced = PerPipeline::<Replaced>::default();
        if stacks.installed.internal.get() == me {
            replaced.internal = uninstall::<Internal>(stacks, polled, &mut parked.internal);
        }
        if stacks.installed.user.get() == me {
            replaced.user = uninstall::<User>(stacks, polled, &mut parked.user);
        }
        // Each stack's `installed` is back to what it was when this poll began, and so is
        // what is pending.
        stacks.polled.set(polled.outer.get());
        stacks.pending.set(polled.outer_pending.get());
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

/// Parks what is above the floor of the poll's frame on the stack of pipeline `P` and puts
/// back what the frame replaced.
#[cold]
#[inline(never)]
fn uninstall<P: Pipeline>(stacks: &Stacks, polled: &Polled<'_>, parked: &mut Parked) -> Replaced {
    // No code runs while a stack is borrowed, and a poll's guard drops before its poll
    // returns: a stack that was free when the frame was installed is free now.
    let Ok(mut stack) = stacks.pipelines.get::<P>().try_borrow_mut() else {
        std::process::abort();
    };
    let Some(outer) = polled.replaced.get::<P>().take() else {
        std::process::abort();
    };
    let materialized = stack.frame.materialized;
    if stack.depth != stack.floor && !stack.end_materialized_only(materialized) {
        park(&mut stack, parked, materialized);
    }
    stack.floor = if stack.lowered.len() == outer.lowered {
        outer.floor
    } else {
        stack.lowered_floor(outer.floor, outer.lowered)
    };
    stack.frame = outer.frame;
    stacks.installed.get::<P>().set(outer.installed);
    #[cfg(feature = "testing")]
    return std::mem::replace(&mut stack.test_harness, outer.test_harness);
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
