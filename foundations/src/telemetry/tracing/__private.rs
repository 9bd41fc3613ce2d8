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

/// The pipeline a macro writes to: [`INTERNAL`] or [`USER`].
#[derive(Clone, Copy, Debug)]
pub struct MacroTarget(Pipeline);

/// The internal pipeline, for `add_span_tags!` and friends.
pub const INTERNAL: MacroTarget = MacroTarget(Pipeline::Internal);

/// The user pipeline, for `add_user_span_tags!` and friends.
pub const USER: MacroTarget = MacroTarget(Pipeline::User);

impl MacroTarget {
    /// `true` when the current span of this pipeline is recorded.
    #[inline]
    pub fn is_recording(self) -> bool {
        is_recording(self.0)
    }

    /// Sets tags on the current span.
    #[inline]
    pub fn set_tags<const N: usize>(self, tags: [Tag; N]) {
        set_tags(self.0, tags);
    }

    /// Adds a log entry to the current span.
    #[inline]
    pub fn log<const N: usize>(self, fields: [LogField; N]) {
        log(self.0, fields);
    }

    /// Sets the finish callback of the current span.
    #[inline]
    pub fn set_finish_callback(self, callback: impl Into<FinishSpanCallback<SpanState>>) {
        set_finish_callback(self.0, callback);
    }
}
