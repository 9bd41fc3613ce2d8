//! The two pipelines as types: the markers [`Internal`] and [`User`], and [`PerPipeline`],
//! one value of some type per pipeline.
//!
//! Every piece of per-pipeline state in the core (scope stacks, scope ids, scopes, the
//! installed harnesses) is selected through a `P: Pipeline` type parameter rather than a
//! runtime value. So an id of one pipeline cannot be handed to the other's stack: that is
//! a type error, not a convention. Selection compiles to a field access.
//!
//! Which pipelines are *tracked* (their recorded roots visible in the live registry) is a
//! type too: [`Tracked`], implemented by [`Internal`] only.
//!
//! This module owns the markers and the selection only; it holds no state of its own.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::num::NonZeroU64;

mod sealed {
    pub trait Sealed {}
}

/// A span pipeline: [`Internal`] or [`User`]. Sealed: there are exactly two.
///
/// Public only so that the macros' hidden support module can name it.
pub trait Pipeline: sealed::Sealed + Copy + Debug + Send + Sync + 'static {
    /// The pipeline's name, as logs and debug output print it.
    const NAME: &'static str;

    /// `true` when new roots are sampled by ratio (internal); `false` when starting a root
    /// is itself the decision to record it (user).
    const SAMPLED: bool;

    /// This pipeline's value of `pair`.
    fn of<T>(pair: &PerPipeline<T>) -> &T;

    /// This pipeline's value of `pair`, mutably.
    fn of_mut<T>(pair: &mut PerPipeline<T>) -> &mut T;
}

/// The internal pipeline: the service's own spans, sampled, for the operator's collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Internal;

/// The user pipeline: spans the service emits for its customers, routed per customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User;

impl sealed::Sealed for Internal {}
impl sealed::Sealed for User {}

impl Pipeline for Internal {
    const NAME: &'static str = "internal";
    const SAMPLED: bool = true;

    #[inline(always)]
    fn of<T>(pair: &PerPipeline<T>) -> &T {
        &pair.internal
    }

    #[inline(always)]
    fn of_mut<T>(pair: &mut PerPipeline<T>) -> &mut T {
        &mut pair.internal
    }
}

impl Pipeline for User {
    const NAME: &'static str = "user";
    const SAMPLED: bool = false;

    #[inline(always)]
    fn of<T>(pair: &PerPipeline<T>) -> &T {
        &pair.user
    }

    #[inline(always)]
    fn of_mut<T>(pair: &mut PerPipeline<T>) -> &mut T {
        &mut pair.user
    }
}

/// A pipeline whose recorded roots are *tracked*: registered in the live registry of
/// in-flight traces (`telemetry::tracing::live_traces`). Only [`Internal`] is: the
/// registry is the operator's view, and user spans belong to customers.
///
/// The tracked root constructors require this bound, so starting a tracked user root is
/// a compile error, not a convention; user roots use the untracked constructors, and
/// descendants are tracked only through a tracked root.
///
/// ```compile_fail
/// use foundations::telemetry::tracing::__private::{Tracked, User};
///
/// fn tracked<P: Tracked>() {}
/// tracked::<User>(); // error: `User` is not `Tracked`
/// ```
///
/// ```
/// use foundations::telemetry::tracing::__private::{Internal, Tracked};
///
/// fn tracked<P: Tracked>() {}
/// tracked::<Internal>();
/// ```
pub trait Tracked: Pipeline {}

impl Tracked for Internal {}

/// One value per pipeline. The pipelines share this shape, never the values.
#[derive(Clone, Debug, Default)]
pub struct PerPipeline<T> {
    pub(crate) internal: T,
    pub(crate) user: T,
}

impl<T> PerPipeline<T> {
    /// Both values.
    pub(crate) const fn new(internal: T, user: T) -> Self {
        Self { internal, user }
    }

    /// The value of pipeline `P`.
    #[inline(always)]
    pub(crate) fn get<P: Pipeline>(&self) -> &T {
        P::of(self)
    }

    /// The value of pipeline `P`, mutably.
    #[inline(always)]
    pub(crate) fn get_mut<P: Pipeline>(&mut self) -> &mut T {
        P::of_mut(self)
    }
}

/// Identifies one entry of one thread's stack of pipeline `P`: it cannot be used on the
/// other pipeline's stack.
///
/// Non-zero, so that `Option<ScopeId<P>>` (all a scope holds) is one machine word.
pub(crate) struct ScopeId<P> {
    pub(crate) raw: RawId,
    _pipeline: PhantomData<P>,
}

impl<P> ScopeId<P> {
    #[inline(always)]
    pub(crate) fn new(raw: RawId) -> Self {
        Self {
            raw,
            _pipeline: PhantomData,
        }
    }

    /// Whether this is the scope of an unsampled child joined into its parent's entry
    /// (see [`JOINED_CHILD_BIT`]).
    #[inline(always)]
    pub(crate) fn is_joined_child(self) -> bool {
        self.raw.get() & JOINED_CHILD_BIT != 0
    }

    /// Whether this scope's end tries the fast lane first (see [`LANE_BIT`]).
    #[inline(always)]
    pub(crate) fn ends_in_lane_first(self) -> bool {
        self.raw.get() & LANE_BIT != 0
    }
}

/// Set in the id of every scope whose end tries the fast lane (`unsampled`) first: a
/// joined child's, and an entry's pushed for an unsampled span that owns nothing (no
/// routing, no tracestate, no user span pending). Ids count up from 1 and would take
/// centuries to reach the bits used here, so a scope's drop tells which end it needs from
/// the id alone, with one test, and without a look at the stack. Only a hint for an entry:
/// the lane checks it again and hands anything else to the general end.
pub(crate) const LANE_BIT: u64 = 1 << 63;

/// Set, with [`LANE_BIT`], in the id of a joined child's scope, never in an entry's.
pub(crate) const JOINED_CHILD_BIT: u64 = 1 << 62;

/// Set, with [`JOINED_CHILD_BIT`], in the id of a child joined during a quiet stretch
/// (`joined::QuietChildren`): those ids count on their own, and this bit keeps them apart
/// from the stack's.
pub(crate) const QUIET_CHILD_BIT: u64 = 1 << 61;

impl<P> Clone for ScopeId<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for ScopeId<P> {}

impl<P> PartialEq for ScopeId<P> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<P> Eq for ScopeId<P> {}

impl<P: Pipeline> std::fmt::Debug for ScopeId<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScopeId<{}>({})", P::NAME, self.raw)
    }
}

/// An entry's id within its stack; typed as a [`ScopeId`] wherever it leaves the stack.
pub(crate) type RawId = NonZeroU64;
