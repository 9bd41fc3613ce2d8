//! Support for the tracing macros (`add_span_tags!`, `add_user_span_tags!`, ...). Not a
//! public API: it may change in any release.
//!
//! A macro first asks whether the current span of its pipeline is recorded, then evaluates
//! its arguments (application code, run outside any borrow or lock of ours), then hands the
//! built values over. Handing over borrows the thread's scope stack; a span the stack owns
//! takes them directly, a shared one under its lock, held only for the push. A tag made of
//! literals only runs no application code when it is built: it is checked and handed over in
//! one borrow ([`MacroTarget::set_literal_tag`]).

use crate::telemetry::core::current;
use crate::telemetry::core::identity::SpanState;
use crate::telemetry::core::links::SpanLink;
use crate::telemetry::core::stack;
use crate::telemetry::core::status::{self, SpanKind, SpanStatus};
use crate::telemetry::core::unsampled;
use cf_rustracing::log::LogField;
use cf_rustracing::span::FinishSpanCallback;
use cf_rustracing::tag::Tag;
use std::marker::PhantomData;

pub use crate::telemetry::core::pipeline::{Internal, PerPipeline, Pipeline, Tracked, User};
pub use crate::telemetry::core::tags::MacroTag;

/// The pipeline a macro writes to: [`INTERNAL`] or [`USER`].
#[derive(Clone, Copy, Debug)]
pub struct MacroTarget<P>(PhantomData<P>);

/// The internal pipeline, for `add_span_tags!` and friends.
pub const INTERNAL: MacroTarget<Internal> = MacroTarget(PhantomData);

/// The user pipeline, for `add_user_span_tags!` and friends.
pub const USER: MacroTarget<User> = MacroTarget(PhantomData);

impl<P: Pipeline> MacroTarget<P> {
    /// `true` when the current span of this pipeline is recorded.
    #[inline]
    pub fn is_recording(self) -> bool {
        // Tracing off: no span can be current, and one load says so.
        !current::nothing_installed() && unsampled::current_is_recording::<P>()
    }

    /// Sets tags on the current span.
    #[inline]
    pub fn set_tags<const N: usize>(self, tags: [Tag; N]) {
        stack::with_current::<P>(|span| span.set_tags(tags));
    }

    /// Sets one tag on the current span, as the tag macros build it.
    #[inline]
    pub fn set_macro_tag(self, tag: MacroTag) {
        stack::with_current::<P>(|span| span.set_tag(tag));
    }

    /// Sets the tag `tag` builds from literals on the current span, if it is recorded: the
    /// check and the hand-over in one borrow of the stack, since building the tag runs no
    /// application code. Built only once the span is known to be recorded.
    #[inline]
    pub fn set_literal_tag(self, tag: impl FnOnce() -> MacroTag) {
        // Tracing off: no span can be current, and one load says so.
        if current::nothing_installed() {
            return;
        }
        unsampled::with_current_if_recording::<P>(|span| span.set_tag(tag()));
    }

    /// Sets tags on the current span, as the tag macros build them.
    #[inline]
    pub fn set_macro_tags<const N: usize>(self, tags: [MacroTag; N]) {
        stack::with_current::<P>(|span| span.set_tags(tags));
    }

    /// Adds a log entry to the current span.
    #[inline]
    pub fn log<const N: usize>(self, fields: [LogField; N]) {
        stack::with_current::<P>(|span| span.log(fields));
    }

    /// Adds a link to the current span, if it is recorded. Dropping a link's values runs no
    /// application code (plain strings, ids and tags).
    pub fn add_link(self, link: SpanLink) {
        stack::with_current::<P>(|span| span.add_link(link));
    }

    /// Sets the kind of the current span, if it is recorded.
    #[inline]
    pub fn set_kind(self, kind: SpanKind) {
        if self.is_recording() {
            self.set_tags([kind.tag()]);
        }
    }

    /// Sets the status of the current span, if it is recorded.
    #[inline]
    pub fn set_status(self, status: SpanStatus) {
        if self.is_recording() {
            self.set_tags(status.into_tags());
        }
    }

    /// Records `error` on the current span, if it is recorded: an `exception` event with
    /// `exception.type` (the error's type name) and `exception.message` (its message and
    /// its sources', joined with `": "`, bounded), and status Error with that message.
    pub fn record_error<E: std::error::Error + ?Sized>(self, error: &E) {
        if !self.is_recording() {
            return;
        }
        // The errors' `Display` is application code: run before any borrow of ours.
        let message = status::error_chain_message(&error);
        self.log([
            LogField::new("event", "exception"),
            LogField::new("exception.type", std::any::type_name::<E>()),
            LogField::new("exception.message", message.clone()),
        ]);
        self.set_tags(SpanStatus::error(message).into_tags());
    }

    /// Sets the finish callback of the current span.
    pub fn set_finish_callback(self, callback: impl Into<FinishSpanCallback<SpanState>>) {
        // Whatever is not kept (the callback itself if no span takes it, or the callbacks it
        // replaces) is dropped here, after the stack's borrow: dropping a callback runs the
        // drop code of what it captured.
        let mut unused = None;
        let mut replaced = None;
        let mut callback = Some(callback.into());
        stack::with_current::<P>(|span| {
            if let Some(callback) = callback.take() {
                match span.set_finish_callback(callback) {
                    Ok(previous) => replaced = Some(previous),
                    Err(callback) => unused = Some(callback),
                }
            }
        });
        drop((callback, unused, replaced));
    }
}
