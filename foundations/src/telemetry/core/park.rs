//! Parking: the entries a suspended future left on this thread's stack, kept with the
//! future until its next poll.
//!
//! A future that holds a scope across an `.await` (allowed for `!Send` futures: a
//! `LocalSet`, `spawn_local`, `join!` under `block_on`) leaves that scope's entry on the
//! thread's stack when it returns `Pending`. Left there, it would be current while *other*
//! futures are polled on the thread: their spans would parent to another request, and a
//! user span would inherit another customer's routing. So an instrumented future
//! ([`TelemetryContext::apply`](crate::telemetry::TelemetryContext::apply)) ends each poll
//! by taking its context's entry, and everything its code left above it, off the stack
//! ([`end_or_park`]); its next poll puts them back, ids unchanged ([`restore`]), so the
//! scopes it holds find their entries again. Every poll leaves the stack as it found it.
//!
//! The common poll leaves nothing behind and costs a comparison. This module owns the
//! moves; which entries exist is the stack's business.

use super::entry::Entry;
use super::pipeline::{Pipeline, ScopeId};
use super::stack::with_stack;

/// Entries of one pipeline's stack parked by a suspended future, bottom first. Dropping it
/// (the future was dropped while suspended) finishes their spans.
#[derive(Default)]
pub(crate) struct Parked {
    entries: Vec<Entry>,
}

impl Parked {
    /// `true` when a previous poll parked entries.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Puts the entries of `parked` back on top of this thread's stack of pipeline `P`, ids
/// unchanged, and returns the id of the first (the context's own entry). `None`, changing
/// nothing, when nothing is parked.
#[inline]
pub(crate) fn restore<P: Pipeline>(parked: &mut Parked) -> Option<ScopeId<P>> {
    if parked.is_empty() {
        return None;
    }
    restore_entries(parked)
}

#[cold]
#[inline(never)]
fn restore_entries<P: Pipeline>(parked: &mut Parked) -> Option<ScopeId<P>> {
    let first = parked.entries.first().map(|entry| entry.id)?;
    let entries = std::mem::take(&mut parked.entries);
    let restored = with_stack::<P, _>(|stack| {
        // Inserted below the vacant entries, which stay for reuse.
        let at = stack.depth;
        let count = entries.len();
        stack.entries.splice(at..at, entries);
        stack.depth += count;
    });
    // The stack is gone (thread teardown) or busy: the entries dropped with the closure.
    restored.map(|()| ScopeId::new(first))
}

/// Ends the context entry `id` at the end of a poll: as a scope's drop does when nothing
/// was left above it and no scope of the future still shares it; else moves it and every
/// entry above it into `parked`, finishing nothing.
#[inline]
pub(crate) fn end_or_park<P: Pipeline>(id: ScopeId<P>, parked: &mut Parked) {
    let left_behind = with_stack::<P, _>(|stack| {
        stack
            .find(id.raw)
            .is_some_and(|index| index + 1 < stack.depth || !stack.entries[index].joined.is_empty())
    });
    if left_behind == Some(true) {
        park(id, parked);
    } else {
        super::stack::end_scope(id);
    }
}

#[cold]
#[inline(never)]
fn park<P: Pipeline>(id: ScopeId<P>, parked: &mut Parked) {
    with_stack::<P, _>(|stack| {
        if let Some(index) = stack.find(id.raw) {
            let depth = stack.depth;
            parked.entries.extend(stack.entries.drain(index..depth));
            stack.depth = index;
        }
    });
}
