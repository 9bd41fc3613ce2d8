//! [`Entry`]: one entry of a scope stack (a span, the unsampled children joined into it,
//! and its link to a parallel user span), and [`RemovedEntry`], what leaves a stack with a
//! scope that becomes a context.
//!
//! This module owns what an entry holds and how a scope of it leaves; where entries are and
//! which one is current is the stack's (see the `stack` module).

use super::entry_span::EntrySpan;
use super::entry_span::SpanHandle;
use super::joined::JoinedChildren;
use super::pipeline::{RawId, ScopeId, User};
#[cfg(feature = "user-tracing")]
use std::borrow::Cow;
use std::num::NonZeroU64;

/// One entry of a stack: live below the stack's depth, vacant above it.
pub(crate) struct Entry {
    pub(super) id: RawId,
    /// `None` marks a context without a span of this pipeline: it hides spans below it.
    pub(super) span: Option<EntrySpan>,
    /// Unsampled children joined into this entry (see the module docs).
    pub(super) joined: JoinedChildren,
    /// Set when a handle to the entry's span is held elsewhere for at least as long as the
    /// entry lives (the context of `scope_and`, a bridged `tracing` span's registry data):
    /// ending the entry then drops a reference, never the span, so it runs no application
    /// code and may happen in place.
    pub(super) outlived: bool,
    /// The entry's link to a parallel user span (`SpanScope::with_user_span`): kept here
    /// rather than in the scope so that a scope stays one machine word.
    #[cfg(feature = "user-tracing")]
    pub(super) user: UserLink,
}

/// How an internal stack entry relates to the user pipeline.
#[cfg(feature = "user-tracing")]
#[derive(Default)]
pub(crate) enum UserLink {
    #[default]
    None,
    /// A user trace was active when the span opened: its name, should a user span follow.
    PendingName(Cow<'static, str>),
    /// The parallel user span's entry on the user stack, ended with this entry.
    Opened(ScopeId<User>),
}

/// What the stack's `remove_entry` took off a stack.
pub(crate) struct RemovedEntry {
    pub(crate) span: Option<EntrySpan>,
    /// The parallel user span's entry on the user stack, if one was opened.
    #[cfg(feature = "user-tracing")]
    pub(crate) user_scope: Option<ScopeId<User>>,
}

impl Entry {
    pub(super) const fn vacant() -> Self {
        Self {
            id: NonZeroU64::MIN,
            span: None,
            joined: JoinedChildren::new(),
            outlived: false,
            #[cfg(feature = "user-tracing")]
            user: UserLink::None,
        }
    }

    /// Ends a scope of this entry as far as its joined children are concerned: a joined
    /// child (at `joined`) leaves, or the owner leaves while children are joined. `true`
    /// when the entry stays; `false` when the caller ends the entry itself (its owner ended
    /// with no child joined, or its last child ended after its owner).
    #[inline]
    pub(super) fn joined_scope_ends(&mut self, joined: Option<usize>) -> bool {
        match joined {
            Some(position) => !self.joined.remove(position).1,
            None => self.joined.owner_leaves(),
        }
    }

    /// The user entry linked to this one, unlinking it. A pending name drops here: a plain
    /// string, not application code.
    #[inline]
    pub(super) fn take_user_scope(&mut self) -> Option<ScopeId<User>> {
        #[cfg(feature = "user-tracing")]
        if let UserLink::Opened(user_scope) = std::mem::take(&mut self.user) {
            return Some(user_scope);
        }
        None
    }

    /// A scope of this entry leaves as a context (the stack's `remove_entry`), as far as
    /// joined children are concerned: a joined child (at `joined`) with its own identity,
    /// or the owner with a copy of its span while children are joined. Returns that span,
    /// and `true` with it when the entry has no scope left and must be vacated (its span is
    /// already dropped); `None` when the owner leaves with no child joined: the caller
    /// removes the entry.
    pub(super) fn leave_as_context(
        &mut self,
        joined: Option<usize>,
    ) -> Option<(Option<EntrySpan>, bool)> {
        if let Some(position) = joined {
            // A joined child is unsampled: its identity is all it takes along.
            let (span_id, entry_done) = self.joined.remove(position);
            let span = self.span.as_ref().map(|span| {
                EntrySpan::Shared(SpanHandle::NonRecording(span.state().with_span_id(span_id)))
            });
            if entry_done {
                // Children join only unsampled spans without routing: dropping one here
                // runs no application code.
                self.span = None;
            }
            return Some((span, entry_done));
        }
        if self.joined.owner_leaves() {
            // The entry stays for its joined children; the owner leaves with a copy of its
            // unsampled (so identity-only, always shared) span. It has no user link.
            let span = match &self.span {
                Some(EntrySpan::Shared(span)) => Some(EntrySpan::Shared(span.clone())),
                _ => None,
            };
            return Some((span, false));
        }
        None
    }
}
