//! [`JoinedChildren`]: the unsampled children folded into a scope stack entry, each with the
//! id of its scope and its own span id.
//!
//! An unsampled span records nothing, so a child of an unsampled span needs no entry of
//! its own: everything but its span id is its parent's. The stack *joins* it into the
//! parent's entry, which keeps just that span id here, inline (no allocation), innermost
//! last. The id is drawn when it is first read (most unsampled spans are never asked for
//! theirs), and kept from then on, so a span reports the same id all its life. This module
//! owns that small list, and [`QuietChildren`], the same children held outside the
//! stack for a while; which entry a child joins, and what is current, is the stack's.

use super::pipeline::{JOINED_CHILD_BIT, LANE_BIT, QUIET_CHILD_BIT, RawId};
use crate::telemetry::propagation::ids::SpanId;
use std::cell::Cell;
use std::num::NonZeroU64;

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

    /// How many more children fit.
    #[inline]
    pub(crate) fn room(&self) -> usize {
        MAX_JOINED.saturating_sub(usize::from(self.len))
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

/// Children joined during a quiet stretch (see the `unsampled` module), kept beside the
/// stacks rather than in their entry's [`JoinedChildren`]: opening and ending one then
/// takes no borrow of the stack, only these cells. They belong to the top internal entry,
/// and move into its list (`settle`) the moment anything but the fast lane touches the
/// stacks; until then nothing else can see them, so nothing needs to.
pub(crate) struct QuietChildren {
    len: Cell<u8>,
    /// How many the entry has room for: its free joined slots when the stretch began.
    room: Cell<u8>,
    /// The last id handed out: quiet ids count on their own (see [`QUIET_CHILD_BIT`]).
    last_id: Cell<u64>,
    ids: [Cell<u64>; MAX_JOINED],
}

/// The bits every quiet child's id carries: a joined child's, and a quiet one's.
const QUIET_ID: NonZeroU64 =
    NonZeroU64::new(LANE_BIT | JOINED_CHILD_BIT | QUIET_CHILD_BIT).unwrap();

impl QuietChildren {
    pub(crate) const fn new() -> Self {
        Self {
            len: Cell::new(0),
            room: Cell::new(0),
            last_id: Cell::new(0),
            ids: [const { Cell::new(0) }; MAX_JOINED],
        }
    }

    /// Begins a stretch over an entry with `room` free joined slots; none is held yet.
    #[inline(always)]
    pub(crate) fn begin(&self, room: usize) {
        self.len.set(0);
        // `room` never exceeds `MAX_JOINED`.
        self.room.set(room.min(MAX_JOINED) as u8);
    }

    /// Whether none is held.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Joins one more child, innermost, if the entry has room for it; its scope id.
    #[inline(always)]
    pub(crate) fn push(&self) -> Option<RawId> {
        let len = self.len.get();
        if len >= self.room.get() {
            return None;
        }
        let slot = self.ids.get(usize::from(len))?;
        let number = self.last_id.get().wrapping_add(1) & !QUIET_ID.get();
        self.last_id.set(number);
        let id = QUIET_ID | number;
        slot.set(id.get());
        self.len.set(len + 1);
        Some(id)
    }

    /// Ends the innermost child if its scope is `id`: `true` when it did.
    #[inline(always)]
    pub(crate) fn pop(&self, id: RawId) -> bool {
        let len = self.len.get();
        let Some(last) = usize::from(len).checked_sub(1) else {
            return false;
        };
        if self.ids.get(last).map(Cell::get) != Some(id.get()) {
            return false;
        }
        self.len.set(len - 1);
        true
    }

    /// Hands every child held over to `list`, outermost first, and holds none after.
    pub(crate) fn settle(&self, list: &mut JoinedChildren) {
        let len = usize::from(self.len.replace(0));
        for id in self.ids.iter().take(len) {
            if list.is_full() {
                // Cannot happen (the room was the list's); dropping the child's scope later
                // then finds nothing to end, which is harmless.
                debug_assert!(false, "quiet children beyond their entry's room");
                break;
            }
            if let Some(id) = NonZeroU64::new(id.get()) {
                list.push(id);
            }
        }
    }
}
