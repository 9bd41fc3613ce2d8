//! Support for the tracing macros. Not a public API: it may change in any release.
//!
//! A macro first asks whether the current span is recorded, then evaluates its arguments
//! (application code, run outside any borrow or lock of ours), then hands the built values
//! over. Handing over borrows the thread's scope stack; a span the stack owns takes them
//! directly, a shared one under its lock, held only for the push.

use super::state::SpanState;
use super::{Pipeline, scope_stack};
use cf_rustracing::log::LogField;
use cf_rustracing::span::FinishSpanCallback;
use cf_rustracing::tag::Tag;

#[inline]
pub(crate) fn is_recording(pipeline: Pipeline) -> bool {
    scope_stack::inspect_current(pipeline, |span| {
        span.is_some_and(|span| span.is_recording())
    })
}

#[inline]
pub(crate) fn set_tags<const N: usize>(pipeline: Pipeline, tags: [Tag; N]) {
    scope_stack::with_current(pipeline, |span| span.set_tags(tags));
}

pub(crate) fn log<const N: usize>(pipeline: Pipeline, fields: [LogField; N]) {
    scope_stack::with_current(pipeline, |span| span.log(fields));
}

pub(crate) fn set_finish_callback(
    pipeline: Pipeline,
    callback: impl Into<FinishSpanCallback<SpanState>>,
) {
    // Whatever is not kept (the callback itself if no span takes it, or the callbacks it
    // replaces) is dropped here, after the stack's borrow: dropping a callback runs the
    // drop code of what it captured.
    let mut unused = None;
    let mut replaced = None;
    let mut callback = Some(callback.into());
    scope_stack::with_current(pipeline, |span| {
        if let Some(callback) = callback.take() {
            match span.set_finish_callback(callback) {
                Ok(previous) => replaced = Some(previous),
                Err(callback) => unused = Some(callback),
            }
        }
    });
    drop((callback, unused, replaced));
}

/// `true` when the current internal span is recorded.
#[inline]
pub fn internal_is_recording() -> bool {
    is_recording(Pipeline::Internal)
}

/// Sets tags on the current internal span.
#[inline]
pub fn internal_set_tags<const N: usize>(tags: [Tag; N]) {
    set_tags(Pipeline::Internal, tags);
}

/// Adds a log entry to the current internal span.
#[inline]
pub fn internal_log<const N: usize>(fields: [LogField; N]) {
    log(Pipeline::Internal, fields);
}

/// Sets the finish callback of the current internal span.
#[inline]
pub fn internal_set_finish_callback(callback: impl Into<FinishSpanCallback<SpanState>>) {
    set_finish_callback(Pipeline::Internal, callback);
}

/// `true` when the current user span is recorded.
#[inline]
pub fn user_is_recording() -> bool {
    is_recording(Pipeline::User)
}

/// Sets tags on the current user span.
#[inline]
pub fn user_set_tags<const N: usize>(tags: [Tag; N]) {
    set_tags(Pipeline::User, tags);
}

/// Adds a log entry to the current user span.
#[inline]
pub fn user_log<const N: usize>(fields: [LogField; N]) {
    log(Pipeline::User, fields);
}

/// Sets the finish callback of the current user span.
#[inline]
pub fn user_set_finish_callback(callback: impl Into<FinishSpanCallback<SpanState>>) {
    set_finish_callback(Pipeline::User, callback);
}
