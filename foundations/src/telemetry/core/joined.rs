//! [`JoinedChildren`]: the unsampled children folded into a scope stack entry, each with the
//! id of its scope and its own span id.
//!
//! An unsampled span records nothing, so a child of an unsampled span needs no entry of
//! its own: everything but its span id is its parent's. The stack *joins* it into the
//! parent's entry, which keeps just that span id here, inline (no allocation), innermost
//! last. The id is drawn when it is first read (most unsampled spans are never asked for
//! theirs), and kept from then on, so a span reports the same id all its life. This module
//! owns that small list only; which entry a child joins, and what is current, is the
//! stack's.

use super::pipeline::RawId;
use crate::telemetry::propagation::ids::SpanId;

/// How many unsampled children one entry holds inline; a deeper unsampled child takes an
/// entry of its own, as a recorded one does.
pub(crate) const MAX_JOINED: usize = 6;

/// The unsampled children joined into one entry, innermost (current) last.
pub(crate) struct JoinedChildren {
    len: u8,
    /// `true` once the scope that pushed the entry ended while children were still joined:
    /// the entry then goes with the last of them.
    owner_ended: bool,
    children: [(RawId, SpanId); MAX_JOINED],
}

impl JoinedChildren {
    pub(crate) const fn new() -> Self {
        Self {
            len: 0,
            owner_ended: false,
            children: [(RawId::MIN, SpanId::INVALID); MAX_JOINED],
        }
    }

    /// `true` when no child is joined.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        usize::from(self.len) == MAX_JOINED
    }

    /// Joins a child whose scope is `id`; the caller checked [`is_full`](Self::is_full).
    /// Its span id is drawn when first read.
    #[inline]
    pub(crate) fn push(&mut self, id: RawId) {
        self.children[usize::from(self.len)] = (id, SpanId::INVALID);
        self.len += 1;
    }

    /// The span id of the innermost (current) joined child, drawn now if it was never read.
    #[inline]
    pub(crate) fn current(&mut self) -> Option<SpanId> {
        let last = usize::from(self.len).checked_sub(1)?;
        Some(Self::span_id(&mut self.children[last].1))
    }

    /// A child's span id, drawn on first read.
    #[inline]
    fn span_id(slot: &mut SpanId) -> SpanId {
        if *slot == SpanId::INVALID {
            *slot = SpanId::random();
        }
        *slot
    }

    /// Position of the child whose scope is `id`.
    #[inline]
    pub(crate) fn position(&self, id: RawId) -> Option<usize> {
        self.live().iter().rposition(|&(child, _)| child == id)
    }

    /// Removes the child at `index` (see [`position`](Self::position)) and returns its span
    /// id. Returns `true` with it when the entry has no scope left: its owner ended and this
    /// was the last child.
    #[inline]
    pub(crate) fn remove(&mut self, index: usize) -> (SpanId, bool) {
        let len = usize::from(self.len);
        let span_id = Self::span_id(&mut self.children[index].1);
        if index + 1 < len {
            self.remove_inner(index, len);
        }
        self.len -= 1;
        (span_id, self.entry_done())
    }

    /// `true` when the entry has no scope left (its owner ended, and no child is joined);
    /// the list is then reset for the entry's next use, so a vacant entry's list is clear.
    #[inline(always)]
    fn entry_done(&mut self) -> bool {
        let done = self.len == 0 && self.owner_ended;
        if done {
            self.owner_ended = false;
        }
        done
    }

    /// Records that the owner's scope ended. Returns `false` (and records nothing) when no
    /// child is joined: the entry can go now.
    #[inline]
    pub(crate) fn owner_leaves(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        self.owner_ended = true;
        true
    }

    /// Out of order: the children after `index` move down one. Out of line, so that the
    /// common in-order end stays a few instructions.
    #[cold]
    #[inline(never)]
    fn remove_inner(&mut self, index: usize, len: usize) {
        self.children.copy_within(index + 1..len, index);
    }

    /// Ends the innermost child if its scope is `id`: the common, in-order end. Returns
    /// `Some(entry_done)` (see [`remove`](Self::remove)) when it did.
    #[inline(always)]
    pub(crate) fn remove_innermost(&mut self, id: RawId) -> Option<bool> {
        let last = usize::from(self.len).checked_sub(1)?;
        if self.children[last].0 != id {
            return None;
        }
        self.len -= 1;
        Some(self.entry_done())
    }

    /// As [`remove_innermost`](Self::remove_innermost), only when the entry stays (its
    /// owner's scope has not ended, or another child is still joined): `true` when it
    /// removed the child, else nothing changed. The fast lane's end (`unsampled`).
    #[inline(always)]
    pub(crate) fn remove_innermost_keeping_entry(&mut self, id: RawId) -> bool {
        let Some(last) = usize::from(self.len).checked_sub(1) else {
            return false;
        };
        let is_innermost = self
            .children
            .get(last)
            .is_some_and(|&(child, _)| child == id);
        if !is_innermost || (last == 0 && self.owner_ended) {
            return false;
        }
        self.len -= 1;
        true
    }

    #[inline(always)]
    fn live(&self) -> &[(RawId, SpanId)] {
        // `len` never exceeds the array's length.
        &self.children[..usize::from(self.len).min(MAX_JOINED)]
    }
}
