//! Thread-local scope stacks: which span is current on this thread, per pipeline.
//!
//! Each pipeline has its own stack, so the internal and user pipelines can never see each
//! other's spans. Entries are removed by id, not popped: a scope dropped out of order
//! removes exactly its own entry and never re-parents later spans.
//!
//! An unsampled span records nothing, but it has a span id of its own (W3C Level 2: a
//! service that takes part names its own span id downstream). Everything else it shares
//! with its parent, so an unsampled child of an unsampled span takes no entry: it is
//! *joined* into its parent's, which keeps the child's scope id and span id inline (see
//! [`JoinedChildren`]; the span id is drawn when first read); the innermost joined child is
//! the current span. Joined scopes end in any order, each removing exactly its own child;
//! the entry goes with the last of its scopes. That keeps an unsampled span at a few
//! stores.
//!
//! An entry *owns* a recorded span that nothing else refers to (see the `span` module), so
//! tagging the current span or opening a child of it needs no lock: a new child is built
//! and pushed within one borrow of the stack. Capturing the current span
//! ([`current`]) moves it behind an `Arc` in place.
//!
//! This module owns the stacks (and, in tests, the thread's test harness); which spans they
//! hold is decided by its callers. No application code runs while a stack is borrowed:
//! finishing a span may run its finish callback, which may open spans itself, so a span
//! that may do so is moved off the stack and dropped after the borrow is released. Only a
//! span that [finishes without application code](EntrySpan::finish_runs_no_app_code) (the common case) finishes in
//! place, since moving it out costs more than the rest of ending its scope.

#[cfg(feature = "user-tracing")]
use super::entry::UserLink;
use super::entry::{Entry, RemovedEntry};
use super::entry_span::EntrySpan;
use super::entry_span::SpanHandle;
use super::identity::SpanState;
use super::joined::QuietChildren;
use super::pipeline::{PerPipeline, Pipeline, RawId, ScopeId, User};
use super::polled::{Frame, PolledRef};
use super::routing;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::num::NonZeroU64;

#[cfg(feature = "testing")]
use super::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

pub(crate) struct ScopeStack {
    /// Entries `..depth` are the stack, top last. Those above are vacant (no span, no user
    /// link) and kept: pushing reuses one in place, since building an entry elsewhere and
    /// moving it in would copy the span it holds (hundreds of bytes) for every span.
    pub(super) entries: Vec<Entry>,
    pub(super) depth: usize,
    next_id: u64,
    /// The floor of the innermost frame (see `frame`), 0 outside any: entries below it are
    /// hidden, and the frame's span is current when nothing is above it.
    pub(super) floor: usize,
    /// The installed frame's span and materialized entry. What installing a frame replaced
    /// (the frame it is nested in) is kept by its poll's record (`Polled`), not here:
    /// installing and leaving are then a few stores, with no list to grow.
    pub(super) frame: Frame,
    /// Indices of entries removed below the installed floor, in order: the floors that poll
    /// records keep are lowered by them when their frames leave.
    pub(super) lowered: Vec<usize>,
    /// The harness that roots started on this thread use instead of the global one.
    #[cfg(feature = "testing")]
    pub(super) test_harness: Option<Arc<Harness>>,
}

impl ScopeStack {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            depth: 0,
            next_id: 0,
            floor: 0,
            frame: Frame {
                span: None,
                materialized: None,
            },
            lowered: Vec::new(),
            #[cfg(feature = "testing")]
            test_harness: None,
        }
    }

    #[inline]
    fn live(&self) -> &[Entry] {
        &self.entries[..self.depth]
    }

    #[inline]
    fn live_mut(&mut self) -> &mut [Entry] {
        &mut self.entries[..self.depth]
    }

    /// Index of the live entry `id`. It is almost always the top one; search from there.
    #[inline]
    #[cfg_attr(not(feature = "user-tracing"), allow(dead_code))]
    pub(super) fn find(&self, id: RawId) -> Option<usize> {
        self.live().iter().rposition(|entry| entry.id == id)
    }

    /// Ends the scope `id` if it is the innermost child joined into the top entry, the
    /// common case: `Some(true)` when the entry stays, `Some(false)` when the caller must end
    /// the entry (see [`Entry::joined_scope_ends`]); `None` when `id` is another scope.
    #[inline(always)]
    fn end_innermost_joined(&mut self, id: RawId) -> Option<(usize, bool)> {
        let index = self.depth.checked_sub(1)?;
        let entry_done = self.entries.get_mut(index)?.joined.remove_innermost(id)?;
        Some((index, !entry_done))
    }

    /// Where the scope `id` is: the index of its live entry, and for a joined child its
    /// position among the entry's joined children.
    #[inline]
    fn locate(&self, id: RawId) -> Option<(usize, Option<usize>)> {
        // The common case first: the top entry's own scope ends.
        let top = self.depth.checked_sub(1)?;
        if self.entries[top].id == id {
            return Some((top, None));
        }
        self.live()
            .iter()
            .enumerate()
            .rev()
            .find_map(|(index, entry)| {
                if entry.id == id {
                    Some((index, None))
                } else {
                    Some((index, Some(entry.joined.position(id)?)))
                }
            })
    }

    /// A new scope id: starts at 1 and would take centuries to wrap; `MIN` keeps it
    /// non-zero regardless.
    #[inline]
    pub(super) fn next_id(&mut self) -> RawId {
        self.next_id = self.next_id.wrapping_add(1);
        NonZeroU64::new(self.next_id).unwrap_or(NonZeroU64::MIN)
    }

    /// Makes the next vacant entry (added if there is none) the top one, under a new id.
    #[inline(always)]
    pub(super) fn push_vacant(&mut self) -> (RawId, &mut Entry) {
        let id = self.next_id();
        if self.depth == self.entries.len() {
            self.entries.push(Entry::vacant());
        }
        let entry = &mut self.entries[self.depth];
        self.depth += 1;
        entry.id = id;
        entry.outlived = false;
        // A vacated entry's joined list is already clear (see `JoinedChildren`).
        (id, entry)
    }

    /// Pushes an entry whose span `start` writes straight into it (a vacant entry holds
    /// none): building an `EntrySpan` elsewhere and moving it in would copy it.
    #[inline]
    fn push_with(
        &mut self,
        #[allow(unused)] pending_user_name: Option<Cow<'static, str>>,
        start: impl FnOnce(&mut Option<EntrySpan>),
    ) -> RawId {
        let (id, entry) = self.push_vacant();
        start(&mut entry.span);
        #[cfg(feature = "user-tracing")]
        {
            entry.user = pending_user_name.map_or(UserLink::None, UserLink::PendingName);
        }
        id
    }

    /// Makes the live entry at `index`, whose span and user link were taken, vacant.
    #[inline]
    fn vacate(&mut self, index: usize) {
        if index + 1 < self.depth {
            self.move_to_top(index);
        }
        self.depth -= 1;
        if index < self.floor {
            self.lower_floors(index);
        }
    }

    /// Out of order: the entries above `index` move down one, and it goes above them.
    /// Out of line, so that the common in-order end does not reserve room for an entry.
    #[cold]
    #[inline(never)]
    fn move_to_top(&mut self, index: usize) {
        self.entries[index..self.depth].rotate_left(1);
    }

    #[inline]
    pub(super) fn current(&mut self) -> Option<&EntrySpan> {
        self.top()?.span.as_ref()
    }

    #[inline]
    fn current_mut(&mut self) -> Option<&mut EntrySpan> {
        self.top()?.span.as_mut()
    }

    /// Pushes a child of the current span, which the caller checked exists.
    ///
    /// Kept out of line so that callers with no current span (tracing off) stay a few
    /// instructions; inside, the child is built straight into its (vacant) entry.
    #[inline(never)]
    pub(super) fn push_child(
        &mut self,
        name: Cow<'static, str>,
        #[allow(unused)] pending_user_name: Option<Cow<'static, str>>,
    ) -> Option<RawId> {
        self.current()?;
        let (id, _) = self.push_vacant();
        let [.., parent, entry] = self.live_mut() else {
            unreachable!("a current span and a new entry make two");
        };
        let parent = parent.span.as_ref().expect("checked above");
        match parent {
            // An unsampled child is just its own identity: build that in the slot. Going
            // through `EntrySpan::child` would return a whole `EntrySpan` (the size of an
            // inline live span) and copy it in.
            EntrySpan::Shared(SpanHandle::NonRecording(state)) => {
                entry.span = Some(EntrySpan::Shared(SpanHandle::NonRecording(state.child())));
            }
            // A vacant entry holds no span: storing into it drops nothing (said outright, so
            // that no out-of-line drop of the old slot is called).
            _ => {
                let child = parent.child(name);
                if entry.span.is_none() {
                    entry.span = Some(child);
                }
            }
        }
        #[cfg(feature = "user-tracing")]
        {
            entry.user = pending_user_name.map_or(UserLink::None, UserLink::PendingName);
        }
        Some(id)
    }
}

/// This thread's stacks, one per pipeline, behind a single thread-local: opening an
/// internal span also asks whether a user trace is active, and one access serves both.
pub(super) struct Stacks {
    pub(super) pipelines: PerPipeline<RefCell<ScopeStack>>,
    /// The innermost context being polled on this thread. Its frame is installed on a stack
    /// only when code in the poll first uses that stack: most polls use neither, and then
    /// entering and leaving the context are a few stores (see `frame`).
    pub(super) polled: Cell<Option<PolledRef>>,
    /// Per stack, the poll whose frame is installed on it (`None`: none). Kept outside the
    /// stacks, so that leaving a poll that used neither borrows neither.
    pub(super) installed: PerPipeline<Cell<Option<PolledRef>>>,
    /// One bit per stack ([`pending_bit`]) whose `installed` is not `polled`: what every
    /// access tests first, one load for both facts.
    pub(super) pending: Cell<u8>,
    /// `true` from the moment the fast lane (`unsampled`) joins an unsampled internal child
    /// until anything but the lane touches these stacks. Meanwhile the top internal entry
    /// takes joined children (only its room may run out), and it or one of them is the
    /// current internal span, unsampled. Every accessor but the lane's ends the stretch
    /// first (`leave_quiet`), so it can only be stale in the safe direction.
    pub(super) quiet: Cell<bool>,
    /// The children the lane joined during the quiet stretch, not yet in their entry.
    pub(super) quiet_children: QuietChildren,
}

/// The bit of pipeline `P` in [`Stacks::pending`].
#[inline(always)]
pub(super) fn pending_bit<P: Pipeline>() -> u8 {
    *PerPipeline::new(1, 2).get::<P>()
}

thread_local! {
    static STACKS: Stacks = const {
        Stacks {
            pipelines: PerPipeline::new(
                RefCell::new(ScopeStack::new()),
                RefCell::new(ScopeStack::new()),
            ),
            polled: Cell::new(None),
            installed: PerPipeline::new(Cell::new(None), Cell::new(None)),
            pending: Cell::new(0),
            quiet: Cell::new(false),
            quiet_children: QuietChildren::new(),
        }
    };
}

/// Runs `f` on this thread's stacks, with the polled context's frames installed on each
/// stack that is free; `None` while the thread is being torn down.
#[inline]
pub(super) fn with_stacks<R>(f: impl FnOnce(&Stacks) -> R) -> Option<R> {
    STACKS
        .try_with(|stacks| {
            stacks.leave_quiet();
            if stacks.pending.get() != 0 {
                stacks.install_both();
            }
            f(stacks)
        })
        .ok()
}

/// Runs `f` on this thread's stacks as they are, frames not installed: for entering and
/// leaving a poll.
#[inline]
pub(super) fn with_stacks_as_they_are<R>(f: impl FnOnce(&Stacks) -> R) -> Option<R> {
    STACKS
        .try_with(|stacks| {
            stacks.leave_quiet();
            f(stacks)
        })
        .ok()
}

/// Runs `f` on this thread's stacks, leaving the quiet stretch to `f`: for the fast lane
/// (`unsampled`) only.
#[inline(always)]
pub(super) fn with_stacks_in_lane<R>(f: impl FnOnce(&Stacks) -> R) -> Option<R> {
    STACKS.try_with(f).ok()
}

/// Runs `f` on this thread's stack of pipeline `P`.
///
/// Returns `None` (and does not run `f`) while the thread is being torn down, or if the stack
/// is already borrowed further up this thread's call stack: tracing then degrades to a no-op
/// instead of panicking.
#[inline]
pub(super) fn with_stack<P: Pipeline, R>(f: impl FnOnce(&mut ScopeStack) -> R) -> Option<R> {
    STACKS
        .try_with(|stacks| {
            stacks.leave_quiet();
            let mut stack = stacks.pipelines.get::<P>().try_borrow_mut().ok()?;
            stacks.install_polled::<P>(&mut stack);
            Some(f(&mut stack))
        })
        .ok()
        .flatten()
}

/// Pushes an entry and makes it current until [`end`] is called with the returned id.
///
/// `start` writes the entry's span (or leaves "no span": a context without a span of this
/// pipeline) straight into it, and must not run application code: building an `EntrySpan`
/// elsewhere and moving it in would copy it (hundreds of bytes). `pending_user_name` is
/// kept for a later `with_user_span`. Neither happens when the stack is unavailable.
#[inline]
pub(crate) fn push<P: Pipeline>(
    pending_user_name: Option<Cow<'static, str>>,
    start: impl FnOnce(&mut Option<EntrySpan>),
) -> Option<ScopeId<P>> {
    with_stack::<P, _>(|stack| stack.push_with(pending_user_name, start)).map(ScopeId::new)
}

/// As [`push`], for a span whose last handle the caller keeps for longer than the entry
/// lives: ending the entry then runs no application code and happens in place (see
/// `Entry::outlived`). `start` must write a span the caller holds a handle to, or none.
#[inline]
pub(crate) fn push_outlived<P: Pipeline>(
    start: impl FnOnce(&mut Option<EntrySpan>),
) -> Option<ScopeId<P>> {
    with_stack::<P, _>(|stack| {
        let id = stack.push_with(None, start);
        stack.entries[stack.depth - 1].outlived = true;
        id
    })
    .map(ScopeId::new)
}

/// Opens a child of the current span of pipeline `P` named `name`, built straight into its
/// entry, and makes it current; `None` (dropping `name`) when there is no current span.
#[cfg(feature = "user-tracing")]
#[inline]
pub(crate) fn push_child_of_current<P: Pipeline>(name: Cow<'static, str>) -> Option<ScopeId<P>> {
    let mut name = Some(name);
    with_stack::<P, _>(|stack| {
        stack.current()?;
        stack.push_child(name.take()?, None)
    })
    .flatten()
    .map(ScopeId::new)
}

/// Ends the entry `id` if that runs no application code and nothing needs to be handed
/// back: a joined child, or a span that [finishes without application code](EntrySpan::finish_runs_no_app_code)
/// with no user span linked. Returns `false`, changing nothing, when the caller must use
/// [`end`] instead. The fast path of every scope's drop: it keeps no span-sized value on
/// the caller's stack.
#[inline]
pub(crate) fn end_in_place<P: Pipeline>(id: ScopeId<P>) -> bool {
    with_stack::<P, _>(|stack| {
        let index = match stack.end_innermost_joined(id.raw) {
            Some((_, true)) => return true,
            Some((index, false)) => index,
            None => {
                let Some((index, joined)) = stack.locate(id.raw) else {
                    return true;
                };
                if stack.entries[index].joined_scope_ends(joined) {
                    return true;
                }
                index
            }
        };
        let entry = &mut stack.entries[index];
        #[cfg(feature = "user-tracing")]
        match entry.user {
            UserLink::Opened(_) => return false,
            // A pending name is a plain string.
            UserLink::PendingName(_) => entry.user = UserLink::None,
            UserLink::None => {}
        }
        if !entry.outlived
            && !entry
                .span
                .as_ref()
                .is_none_or(EntrySpan::finish_runs_no_app_code)
        {
            return false;
        }
        entry.span = None;
        stack.vacate(index);
        true
    })
    // The stack is gone (thread teardown) or busy: there is nothing to end.
    .unwrap_or(true)
}

/// Ends entry `id` as a scope's drop does: in place when that runs no application code
/// (see [`end_in_place`]); else its linked user entry first, then its span, finished here
/// after the stack's borrow is released.
#[inline]
pub(crate) fn end_scope<P: Pipeline>(id: ScopeId<P>) {
    if !end_in_place(id) {
        end_deferred(id);
    }
    // A span ended in place may have left its routing to drop now, the stack released.
    routing::drop_deferred();
}

/// The path of [`end_scope`] that may run application code (a routing's or a finish
/// callback's drop): out of line, so that the quiet common case stays small.
#[cold]
#[inline(never)]
fn end_deferred<P: Pipeline>(id: ScopeId<P>) {
    let mut deferred = None;
    let user_scope = end(id, &mut deferred);
    // The user span (opened last) finishes first.
    if let Some(user_scope) = user_scope {
        end_scope(user_scope);
    }
    // `deferred` finishes as it goes out of scope, the borrow released.
}

/// Ends the entry `id`, wherever it is in the stack: what its scope's drop does.
///
/// A span that finishes without running application code (see
/// [`EntrySpan::finish_runs_no_app_code`]) finishes right here, in place: moving an entry out
/// costs more than all the rest of removing it. Any other span is moved to `deferred`, for the
/// caller to drop once this returns. Returns the user entry linked to this one, if any.
#[inline]
fn end<P: Pipeline>(id: ScopeId<P>, deferred: &mut Option<EntrySpan>) -> Option<ScopeId<User>> {
    with_stack::<P, _>(|stack| {
        let (index, joined) = stack.locate(id.raw)?;
        let entry = &mut stack.entries[index];
        if entry.joined_scope_ends(joined) {
            return None;
        }
        let user_scope = entry.take_user_scope();
        // With a linked user span the span is deferred too, so that the caller finishes the
        // user span (opened last) first.
        let quiet = user_scope.is_none()
            && (entry.outlived
                || entry
                    .span
                    .as_ref()
                    .is_none_or(EntrySpan::finish_runs_no_app_code));
        if quiet {
            entry.span = None;
        } else {
            *deferred = entry.span.take();
        }
        stack.vacate(index);
        user_scope
    })
    .flatten()
}

/// Removes the entry `id` wherever it is in the stack, and returns its span. Drop it after
/// this returns: finishing a span may run application code.
#[cfg(feature = "user-tracing")]
#[inline]
pub(crate) fn remove<P: Pipeline>(id: ScopeId<P>) -> Option<EntrySpan> {
    remove_entry(id).and_then(|entry| entry.span)
}

/// Removes the entry `id` wherever it is in the stack, and returns what it held.
#[inline]
pub(crate) fn remove_entry<P: Pipeline>(id: ScopeId<P>) -> Option<RemovedEntry> {
    with_stack::<P, _>(|stack| {
        let (index, joined) = stack.locate(id.raw)?;
        let entry = &mut stack.entries[index];
        if let Some((span, entry_done)) = entry.leave_as_context(joined) {
            if entry_done {
                stack.vacate(index);
            }
            return Some(RemovedEntry {
                span,
                #[cfg(feature = "user-tracing")]
                user_scope: None,
            });
        }
        #[allow(unused)]
        let user_scope = entry.take_user_scope();
        let removed = RemovedEntry {
            span: entry.span.take(),
            #[cfg(feature = "user-tracing")]
            user_scope,
        };
        stack.vacate(index);
        Some(removed)
    })
    .flatten()
}

/// The current span of pipeline `P` on this thread, as a handle that can leave the thread.
///
/// An owned span moves behind an `Arc` for this, in place: later tags and children on this
/// thread then go through the shared span.
#[inline]
pub(crate) fn current<P: Pipeline>() -> Option<SpanHandle> {
    with_stack::<P, _>(|stack| {
        if stack.depth == stack.floor {
            return stack.frame_span().cloned();
        }
        let top = stack.live_mut().last_mut()?;
        if let Some(span_id) = top.joined.current() {
            let state = top.span.as_ref()?.state().with_span_id(span_id);
            return Some(SpanHandle::NonRecording(state));
        }
        let slot = &mut top.span;
        let shared = slot.take()?.into_shared();
        *slot = Some(EntrySpan::Shared(shared.clone()));
        Some(shared)
    })
    .flatten()
}

/// Reads the identity of the current span of pipeline `P`, if there is one. `f` must not
/// touch the scope stacks or run application code.
#[inline]
pub(crate) fn current_state<P: Pipeline, R>(f: impl FnOnce(&SpanState) -> R) -> Option<R> {
    with_stack::<P, _>(|stack| {
        if stack.depth == stack.floor {
            return stack.frame_span().map(|span| f(span.state()));
        }
        let top = stack.live_mut().last_mut()?;
        let joined = top.joined.current();
        let span = top.span.as_ref()?;
        Some(match joined {
            None => f(span.state()),
            // A joined child: its parent's identity under its own span id.
            Some(span_id) => f(&span.state().with_span_id(span_id)),
        })
    })
    .flatten()
}

/// Reads the current span without sharing it: whether there is one and whether it is
/// recorded. For its identity use [`current_state`]: a joined child shares its entry's span
/// (and so its `is_recording`), not its span id. `f` must not touch the scope stacks or run
/// application code.
#[inline]
#[cfg_attr(not(feature = "tracing-bridge"), allow(dead_code))]
pub(crate) fn inspect_current<P: Pipeline, R>(f: impl FnOnce(Option<&EntrySpan>) -> R) -> R {
    let mut f = Some(f);
    with_stack::<P, _>(|stack| f.take().map(|f| f(stack.current())))
        .flatten()
        .unwrap_or_else(|| (f.take().expect("not called"))(None))
}

/// Runs `f` on the current span, if there is one. `f` must not touch the scope stacks or
/// run application code (nor drop values whose drop may run it).
#[inline]
pub(crate) fn with_current<P: Pipeline>(f: impl FnOnce(&mut EntrySpan)) {
    with_stack::<P, _>(|stack| {
        if let Some(span) = stack.current_mut() {
            f(span);
        }
    });
}

#[cfg(all(test, feature = "testing"))]
#[path = "stack_tests.rs"]
pub(super) mod tests;
