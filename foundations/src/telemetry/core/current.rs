//! Questions about what is current on this thread, answered from the scope stacks: the
//! identity of the current span, whether a user trace is active, and which harness serves a
//! new root here.
//!
//! This module only reads; pushing and ending entries is the stack's.

use super::harness::{self, HarnessRef};
use super::identity::SpanState;
use super::pipeline::Pipeline;
use super::stack;
#[cfg(feature = "user-tracing")]
use super::stack::inspect_current;

#[cfg(feature = "user-tracing")]
use super::pipeline::User;
#[cfg(feature = "testing")]
use super::stack::test_harness;

/// Reads the identity of the current span of pipeline `P`, if there is one.
#[inline]
pub(crate) fn current_state<P: Pipeline, R>(f: impl FnOnce(&SpanState) -> R) -> Option<R> {
    stack::current_state::<P, _>(f)
}

/// `true` while a user span is current on this thread (a user trace is active).
#[inline]
pub(crate) fn user_trace_active() -> bool {
    #[cfg(feature = "user-tracing")]
    return inspect_current::<User, _>(|span| span.is_some());
    #[cfg(not(feature = "user-tracing"))]
    false
}

/// The harness that serves roots of pipeline `P` on this thread: the thread's test harness
/// if a test context is entered, else the installed one. `None` when neither exists: the
/// check is a thread-local read and an atomic load.
#[inline]
pub(crate) fn root_harness<P: Pipeline>() -> Option<HarnessRef> {
    #[cfg(feature = "testing")]
    if let Some(harness) = test_harness::<P>() {
        return Some(HarnessRef::Owned(harness));
    }
    harness::global::<P>().map(HarnessRef::Global)
}
