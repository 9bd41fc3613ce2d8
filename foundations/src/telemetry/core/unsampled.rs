//! The fast lane: the common operations on unsampled internal spans, in small functions
//! of their own.
//!
//! An unsampled child of an unsampled span is joined into its parent's entry (see the
//! `stack` and `joined` modules). Through the general paths (`user_link::push_internal_child`,
//! `stack::end_scope`, and a borrow of the stack for the tag macros' check) such a child
//! cost about 190 instructions; most of them went to what those paths must be ready for:
//! register saves for building a recorded child, a poll's frame to install, an active user
//! trace, deferred drops. The functions here do the common cases only, and hand anything
//! else back before changing anything; the general path then gives the same result.
//!
//! - [`open_child`] joins an unsampled child or builds a child of a recorded span, or
//!   hands the child to the general path. A join starts a *quiet stretch* (below).
//! - During a quiet stretch, [`try_join_quietly`] joins the next child with a room check,
//!   and holds it beside the stack (`joined::QuietChildren`), not in the entry: no borrow.
//!   [`current_is_recording`], which every tag macro asks first, answers without one too.
//! - A joined child's scope id carries [`JOINED_CHILD_BIT`]; [`try_end_child`] ends it
//!   (a quiet one with no borrow either).
//! - [`push_root`] pushes an unsampled root's entry; when the span owns nothing, its id
//!   carries [`LANE_BIT`] and [`try_end_entry`] ends it without the general end. So does
//!   the entry of a recorded child that [`open_child`] builds: its end finishes the span
//!   in place when that runs no application code (no finish callback).
//!
//! A quiet stretch lasts from a lane join until anything else touches the stacks: every
//! other accessor ends it first (`Stacks::leave_quiet`), which moves the children held
//! beside the stack into their entry, where everything else looks for them. Meanwhile
//! nothing but the lane can see them, so nothing needs to. About 1000 instructions for an
//! unsampled root and 9 tagged children, against 1350 with joined children kept in their
//! entry.
//!
//! This module owns which children join (the general path asks it too), the quiet
//! stretch, and the lane's ends. It must not install frames, run application code (a span
//! whose finish may run some goes to the general end), or touch the user stack beyond
//! asking whether it has a current span.

#[cfg(feature = "user-tracing")]
use super::entry::UserLink;
use super::entry_span::EntrySpan;
use super::entry_span::SpanHandle;
use super::identity::SpanState;
use super::pipeline::{
    Internal, JOINED_CHILD_BIT, LANE_BIT, PerPipeline, Pipeline, RawId, ScopeId,
};
use super::stack::{ScopeStack, Stacks, pending_bit, with_stack, with_stacks_in_lane};
use std::borrow::Cow;

/// How an entry ends in the lane (see [`try_end_entry`]).
#[derive(Clone, Copy)]
enum LaneEnd {
    /// Not in the lane: the general end does it.
    No,
    /// An unsampled span that owns nothing: let go of, no drop to run.
    LetGo,
    /// An owned recorded span that finishes without application code: finished in place.
    Finish,
}

impl ScopeStack {
    /// Where a child of the current entry goes: `Some(true)` when it can join the top entry
    /// (see the `stack` module docs), `Some(false)` when it needs an entry of its own, `None`
    /// when no entry is current (none, or only a frame's span). A child joins a live entry
    /// whose span is unsampled without routing, with no user span linked or pending, and
    /// room. The user-link conditions keep a user span's lifetime that of exactly one scope;
    /// without routing, ending the entry never runs application code.
    #[inline(always)]
    fn child_joins_top(&self) -> Option<bool> {
        if self.depth == self.floor {
            return None;
        }
        let top = self.entries.get(self.depth.checked_sub(1)?)?;
        let joins = match top.span.as_ref()? {
            EntrySpan::Shared(SpanHandle::NonRecording(state)) => {
                state.routing().is_none() && !top.joined.is_full()
            }
            _ => false,
        };
        #[cfg(feature = "user-tracing")]
        let joins = joins && matches!(top.user, UserLink::None);
        Some(joins)
    }

    /// Joins a child into the top entry, which [`child_joins_top`](Self::child_joins_top)
    /// allowed; its scope id is marked as a joined child's.
    #[inline(always)]
    fn join_top(&mut self) -> RawId {
        let id = self.next_id() | LANE_BIT | JOINED_CHILD_BIT;
        self.entries[self.depth - 1].joined.push(id);
        id
    }

    /// How the top entry can end in the lane, if it is entry `id`, current (above any
    /// frame's floor), with nothing joined or linked.
    #[inline(always)]
    fn top_ends_in_lane(&self, id: RawId) -> LaneEnd {
        let Some(top) = self.depth.checked_sub(1) else {
            return LaneEnd::No;
        };
        let Some(entry) = self.entries.get(top) else {
            return LaneEnd::No;
        };
        let alone = top >= self.floor && entry.id == id && entry.joined.is_empty();
        #[cfg(feature = "user-tracing")]
        let alone = alone && matches!(entry.user, UserLink::None);
        if !alone {
            return LaneEnd::No;
        }
        match &entry.span {
            Some(EntrySpan::Shared(SpanHandle::NonRecording(state))) if state.owns_nothing() => {
                LaneEnd::LetGo
            }
            Some(span @ EntrySpan::Owned(_)) if span.finish_runs_no_app_code() => LaneEnd::Finish,
            _ => LaneEnd::No,
        }
    }

    /// Removes the top entry, which [`top_ends_in_lane`](Self::top_ends_in_lane) allowed
    /// to end as `end` says.
    #[inline(always)]
    fn pop_lane_entry(&mut self, end: LaneEnd) {
        let top = self.depth - 1;
        let span = &mut self.entries[top].span;
        if let LaneEnd::LetGo = end {
            // The span owns nothing: letting go of it without its drop frees nothing, and
            // saves the drop's dispatch on the enum.
            std::mem::forget(span.take());
        } else {
            // It finishes right here, running no application code.
            *span = None;
        }
        self.depth = top;
    }

    /// Gives the entry just pushed on top under `id` an id whose scope's end tries the
    /// lane first (see [`LANE_BIT`]).
    #[inline(always)]
    fn mark_top_for_lane(&mut self, id: RawId) -> RawId {
        let id = id | LANE_BIT;
        if let Some(top) = self
            .depth
            .checked_sub(1)
            .and_then(|top| self.entries.get_mut(top))
        {
            top.id = id;
        }
        id
    }

    /// Joins an unsampled child into the top entry, if it can be (see
    /// [`child_joins_top`](Self::child_joins_top)); the caller checked that no user trace is
    /// active (a child would then keep its name for `with_user_span`).
    #[inline(always)]
    pub(super) fn try_join_unsampled_child(&mut self) -> Option<RawId> {
        if self.depth == self.floor {
            self.materialize()?;
        }
        self.child_joins_top()?.then(|| self.join_top())
    }
}

/// Joins an unsampled child into the current internal entry during a quiet stretch (see
/// [`Stacks::quiet`]): everything [`open_child`] checks was checked at the stretch's first
/// join, and nothing has changed since but joined children coming and going, so only the
/// entry's room is left to see. The child is held beside the stack (`QuietChildren`), so
/// this borrows nothing. `None`, having changed nothing, otherwise.
#[inline(always)]
pub(crate) fn try_join_quietly() -> Option<ScopeId<Internal>> {
    with_stacks_in_lane(|stacks| {
        if !stacks.quiet.get() {
            return None;
        }
        stacks.quiet_children.push().map(ScopeId::new)
    })
    .flatten()
}

impl Stacks {
    /// Ends a quiet stretch: the children joined during it move into their entry, where
    /// everything else looks for them. What every accessor but the lane's does first.
    #[inline(always)]
    pub(super) fn leave_quiet(&self) {
        // Children are held only during a stretch: outside one, a load and a branch.
        if self.quiet.get() {
            self.quiet.set(false);
            if !self.quiet_children.is_empty() {
                self.settle_quiet_children();
            }
        }
    }

    #[inline(never)]
    fn settle_quiet_children(&self) {
        // The stretch began with a join into the top internal entry, and nothing but the
        // lane touched the stacks since: it is still the top entry, not borrowed (a borrow
        // ends any stretch before it is taken, and none can begin under one).
        let Ok(mut stack) = self.pipelines.internal.try_borrow_mut() else {
            debug_assert!(false, "a quiet stretch under a borrow of the stack");
            return;
        };
        let Some(top) = stack.depth.checked_sub(1) else {
            return;
        };
        if let Some(entry) = stack.entries.get_mut(top) {
            self.quiet_children.settle(&mut entry.joined);
        }
    }
}

/// Opens a child of the current internal span named `name`, as the general path would,
/// when nothing needs preparing first: no poll frame left to install on either stack, a
/// current internal entry (not a frame's span), and no user trace active. An unsampled
/// child joins its parent's entry (and a quiet stretch starts); any other is built into
/// an entry of its own. `Ok(None)` while the thread is torn down. Otherwise `name` comes
/// back, nothing changed, for the general path.
///
/// Its caller keeps it out of line, so that [`try_join_quietly`] stays free of its
/// register saves.
#[inline]
pub(crate) fn open_child<N: Into<Cow<'static, str>>>(
    name: N,
) -> Result<Option<ScopeId<Internal>>, N> {
    let Some(opened) = with_stacks_in_lane(|stacks| {
        stacks.leave_quiet();
        if stacks.pending.get() != 0 {
            return Err(name);
        }
        let Ok(mut stack) = stacks.pipelines.internal.try_borrow_mut() else {
            return Err(name);
        };
        let Some(joins) = stack.child_joins_top() else {
            return Err(name);
        };
        // An active user trace makes a child keep its name for `with_user_span`: a
        // general-path child. A busy user stack counts as no user trace, as there.
        #[cfg(feature = "user-tracing")]
        if stacks
            .pipelines
            .user
            .try_borrow()
            .is_ok_and(|user| user.has_current())
        {
            return Err(name);
        }
        if joins {
            // Until anything else touches the stacks, this entry (or a child joined into
            // it) is current, and takes the next child as this one.
            let id = stack.join_top();
            stacks.quiet.set(true);
            stacks
                .quiet_children
                .begin(stack.entries[stack.depth - 1].joined.room());
            Ok(Some(ScopeId::new(id)))
        } else {
            let id = stack.push_child(name.into(), None);
            Ok(id.map(|id| ScopeId::new(stack.mark_top_for_lane(id))))
        }
    }) else {
        return Ok(None);
    };
    opened
}

/// Pushes the entry of an internal root that was not sampled, whose identity `state`
/// builds straight into the entry, and makes it current. When the span owns nothing and no
/// user span name is pending, the entry's id carries [`LANE_BIT`], so that its
/// scope's end tries [`try_end_entry`].
#[inline]
pub(crate) fn push_root(
    state: impl FnOnce() -> SpanState,
    pending_user_name: Option<Cow<'static, str>>,
) -> Option<ScopeId<Internal>> {
    with_stack::<Internal, _>(|stack| {
        let (id, entry) = stack.push_vacant();
        // A vacant entry holds no span (see `ScopeStack::push_vacant`): the state is built
        // in its place, with no old span to drop first.
        let span = entry
            .span
            .get_or_insert_with(|| EntrySpan::Shared(SpanHandle::NonRecording(state())));
        let owns_nothing =
            matches!(span, EntrySpan::Shared(SpanHandle::NonRecording(state)) if state.owns_nothing());
        let id = if owns_nothing && pending_user_name.is_none() {
            id | LANE_BIT
        } else {
            id
        };
        entry.id = id;
        #[cfg(feature = "user-tracing")]
        {
            entry.user = pending_user_name.map_or(UserLink::None, UserLink::PendingName);
        }
        id
    })
    .map(ScopeId::new)
}

/// Ends entry `id` when it is the current entry of its stack, with nothing joined or
/// linked, and its span is unsampled and owns nothing (what [`push_root`] marks) or is
/// owned and finishes without application code (what [`open_child`] marks): `true`. The
/// caller then drops any routing a finished span left to drop (`routing::drop_deferred`),
/// the stack released. `false`, having changed nothing, in every other case, which the
/// general end handles.
#[inline(always)]
pub(crate) fn try_end_entry<P: Pipeline>(id: ScopeId<P>) -> bool {
    with_stacks_in_lane(|stacks| {
        // Another entry (or none) becomes current: the stretch ends either way.
        stacks.leave_quiet();
        if stacks.pending.get() & pending_bit::<P>() != 0 {
            return false;
        }
        let Ok(mut stack) = stacks.pipelines.get::<P>().try_borrow_mut() else {
            return false;
        };
        let end = stack.top_ends_in_lane(id.raw);
        if let LaneEnd::No = end {
            return false;
        }
        stack.pop_lane_entry(end);
        true
    })
    .unwrap_or(false)
}

/// Ends the joined child's scope `id` when it is the innermost child of the top entry and
/// the entry stays (its own scope, or another child, still holds it): `true`. `false`,
/// having changed nothing, in every other case, which the general end handles.
#[inline(always)]
pub(crate) fn try_end_child<P: Pipeline>(id: ScopeId<P>) -> bool {
    // The entry stays on top when this succeeds: a quiet stretch goes on.
    with_stacks_in_lane(|stacks| {
        if *PerPipeline::new(true, false).get::<P>() && stacks.quiet.get() {
            if stacks.quiet_children.pop(id.raw) {
                return true;
            }
            // Not the innermost quiet child: the rest is done with every child in its entry.
            if !stacks.quiet_children.is_empty() {
                stacks.leave_quiet();
            }
        }
        if stacks.pending.get() & pending_bit::<P>() != 0 {
            return false;
        }
        let Ok(mut stack) = stacks.pipelines.get::<P>().try_borrow_mut() else {
            return false;
        };
        let Some(top) = stack.depth.checked_sub(1) else {
            return false;
        };
        stack
            .entries
            .get_mut(top)
            .is_some_and(|entry| entry.joined.remove_innermost_keeping_entry(id.raw))
    })
    .unwrap_or(false)
}

/// Whether the current span of pipeline `P` is recorded: what every tag macro asks first.
/// While the fast lane's joined child is current (see [`Stacks::quiet`]) it is not, and
/// the answer needs no borrow.
#[inline]
pub(crate) fn current_is_recording<P: Pipeline>() -> bool {
    with_stacks_in_lane(|stacks| {
        if *PerPipeline::new(true, false).get::<P>() && stacks.quiet.get() {
            return false;
        }
        let Ok(mut stack) = stacks.pipelines.get::<P>().try_borrow_mut() else {
            return false;
        };
        stacks.install_polled::<P>(&mut stack);
        stack.current().is_some_and(EntrySpan::is_recording)
    })
    .unwrap_or(false)
}

/// [`current_is_recording`] and the hand-over in one borrow: runs `f` on the current span of
/// `P` if it is recorded. For what the tag macros build from literals only: `f` runs while
/// the stack is borrowed, so it must run no application code. Like the check, it returns at
/// once while the fast lane's joined child is current, and leaves the quiet flag as it is (it
/// changes no entry).
#[inline]
pub(crate) fn with_current_if_recording<P: Pipeline>(f: impl FnOnce(&mut EntrySpan)) {
    with_stacks_in_lane(|stacks| {
        if *PerPipeline::new(true, false).get::<P>() && stacks.quiet.get() {
            return;
        }
        let Ok(mut stack) = stacks.pipelines.get::<P>().try_borrow_mut() else {
            return;
        };
        stacks.install_polled::<P>(&mut stack);
        if let Some(span) = stack.top().and_then(|entry| entry.span.as_mut())
            && span.is_recording()
        {
            f(span);
        }
    });
}

#[cfg(all(test, feature = "testing"))]
#[path = "unsampled_tests.rs"]
mod tests;
