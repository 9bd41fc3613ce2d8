//! Questions about what is current on this thread, answered from the scope stacks: the
//! identity of the current span, whether a user trace is active, and which harness serves a
//! new root here.
//!
//! It also keeps, per thread, the harness of the test context entered there (feature
//! `testing`). This module does not push or end entries: that is the stack's.

use super::harness::{self, HarnessRef};
use super::identity::SpanState;
use super::pipeline::Pipeline;
use super::stack;

#[cfg(feature = "testing")]
use super::harness::Harness;
#[cfg(feature = "user-tracing")]
use super::pipeline::User;
#[cfg(any(feature = "testing", feature = "user-tracing"))]
use super::stack::with_stack;
#[cfg(feature = "testing")]
use std::sync::Arc;
#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicBool, Ordering};

/// Reads the identity of the current span of pipeline `P`, if there is one.
#[inline]
pub(crate) fn current_state<P: Pipeline, R>(f: impl FnOnce(&SpanState) -> R) -> Option<R> {
    stack::current_state::<P, _>(f)
}

/// `true` while a user span is current on this thread (a user trace is active).
#[inline]
pub(crate) fn user_trace_active() -> bool {
    // `has_current`, not the current span: a frame's span need not become an entry to
    // tell.
    #[cfg(feature = "user-tracing")]
    return with_stack::<User, _>(|stack| stack.has_current()).unwrap_or(false);
    #[cfg(not(feature = "user-tracing"))]
    false
}

/// `true` while nothing in this process can have recorded a span: no harness installed for
/// either pipeline, and no test harness made. Then no span is current anywhere, and every
/// span call can return at once: one load, no thread-local access.
#[inline(always)]
pub(crate) fn nothing_installed() -> bool {
    !harness::anything_installed()
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

/// The harness that roots started on this thread use instead of the global one.
#[cfg(feature = "testing")]
#[inline]
pub(crate) fn test_harness<P: Pipeline>() -> Option<Arc<Harness>> {
    if !TEST_HARNESSES_EXIST.load(Ordering::Relaxed) {
        return None;
    }
    with_stack::<P, _>(|stack| stack.test_harness.clone()).flatten()
}

/// Set once the process makes its first test harness. Until then no thread has one, so the
/// checks for it cost one load: a service built with the `testing` feature (say, through
/// cargo's feature unification) pays next to nothing for it.
#[cfg(feature = "testing")]
static TEST_HARNESSES_EXIST: AtomicBool = AtomicBool::new(false);

/// Records that a test harness exists from now on (see [`test_harness`]).
#[cfg(feature = "testing")]
pub(crate) fn note_test_harness() {
    TEST_HARNESSES_EXIST.store(true, Ordering::Relaxed);
    harness::note_installed();
}

/// Replaces this thread's test harness, returning the previous one.
#[cfg(feature = "testing")]
#[inline]
pub(crate) fn swap_test_harness<P: Pipeline>(
    harness: Option<Arc<Harness>>,
) -> Option<Arc<Harness>> {
    if harness.is_none() && !TEST_HARNESSES_EXIST.load(Ordering::Relaxed) {
        return None;
    }
    let mut harness = Some(harness);
    let previous = with_stack::<P, _>(|stack| {
        std::mem::replace(&mut stack.test_harness, harness.take().flatten())
    });
    previous.flatten()
}
