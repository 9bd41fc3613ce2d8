//! The fast lane: opening a child of the current internal span, ending a joined unsampled
//! child, and asking whether the current span is recorded, in small functions of their own.
//!
//! An unsampled child of an unsampled span is joined into its parent's entry (see the
//! `stack` and `joined` modules): a few loads and stores. Through the general paths
//! (`user_link::push_internal_child`, `stack::end_scope`, and a borrow of the stack for the
//! tag macros' check) such a child cost about 190 instructions, against about 110 here; the
//! difference went to what those paths must be ready for: register saves for building a
//! recorded child, a poll's frame to install, an active user trace, deferred drops. The
//! functions here do the common cases only, and hand anything else back before changing
//! anything; the general path then gives the same result. They are small enough that the
//! compiler keeps them free of register saves, so the general paths' cost is paid only when
//! they run.
//!
//! - [`open_child`] joins an unsampled child or builds a child of a recorded span, or
//!   hands the child to the general path; [`try_join_quietly`] joins during a quiet
//!   stretch (below) with a room check only.
//! - A joined child's scope id carries [`JOINED_CHILD_BIT`], so that only joined children's
//!   scopes try [`try_end_child`].
//! - From a join until anything else touches the stacks, [`Stacks::quiet`] says that the
//!   joined child is current: [`current_is_recording`], which every tag macro asks first,
//!   then answers without a borrow, and the next child joins with a room check.
//!
//! This module owns the rule for which children join (the general path asks it too), and
//! the quiet flag's raising; every other stack accessor lowers it. It must not end entries,
//! install frames, or touch the user stack beyond asking whether it has a current span.

#[cfg(feature = "user-tracing")]
use super::entry::UserLink;
use super::entry_span::EntrySpan;
use super::entry_span::SpanHandle;
use super::pipeline::{Internal, JOINED_CHILD_BIT, PerPipeline, Pipeline, RawId, ScopeId};
#[cfg(doc)]
use super::stack::Stacks;
use super::stack::{ScopeStack, pending_bit, with_stacks_in_lane};
use std::borrow::Cow;

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

    /// Whether the top entry has room for one more joined child.
    #[inline(always)]
    fn top_has_room(&self) -> bool {
        self.depth
            .checked_sub(1)
            .and_then(|top| self.entries.get(top))
            .is_some_and(|top| !top.joined.is_full())
    }

    /// Joins a child into the top entry, which [`child_joins_top`](Self::child_joins_top)
    /// allowed; its scope id is marked as a joined child's.
    #[inline(always)]
    fn join_top(&mut self) -> RawId {
        let id = self.next_id() | JOINED_CHILD_BIT;
        self.entries[self.depth - 1].joined.push(id);
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
/// entry's room is left to see. `None`, having changed nothing, otherwise.
#[inline(always)]
pub(crate) fn try_join_quietly() -> Option<ScopeId<Internal>> {
    with_stacks_in_lane(|stacks| {
        if !stacks.quiet.get() {
            return None;
        }
        let mut stack = stacks.pipelines.internal.try_borrow_mut().ok()?;
        stack.top_has_room().then(|| ScopeId::new(stack.join_top()))
    })
    .flatten()
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
        stacks.quiet.set(false);
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
            stacks.quiet.set(true);
            Ok(Some(ScopeId::new(stack.join_top())))
        } else {
            Ok(stack.push_child(name.into(), None).map(ScopeId::new))
        }
    }) else {
        return Ok(None);
    };
    opened
}

/// Ends the joined child's scope `id` when it is the innermost child of the top entry and
/// the entry stays (its own scope, or another child, still holds it): `true`. `false`,
/// having changed nothing, in every other case, which the general end handles.
#[inline(always)]
pub(crate) fn try_end_child<P: Pipeline>(id: ScopeId<P>) -> bool {
    // The entry stays on top when this succeeds: a quiet stretch goes on.
    with_stacks_in_lane(|stacks| {
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
