//! [`Scope`]: a span made current on this thread until the scope is dropped, for either
//! pipeline.
//!
//! `SpanScope` and `UserSpanScope`, the public scopes, are thin wrappers of `Scope<Internal>`
//! and `Scope<User>`: what differs between them (the API around them) lives in the API
//! modules; how a scope ends is the same code for both, here.
//!
//! This module owns a scope's lifetime on the stack. It must not decide which span a scope
//! holds (its constructor's caller does) nor carry spans elsewhere (that is the context).

use super::pipeline::{Pipeline, ScopeId};
use super::routing;
use super::stack;
use super::unsampled;
use std::marker::PhantomData;

/// An entry on this thread's stack of pipeline `P`, ended when this is dropped.
///
/// One machine word. Not `Send`: the entry belongs to the thread whose stack holds it.
pub(crate) struct Scope<P: Pipeline> {
    id: Option<ScopeId<P>>,
    _not_send: PhantomData<*const ()>,
}

impl<P: Pipeline> Scope<P> {
    /// A scope of nothing: tracing off, or no trace to join.
    #[inline(always)]
    pub(crate) const fn inert() -> Self {
        Self {
            id: None,
            _not_send: PhantomData,
        }
    }

    /// The scope of an entry already pushed (none if the push did not happen).
    #[inline(always)]
    pub(crate) const fn of(id: Option<ScopeId<P>>) -> Self {
        Self {
            id,
            _not_send: PhantomData,
        }
    }

    /// The entry this scope ends, if any.
    #[inline(always)]
    pub(crate) fn id(&self) -> Option<ScopeId<P>> {
        self.id
    }

    /// Gives up the entry without ending it: the caller takes it over.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<ScopeId<P>> {
        self.id.take()
    }
}

impl<P: Pipeline> Drop for Scope<P> {
    // The end is out of line for both pipelines, so that dropping an inert scope (tracing
    // off, no user trace) is one compare the caller inlines: inlined, the end's register
    // saves came before the compare, and the disabled path cost twice as much (3.7 → 1.6 ns
    // per `span()` with nothing installed), for 1-3% on unsampled and recorded spans.
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(id) = self.id {
            // The commonest scopes (an unsampled child joined into its parent's entry, an
            // unsampled root's entry, a recorded child the fast lane built) have a small end
            // of their own, free of the general end's register saves; the id tells, so other
            // scopes pay one test.
            if id.ends_in_lane_first() {
                end_in_lane(id);
            } else {
                end_out_of_line(id);
            }
        }
    }
}

#[inline(never)]
fn end_in_lane<P: Pipeline>(id: ScopeId<P>) {
    if id.is_joined_child() {
        if !unsampled::try_end_child(id) {
            end_out_of_line(id);
        }
    } else if unsampled::try_end_entry(id) {
        // A span finished in place may have left its routing to drop now.
        routing::drop_deferred();
    } else {
        end_out_of_line(id);
    }
}

#[inline(never)]
fn end_out_of_line<P: Pipeline>(id: ScopeId<P>) {
    stack::end_scope(id);
}

impl<P: Pipeline> std::fmt::Debug for Scope<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("pipeline", &P::NAME)
            .field("active", &self.id.is_some())
            .finish()
    }
}
