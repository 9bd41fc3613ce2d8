//! Thread-local scope stacks: which span is current on this thread, per pipeline.
//!
//! Each pipeline has its own stack, so the internal and user pipelines can never see each
//! other's spans. Entries are removed by id, not popped: a scope dropped out of order
//! removes exactly its own entry and never re-parents later spans.
//!
//! This module owns nothing but the stacks (and, in tests, the thread's test harness): it
//! does not create spans. Values removed from a stack are dropped *after* the stack's borrow
//! is released, because dropping the last handle of a span runs its finish callback, which
//! is application code that may open spans itself.

use super::harness::Pipeline;
use super::state::SharedSpan;
use std::borrow::Cow;
use std::cell::RefCell;
use std::num::NonZeroU64;

#[cfg(feature = "testing")]
use super::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

/// Identifies one entry of one thread's stack.
///
/// Non-zero, so that `Option<ScopeId>` (all a `SpanScope` holds) is one machine word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScopeId(NonZeroU64);

struct Entry {
    id: ScopeId,
    /// `None` marks a context without a span of this pipeline: it hides spans below it.
    span: Option<SharedSpan>,
    /// The entry's link to a parallel user span (`SpanScope::with_user_span`): kept here
    /// rather than in the scope so that a scope stays one machine word.
    #[cfg(feature = "user-tracing")]
    user: UserLink,
}

/// How an internal stack entry relates to the user pipeline.
#[cfg(feature = "user-tracing")]
#[derive(Default)]
enum UserLink {
    #[default]
    None,
    /// A user trace was active when the span opened: its name, should a user span follow.
    PendingName(Cow<'static, str>),
    /// The parallel user span's entry on the user stack, ended with this entry.
    Opened(ScopeId),
}

/// What [`remove_entry`] took off a stack.
pub(crate) struct RemovedEntry {
    pub(crate) span: Option<SharedSpan>,
    /// The parallel user span's entry on the user stack, if one was opened.
    #[cfg(feature = "user-tracing")]
    pub(crate) user_scope: Option<ScopeId>,
}

pub(crate) struct ScopeStack {
    entries: Vec<Entry>,
    next_id: u64,
    /// The harness that roots started on this thread use instead of the global one.
    #[cfg(feature = "testing")]
    test_harness: Option<Arc<Harness>>,
}

impl ScopeStack {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            next_id: 0,
            #[cfg(feature = "testing")]
            test_harness: None,
        }
    }
}

thread_local! {
    static INTERNAL_STACK: RefCell<ScopeStack> = const { RefCell::new(ScopeStack::new()) };
    static USER_STACK: RefCell<ScopeStack> = const { RefCell::new(ScopeStack::new()) };
}

/// Runs `f` on this thread's stack of `pipeline`.
///
/// Returns `None` (and does not run `f`) while the thread is being torn down, or if the stack
/// is already borrowed further up this thread's call stack: tracing then degrades to a no-op
/// instead of panicking.
#[inline]
fn with_stack<R>(pipeline: Pipeline, f: impl FnOnce(&mut ScopeStack) -> R) -> Option<R> {
    let key = match pipeline {
        Pipeline::Internal => &INTERNAL_STACK,
        Pipeline::User => &USER_STACK,
    };
    key.try_with(|stack| stack.try_borrow_mut().ok().map(|mut stack| f(&mut stack)))
        .ok()
        .flatten()
}

/// Makes `span` (or "no span") current until [`remove`] is called with the returned id.
#[inline]
pub(crate) fn push(pipeline: Pipeline, span: Option<SharedSpan>) -> Option<ScopeId> {
    push_entry(pipeline, span, None)
}

/// Like [`push`], also keeping the name a later `with_user_span` needs.
#[inline]
pub(crate) fn push_entry(
    pipeline: Pipeline,
    span: Option<SharedSpan>,
    #[allow(unused)] pending_user_name: Option<Cow<'static, str>>,
) -> Option<ScopeId> {
    // If the thread is being torn down, the values are dropped here, outside any borrow.
    let mut values = Some((span, pending_user_name));
    let id = with_stack(pipeline, |stack| {
        // Starts at 1 and would take centuries to wrap; `MIN` keeps it non-zero regardless.
        stack.next_id = stack.next_id.wrapping_add(1);
        let id = ScopeId(NonZeroU64::new(stack.next_id).unwrap_or(NonZeroU64::MIN));
        #[allow(unused)]
        let (span, pending_user_name) = values.take().unwrap_or_default();
        stack.entries.push(Entry {
            id,
            span,
            #[cfg(feature = "user-tracing")]
            user: pending_user_name.map_or(UserLink::None, UserLink::PendingName),
        });
        id
    });
    drop(values);
    id
}

/// Takes the name kept by [`push_entry`] for entry `id`, if no user span was opened yet.
#[cfg(feature = "user-tracing")]
pub(crate) fn take_pending_user_name(pipeline: Pipeline, id: ScopeId) -> Option<Cow<'static, str>> {
    with_stack(pipeline, |stack| {
        let entry = stack
            .entries
            .iter_mut()
            .rev()
            .find(|entry| entry.id == id)?;
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
pub(crate) fn link_user_scope(pipeline: Pipeline, id: ScopeId, user_scope: ScopeId) {
    with_stack(pipeline, |stack| {
        if let Some(entry) = stack.entries.iter_mut().rev().find(|entry| entry.id == id) {
            entry.user = UserLink::Opened(user_scope);
        }
    });
}

/// Removes the entry `id` wherever it is in the stack, and returns its span.
#[inline]
pub(crate) fn remove(pipeline: Pipeline, id: ScopeId) -> Option<SharedSpan> {
    remove_entry(pipeline, id).and_then(|entry| entry.span)
}

/// Removes the entry `id` wherever it is in the stack, and returns what it held.
#[inline]
pub(crate) fn remove_entry(pipeline: Pipeline, id: ScopeId) -> Option<RemovedEntry> {
    with_stack(pipeline, |stack| {
        // The entry is almost always the top one; search from there.
        let index = stack.entries.iter().rposition(|entry| entry.id == id)?;
        let entry = stack.entries.remove(index);
        // A pending name drops here: a plain string, not application code.
        Some(RemovedEntry {
            span: entry.span,
            #[cfg(feature = "user-tracing")]
            user_scope: match entry.user {
                UserLink::Opened(user_scope) => Some(user_scope),
                _ => None,
            },
        })
    })
    .flatten()
}

/// The current span of `pipeline` on this thread.
#[inline]
pub(crate) fn current(pipeline: Pipeline) -> Option<SharedSpan> {
    with_stack(pipeline, |stack| stack.entries.last()?.span.clone()).flatten()
}

/// Reads the current span without cloning it. `f` must not touch the scope stacks or run
/// application code.
#[inline]
pub(crate) fn inspect_current<R>(
    pipeline: Pipeline,
    f: impl FnOnce(Option<&SharedSpan>) -> R,
) -> R {
    let mut f = Some(f);
    let result = with_stack(pipeline, |stack| {
        let current = stack.entries.last().and_then(|entry| entry.span.as_ref());
        (f.take().expect("called once"))(current)
    });
    match result {
        Some(result) => result,
        None => (f.take().expect("not called"))(None),
    }
}

/// The harness that roots started on this thread use instead of the global one.
#[cfg(feature = "testing")]
pub(crate) fn test_harness(pipeline: Pipeline) -> Option<Arc<Harness>> {
    with_stack(pipeline, |stack| stack.test_harness.clone()).flatten()
}

/// Replaces this thread's test harness, returning the previous one.
#[cfg(feature = "testing")]
pub(crate) fn swap_test_harness(
    pipeline: Pipeline,
    harness: Option<Arc<Harness>>,
) -> Option<Arc<Harness>> {
    let mut harness = Some(harness);
    let previous = with_stack(pipeline, |stack| {
        std::mem::replace(&mut stack.test_harness, harness.take().flatten())
    });
    previous.flatten()
}
