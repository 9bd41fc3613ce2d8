//! Thread-local scope stacks: which span is current on this thread, per pipeline.
//!
//! Each pipeline has its own stack, so the internal and user pipelines can never see each
//! other's spans. Entries are removed by id, not popped: a scope dropped out of order
//! removes exactly its own entry and never re-parents later spans.
//!
//! An unsampled span has no identity of its own: it *is* its parent's (same ids, nothing
//! recorded). So an unsampled child of an unsampled span takes no entry: it is *folded*
//! into its parent's, which counts it, and its scope ends by uncounting it. Which of the
//! scopes sharing an entry ends first does not matter; the entry goes with the last one.
//! That keeps a whole unsampled trace as cheap as a counter per span.
//!
//! An entry *owns* a recorded span that nothing else refers to (see the `state` module), so
//! tagging the current span or opening a child of it needs no lock: a new child is built
//! and pushed within one borrow of the stack. Capturing the current span
//! ([`current`]) moves it behind an `Arc` in place.
//!
//! This module owns the stacks (and, in tests, the thread's test harness); which spans they
//! hold is decided by its callers. No application code runs while a stack is borrowed:
//! finishing a span may run its finish callback, which may open spans itself, so a span
//! that may do so is moved off the stack and dropped after the borrow is released. Only a
//! span that [finishes quietly](LocalSpan::finishes_quietly) (the common case) finishes in
//! place, since moving it out costs more than the rest of ending its scope.

use super::harness::Pipeline;
use super::state::{LocalSpan, SharedSpan};
use std::borrow::Cow;
use std::cell::RefCell;
use std::num::NonZeroU64;

#[cfg(feature = "testing")]
use super::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

/// Identifies one entry of one thread's stack.
///
/// Non-zero, so that `Option<ScopeId>` (all a `SpanScope` holds) is one machine word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScopeId(NonZeroU64);

/// One entry of a stack: live below the stack's depth, vacant above it.
struct Entry {
    id: ScopeId,
    /// `None` marks a context without a span of this pipeline: it hides spans below it.
    span: Option<LocalSpan>,
    /// How many unsampled children are folded into this entry (see the module docs): the
    /// number of scopes, beyond the one that pushed it, that end here.
    folded: u32,
    /// The entry's link to a parallel user span (`SpanScope::with_user_span`): kept here
    /// rather than in the scope so that a scope stays one machine word.
    #[cfg(feature = "user-tracing")]
    user: UserLink,
}

/// How an internal stack entry relates to the user pipeline.
#[cfg(feature = "user-tracing")]
#[derive(Default)]
enum UserLink {
    #[default]
    None,
    /// A user trace was active when the span opened: its name, should a user span follow.
    PendingName(Cow<'static, str>),
    /// The parallel user span's entry on the user stack, ended with this entry.
    Opened(ScopeId),
}

/// What [`remove_entry`] took off a stack.
pub(crate) struct RemovedEntry {
    pub(crate) span: Option<LocalSpan>,
    /// The parallel user span's entry on the user stack, if one was opened.
    #[cfg(feature = "user-tracing")]
    pub(crate) user_scope: Option<ScopeId>,
}

pub(crate) struct ScopeStack {
    /// Entries `..depth` are the stack, top last. Those above are vacant (no span, no user
    /// link) and kept: pushing reuses one in place, since building an entry elsewhere and
    /// moving it in would copy the span it holds (hundreds of bytes) for every span.
    entries: Vec<Entry>,
    depth: usize,
    next_id: u64,
    /// The harness that roots started on this thread use instead of the global one.
    #[cfg(feature = "testing")]
    test_harness: Option<Arc<Harness>>,
}

impl Entry {
    const fn vacant() -> Self {
        Self {
            id: ScopeId(NonZeroU64::MIN),
            span: None,
            folded: 0,
            #[cfg(feature = "user-tracing")]
            user: UserLink::None,
        }
    }

    /// Ends one of the scopes folded into this entry, if any: `true` when one was, and the
    /// entry stays for the others.
    #[inline]
    fn end_folded(&mut self) -> bool {
        let folded = self.folded > 0;
        if folded {
            self.folded -= 1;
        }
        folded
    }

    /// The user entry linked to this one, unlinking it. A pending name drops here: a plain
    /// string, not application code.
    #[inline]
    fn take_user_scope(&mut self) -> Option<ScopeId> {
        #[cfg(feature = "user-tracing")]
        if let UserLink::Opened(user_scope) = std::mem::take(&mut self.user) {
            return Some(user_scope);
        }
        None
    }
}

impl ScopeStack {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            depth: 0,
            next_id: 0,
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
    fn find(&self, id: ScopeId) -> Option<usize> {
        self.live().iter().rposition(|entry| entry.id == id)
    }

    /// Makes the next vacant entry (added if there is none) the top one, under a new id.
    #[inline]
    fn push_vacant(&mut self) -> (ScopeId, &mut Entry) {
        // Starts at 1 and would take centuries to wrap; `MIN` keeps it non-zero regardless.
        self.next_id = self.next_id.wrapping_add(1);
        let id = ScopeId(NonZeroU64::new(self.next_id).unwrap_or(NonZeroU64::MIN));
        if self.depth == self.entries.len() {
            self.entries.push(Entry::vacant());
        }
        let entry = &mut self.entries[self.depth];
        self.depth += 1;
        entry.id = id;
        (id, entry)
    }

    /// Pushes an entry whose span `start` writes straight into it (a vacant entry holds
    /// none): building a `LocalSpan` elsewhere and moving it in would copy it.
    #[inline]
    fn push_with(
        &mut self,
        #[allow(unused)] pending_user_name: Option<Cow<'static, str>>,
        start: impl FnOnce(&mut Option<LocalSpan>),
    ) -> ScopeId {
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
    }

    /// Out of order: the entries above `index` move down one, and it goes above them.
    /// Out of line, so that the common in-order end does not reserve room for an entry.
    #[cold]
    #[inline(never)]
    fn move_to_top(&mut self, index: usize) {
        self.entries[index..self.depth].rotate_left(1);
    }

    #[inline]
    fn current(&self) -> Option<&LocalSpan> {
        self.live().last()?.span.as_ref()
    }

    #[inline]
    fn current_mut(&mut self) -> Option<&mut LocalSpan> {
        self.live_mut().last_mut()?.span.as_mut()
    }

    /// Folds an unsampled child into the top entry, if it can be (see the module docs):
    /// its span is unsampled and no user span is linked or pending there, nor for the child.
    /// The user-link conditions keep a user span's lifetime that of exactly one scope.
    #[inline(always)]
    fn try_fold_child(&mut self) -> Option<ScopeId> {
        let top = self.live_mut().last_mut()?;
        #[cfg(feature = "user-tracing")]
        if !matches!(top.user, UserLink::None) {
            return None;
        }
        if !matches!(
            top.span,
            Some(LocalSpan::Shared(SharedSpan::NonRecording(_)))
        ) {
            return None;
        }
        top.folded = top.folded.checked_add(1)?;
        Some(top.id)
    }

    /// Pushes a child of the current span, which the caller checked exists.
    ///
    /// Kept out of line so that callers with no current span (tracing off) stay a few
    /// instructions; inside, the child is built straight into its (vacant) entry.
    #[inline(never)]
    fn push_child(
        &mut self,
        name: Cow<'static, str>,
        #[allow(unused)] pending_user_name: Option<Cow<'static, str>>,
    ) -> Option<ScopeId> {
        self.current()?;
        let (id, _) = self.push_vacant();
        let [.., parent, entry] = self.live_mut() else {
            unreachable!("a current span and a new entry make two");
        };
        let parent = parent.span.as_ref().expect("checked above");
        match parent {
            // An unsampled child that could not be folded is its parent's identity: build
            // just that in the slot. Going through `LocalSpan::child` would return a whole
            // `LocalSpan` (the size of an inline live span) and copy it in.
            LocalSpan::Shared(SharedSpan::NonRecording(state)) => {
                entry.span = Some(LocalSpan::Shared(SharedSpan::NonRecording(state.clone())));
            }
            // A vacant entry holds no span: this writes the child in place.
            _ => {
                entry.span.get_or_insert_with(|| parent.child(name));
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
struct Stacks {
    internal: RefCell<ScopeStack>,
    user: RefCell<ScopeStack>,
}

impl Stacks {
    #[inline]
    fn of(&self, pipeline: Pipeline) -> &RefCell<ScopeStack> {
        match pipeline {
            Pipeline::Internal => &self.internal,
            Pipeline::User => &self.user,
        }
    }
}

thread_local! {
    static STACKS: Stacks = const {
        Stacks {
            internal: RefCell::new(ScopeStack::new()),
            user: RefCell::new(ScopeStack::new()),
        }
    };
}

/// Runs `f` on this thread's stack of `pipeline`.
///
/// Returns `None` (and does not run `f`) while the thread is being torn down, or if the stack
/// is already borrowed further up this thread's call stack: tracing then degrades to a no-op
/// instead of panicking.
#[inline]
fn with_stack<R>(pipeline: Pipeline, f: impl FnOnce(&mut ScopeStack) -> R) -> Option<R> {
    STACKS
        .try_with(|stacks| {
            let mut stack = stacks.of(pipeline).try_borrow_mut().ok()?;
            Some(f(&mut stack))
        })
        .ok()
        .flatten()
}

/// Pushes an entry and makes it current until [`end`] is called with the returned id.
///
/// `start` writes the entry's span (or leaves "no span": a context without a span of this
/// pipeline) straight into it, and must not run application code: building a `LocalSpan`
/// elsewhere and moving it in would copy it (hundreds of bytes). `pending_user_name` is
/// kept for a later `with_user_span`. Neither happens when the stack is unavailable.
#[inline]
pub(crate) fn push_started(
    pipeline: Pipeline,
    pending_user_name: Option<Cow<'static, str>>,
    start: impl FnOnce(&mut Option<LocalSpan>),
) -> Option<ScopeId> {
    with_stack(pipeline, |stack| stack.push_with(pending_user_name, start))
}

/// Opens a child of the current span of `pipeline` named `name`, built straight into its
/// entry, and makes it current; `None` (dropping `name`) when there is no current span.
/// For the user pipeline, where every span is recorded: nothing is folded.
#[cfg(feature = "user-tracing")]
#[inline]
pub(crate) fn push_child_of_current(
    pipeline: Pipeline,
    name: Cow<'static, str>,
) -> Option<ScopeId> {
    let mut name = Some(name);
    with_stack(pipeline, |stack| {
        stack.current()?;
        stack.push_child(name.take()?, None)
    })
    .flatten()
}

/// What [`push_internal_child`] did.
pub(crate) enum InternalChild {
    /// The child is open and current.
    Opened(ScopeId),
    /// There is no current internal span (or the stack is unavailable): the caller may
    /// start a root instead. `user_trace_active` says whether the new span should keep its
    /// name for `with_user_span`.
    NoCurrentSpan { user_trace_active: bool },
}

/// Opens a child of the current internal span named `name` and makes it current, within
/// one borrow of the stack. In the same visit to this thread's stacks it checks whether a
/// user trace is active: if so, the child keeps (a copy of) its name for
/// `with_user_span`. Takes `name` only if it opens the child.
///
/// `name` is borrowed rather than moved in and handed back so that the common "no current
/// span" path (tracing off) does not copy it around.
#[inline]
pub(crate) fn push_internal_child(name: &mut Option<Cow<'static, str>>) -> InternalChild {
    STACKS
        .try_with(|stacks| {
            #[cfg(feature = "user-tracing")]
            let user_trace_active = stacks
                .user
                .try_borrow()
                .is_ok_and(|user| user.current().is_some());
            #[cfg(not(feature = "user-tracing"))]
            let user_trace_active = false;
            let no_current = InternalChild::NoCurrentSpan { user_trace_active };
            let Ok(mut stack) = stacks.internal.try_borrow_mut() else {
                return no_current;
            };
            if stack.current().is_none() {
                return no_current;
            }
            // The common unsampled child is folded right here; the out-of-line path builds.
            if !user_trace_active {
                if let Some(id) = stack.try_fold_child() {
                    return InternalChild::Opened(id);
                }
            }
            let Some(name) = name.take() else {
                return no_current;
            };
            // Cloning keeps a borrowed name borrowed: no allocation.
            let pending_user_name = user_trace_active.then(|| name.clone());
            match stack.push_child(name, pending_user_name) {
                Some(id) => InternalChild::Opened(id),
                None => no_current,
            }
        })
        .unwrap_or(InternalChild::NoCurrentSpan {
            user_trace_active: false,
        })
}

/// Takes the name kept by [`push_started`] for entry `id`, if no user span was opened yet.
#[cfg(feature = "user-tracing")]
pub(crate) fn take_pending_user_name(pipeline: Pipeline, id: ScopeId) -> Option<Cow<'static, str>> {
    with_stack(pipeline, |stack| {
        let index = stack.find(id)?;
        let entry = &mut stack.entries[index];
        match std::mem::take(&mut entry.user) {
            UserLink::PendingName(name) => Some(name),
            other => {
                entry.user = other;
                None
            }
        }
    })
    .flatten()
}

/// Records that entry `id` opened the user stack's entry `user_scope`.
#[cfg(feature = "user-tracing")]
pub(crate) fn link_user_scope(pipeline: Pipeline, id: ScopeId, user_scope: ScopeId) {
    with_stack(pipeline, |stack| {
        if let Some(index) = stack.find(id) {
            stack.entries[index].user = UserLink::Opened(user_scope);
        }
    });
}

/// Ends the entry `id` if that runs no application code and nothing needs to be handed
/// back: a folded scope, or a span that [finishes quietly](LocalSpan::finishes_quietly)
/// with no user span linked. Returns `false`, changing nothing, when the caller must use
/// [`end`] instead. The fast path of every scope's drop: it keeps no span-sized value on
/// the caller's stack.
#[inline]
pub(crate) fn end_quietly(pipeline: Pipeline, id: ScopeId) -> bool {
    with_stack(pipeline, |stack| {
        let Some(index) = stack.find(id) else {
            return true;
        };
        let entry = &mut stack.entries[index];
        if entry.end_folded() {
            return true;
        }
        #[cfg(feature = "user-tracing")]
        match entry.user {
            UserLink::Opened(_) => return false,
            // A pending name is a plain string.
            UserLink::PendingName(_) => entry.user = UserLink::None,
            UserLink::None => {}
        }
        if !entry.span.as_ref().is_none_or(LocalSpan::finishes_quietly) {
            return false;
        }
        entry.span = None;
        stack.vacate(index);
        true
    })
    // The stack is gone (thread teardown) or busy: there is nothing to end.
    .unwrap_or(true)
}

/// Ends entry `id`, which has no linked user entry, as a scope's drop does: in place when
/// that is quiet (see [`end_quietly`]), else by finishing its span here, after the stack's
/// borrow is released.
#[inline]
pub(crate) fn end_scope(pipeline: Pipeline, id: ScopeId) {
    if !end_quietly(pipeline, id) {
        end_spilling(pipeline, id);
    }
}

/// The path of [`end_scope`] that may run application code (a routing's or a finish
/// callback's drop): out of line, so that the quiet common case stays small.
#[cold]
#[inline(never)]
fn end_spilling(pipeline: Pipeline, id: ScopeId) {
    let mut spill = None;
    end(pipeline, id, &mut spill);
    // `spill` finishes as it goes out of scope, the borrow released.
}

/// Ends the entry `id`, wherever it is in the stack: what its scope's drop does.
///
/// A span that finishes without running application code (see
/// [`LocalSpan::finishes_quietly`]) finishes right here, in place: moving an entry out
/// costs more than all the rest of removing it. Any other span is moved to `spill`, for the
/// caller to drop once this returns. Returns the user entry linked to this one, if any.
#[inline]
pub(crate) fn end(
    pipeline: Pipeline,
    id: ScopeId,
    spill: &mut Option<LocalSpan>,
) -> Option<ScopeId> {
    with_stack(pipeline, |stack| {
        let index = stack.find(id)?;
        let entry = &mut stack.entries[index];
        if entry.end_folded() {
            return None;
        }
        let user_scope = entry.take_user_scope();
        // With a linked user span the span is spilled too, so that the caller finishes the
        // user span (opened last) first.
        let quiet =
            user_scope.is_none() && entry.span.as_ref().is_none_or(LocalSpan::finishes_quietly);
        if quiet {
            entry.span = None;
        } else {
            *spill = entry.span.take();
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
pub(crate) fn remove(pipeline: Pipeline, id: ScopeId) -> Option<LocalSpan> {
    remove_entry(pipeline, id).and_then(|entry| entry.span)
}

/// Removes the entry `id` wherever it is in the stack, and returns what it held.
#[inline]
pub(crate) fn remove_entry(pipeline: Pipeline, id: ScopeId) -> Option<RemovedEntry> {
    with_stack(pipeline, |stack| {
        let index = stack.find(id)?;
        let entry = &mut stack.entries[index];
        if entry.end_folded() {
            // The entry stays for the other scopes; this one leaves with a copy of its
            // unsampled (so identity-only, always shared) span. It has no user link.
            let span = match &entry.span {
                Some(LocalSpan::Shared(span)) => Some(LocalSpan::Shared(span.clone())),
                _ => None,
            };
            debug_assert!(span.is_some(), "only unsampled spans are folded");
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

/// The current span of `pipeline` on this thread, as a handle that can leave the thread.
///
/// An owned span moves behind an `Arc` for this, in place: later tags and children on this
/// thread then go through the shared span.
#[inline]
pub(crate) fn current(pipeline: Pipeline) -> Option<SharedSpan> {
    with_stack(pipeline, |stack| {
        let slot = &mut stack.live_mut().last_mut()?.span;
        let shared = slot.take()?.into_shared();
        *slot = Some(LocalSpan::Shared(shared.clone()));
        Some(shared)
    })
    .flatten()
}

/// Reads the current span without sharing it. `f` must not touch the scope stacks or run
/// application code.
#[inline]
pub(crate) fn inspect_current<R>(pipeline: Pipeline, f: impl FnOnce(Option<&LocalSpan>) -> R) -> R {
    let mut f = Some(f);
    let result = with_stack(pipeline, |stack| {
        let current = stack.current();
        (f.take().expect("called once"))(current)
    });
    match result {
        Some(result) => result,
        None => (f.take().expect("not called"))(None),
    }
}

/// Runs `f` on the current span, if there is one. `f` must not touch the scope stacks or
/// run application code (nor drop values whose drop may run it).
#[inline]
pub(crate) fn with_current(pipeline: Pipeline, f: impl FnOnce(&mut LocalSpan)) {
    with_stack(pipeline, |stack| {
        if let Some(span) = stack.current_mut() {
            f(span);
        }
    });
}

/// The harness that roots started on this thread use instead of the global one.
#[cfg(feature = "testing")]
pub(crate) fn test_harness(pipeline: Pipeline) -> Option<Arc<Harness>> {
    with_stack(pipeline, |stack| stack.test_harness.clone()).flatten()
}

/// Replaces this thread's test harness, returning the previous one.
#[cfg(feature = "testing")]
pub(crate) fn swap_test_harness(
    pipeline: Pipeline,
    harness: Option<Arc<Harness>>,
) -> Option<Arc<Harness>> {
    let mut harness = Some(harness);
    let previous = with_stack(pipeline, |stack| {
        std::mem::replace(&mut stack.test_harness, harness.take().flatten())
    });
    previous.flatten()
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::telemetry::TelemetryContext;
    use crate::telemetry::tracing::{self, SpanId, StartTraceOptions, TraceId};

    /// Live entries on this thread's internal stack.
    fn depth() -> usize {
        with_stack(Pipeline::Internal, |stack| stack.depth).expect("stack available")
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
                "one entry for the root and its folded children"
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
                // Spans under the captured identity fold into the context's own entry.
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
            let folded = tracing::span("folded");
            let above = recorded_ctx.scope();
            drop(folded);
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
}
