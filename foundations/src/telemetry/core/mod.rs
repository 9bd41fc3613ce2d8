//! The engine both pipelines share: how a span is recorded, which span is current, and how
//! finished spans leave the thread. Generic over the pipeline ([`pipeline::Internal`],
//! [`pipeline::User`]) wherever state is per pipeline, so the two cannot be mixed up.
//!
//! The data flow, one way:
//!
//! ```text
//! harness ──plan_root──▶ identity ──▶ span (LiveSpan → EntrySpan → SpanHandle)
//!                                        │ held by a stack entry; a scope ends it
//!                                        ▼
//!                       finished (FinishedSpan) ──▶ queue ──▶ SpanDrain (export)
//! ```
//!
//! - [`pipeline`]: the pipeline markers, typed scope ids, per-pipeline selection.
//! - [`identity`]: `SpanState` (ids, flags, tracestate, routing) and `ParentSpan`;
//!   [`routing`]: a user trace's routing, encoded once when the trace starts.
//! - [`clock`]: span timestamps, from the CPU's time-stamp counter; [`names`]: span names
//!   as small indices.
//! - [`span`]: a span while open: owned by its stack entry, or shared behind an `Arc`;
//!   [`entry_span`]: which of the two a stack entry holds, and the constructors into it.
//! - [`finished`]: `FinishedSpan`, the record a finished span becomes, and the hand-over of
//!   what a `cf_rustracing` span cannot carry.
//! - [`queue`]: the bounded hand-over to a consumer (`SpanDrain`), with its counters;
//!   [`rings`]: the per-thread rings it tries first.
//! - [`links`]: span links and their bound.
//! - [`limits`]: span limits (attributes, events, links, value length), the bounded
//!   recording of tags, and the spare boxes of tags that consumers give back;
//!   [`tags`]: the one tag a span keeps inline, and the interned tag names that allow it.
//! - [`status`]: a span's kind and status as typed values, and their tags.
//! - [`harness`]: per pipeline, the sampling decision for roots and where records go;
//!   [`rate_limit`]: the token bucket a harness asks before it records a root.
//! - [`registry`]: the live registry of in-flight tracked roots (`tracing::live_traces`);
//!   only the tracked constructors of a [`Tracked`](pipeline::Tracked) pipeline enter it.
//! - [`stack`]: the thread-local scope stacks, made of [`entry`] values, each with its
//!   [`joined`] unsampled children ([`unsampled`]: their fast lane); [`scope`]: an entry's lifetime;
//!   [`current`]: what is current on this thread; [`frame`]: the context of the future
//!   being polled ([`polled`]: what it is made of), and what a suspended future left; [`user_link`]: an internal entry's
//!   link to a parallel user span.
//!
//! This module imports nothing from the API, export, settings or context modules: they
//! build on it, never the other way round. It uses the W3C value types of `propagation`.

pub(crate) mod bounded_slot;
pub(crate) mod clock;
pub(crate) mod current;
pub(crate) mod entry;
pub(crate) mod entry_span;
pub(crate) mod finished;
pub(crate) mod frame;
pub(crate) mod harness;
pub(crate) mod identity;
pub(crate) mod joined;
pub(crate) mod limits;
pub(crate) mod links;
pub(crate) mod names;
pub(crate) mod pipeline;
pub(crate) mod polled;
pub(crate) mod queue;
pub(crate) mod rate_limit;
pub(crate) mod registry;
pub(crate) mod registry_slots;
pub(crate) mod rings;
pub(crate) mod routing;
pub(crate) mod scope;
pub(crate) mod span;
pub(crate) mod stack;
pub(crate) mod status;
pub(crate) mod tags;
pub(crate) mod unsampled;
pub(crate) mod user_link;
