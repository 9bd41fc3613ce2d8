//! The internal stack's side of parallel user spans: opening an internal child while
//! noting whether a user trace is active (one visit to both stacks), the name kept for a
//! later `with_user_span`, and the link to the user entry it opened.
//!
//! This module owns those links' lifecycle on the internal stack; the entries and the
//! stacks are the `stack` module's, and it never opens a user span itself.

#[cfg(feature = "user-tracing")]
use super::entry::UserLink;
#[cfg(feature = "user-tracing")]
use super::pipeline::User;
use super::pipeline::{Internal, ScopeId};
#[cfg(feature = "user-tracing")]
use super::stack::with_stack;
use super::stack::with_stacks;
use std::borrow::Cow;

/// What [`push_internal_child`] did.
pub(crate) enum InternalChild {
    /// The child is open and current.
    Opened(ScopeId<Internal>),
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
    with_stacks(|stacks| {
        #[cfg(feature = "user-tracing")]
        let user_trace_active = stacks
            .pipelines
            .user
            .try_borrow()
            .is_ok_and(|user| user.has_current());
        #[cfg(not(feature = "user-tracing"))]
        let user_trace_active = false;
        let no_current = InternalChild::NoCurrentSpan { user_trace_active };
        let Ok(mut stack) = stacks.pipelines.internal.try_borrow_mut() else {
            return no_current;
        };
        if !stack.has_current() {
            return no_current;
        }
        // The common unsampled child is joined right here; the out-of-line path builds.
        if !user_trace_active {
            if let Some(id) = stack.try_join_unsampled_child() {
                return InternalChild::Opened(ScopeId::new(id));
            }
        }
        let Some(name) = name.take() else {
            return no_current;
        };
        // Cloning keeps a borrowed name borrowed: no allocation.
        let pending_user_name = user_trace_active.then(|| name.clone());
        match stack.push_child(name, pending_user_name) {
            Some(id) => InternalChild::Opened(ScopeId::new(id)),
            None => no_current,
        }
    })
    .unwrap_or(InternalChild::NoCurrentSpan {
        user_trace_active: false,
    })
}

/// Takes the name kept by [`push`] for entry `id`, if no user span was opened yet.
#[cfg(feature = "user-tracing")]
pub(crate) fn take_pending_user_name(id: ScopeId<Internal>) -> Option<Cow<'static, str>> {
    with_stack::<Internal, _>(|stack| {
        let index = stack.find(id.raw)?;
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
pub(crate) fn link_user_scope(id: ScopeId<Internal>, user_scope: ScopeId<User>) {
    with_stack::<Internal, _>(|stack| {
        if let Some(index) = stack.find(id.raw) {
            stack.entries[index].user = UserLink::Opened(user_scope);
        }
    });
}
