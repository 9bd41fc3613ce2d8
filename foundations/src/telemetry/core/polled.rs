//! What a context being polled is made of, as the scope stacks see it: [`Polled`], the
//! poll's record that its own call frame keeps; [`Frame`], what a stack keeps of the
//! innermost installed frame; and [`Outer`], what installing one replaced.
//!
//! This module owns these types only. Installing and leaving frames is the `frame`
//! module's; the stacks are the `stack` module's.

use super::entry_span::SpanHandle;
use super::pipeline::{PerPipeline, RawId};
use std::cell::Cell;
use std::ptr::NonNull;

#[cfg(feature = "testing")]
use super::harness::Harness;
#[cfg(feature = "testing")]
use std::sync::Arc;

/// The innermost frame installed on a stack (see the `frame` module, which installs and
/// leaves frames): its floor is kept beside it, inline in the stack, because every access to
/// the current span reads it.
#[derive(Clone, Copy)]
pub(crate) struct Frame {
    /// The context's span, pointed to for the poll (read it with `frame_span`); `None` when
    /// the context has none of this pipeline (then no span is current at the floor).
    pub(super) span: Option<NonNull<SpanHandle>>,
    /// The entry the frame's span was materialized into, if it was.
    pub(super) materialized: Option<RawId>,
}

/// A context being polled on this thread: what its frame on each stack is made of, and what
/// installing that frame replaced there (see the `frame` module). It lives in the poll's own
/// call frame, which registers it in the stacks' `polled` for the poll.
pub(crate) struct Polled<'a> {
    pub(super) spans: &'a PerPipeline<Option<SpanHandle>>,
    #[cfg(feature = "testing")]
    pub(super) test_harnesses: &'a PerPipeline<Option<Arc<Harness>>>,
    /// The poll this one is nested in, put back in the stacks' `polled` when it ends.
    pub(super) outer: Cell<Option<PolledRef>>,
    /// The stacks' `pending` bits when this poll began, put back when it ends.
    pub(super) outer_pending: Cell<u8>,
    /// Per stack, what installing this poll's frame there replaced, if it was installed.
    pub(super) replaced: PerPipeline<Cell<Option<Outer>>>,
}

/// A registered [`Polled`], lifetime erased: valid while it is registered (see `frame`).
pub(crate) type PolledRef = NonNull<Polled<'static>>;

/// What installing a poll's frame on a stack replaced: the floor and frame of the frame it
/// is nested in (none outside any), which poll that was, and where the stack's log of
/// removals below the floor stood, so that the floor kept here is lowered by the removals
/// made meanwhile.
pub(crate) struct Outer {
    pub(super) floor: usize,
    pub(super) frame: Frame,
    pub(super) installed: Option<PolledRef>,
    pub(super) lowered: usize,
    /// The thread's test harness, which the context's replaces for the poll.
    #[cfg(feature = "testing")]
    pub(super) test_harness: Option<Arc<Harness>>,
}
