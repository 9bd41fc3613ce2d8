//! The live registry of in-flight internal traces: what an operator reads, at run time, to
//! see what a stuck service is doing ([`snapshot`], public as
//! `telemetry::tracing::live_traces`).
//!
//! Only *tracked* roots enter it: recorded roots of a [`Tracked`](super::pipeline::Tracked)
//! pipeline (the internal one), started through the tracked constructors. An unsampled root
//! is not registered (it records nothing, and most roots are unsampled), and neither is any
//! user span: the user pipeline has no tracked constructor. A root leaves the registry when
//! it finishes.
//!
//! A tracked root is one slot of its thread's table ([`registry_slots`](super::registry_slots)):
//! registering takes a free slot of that table and writes the span's identity into it with
//! plain atomic stores (no lock, no shared cache line in the common case, no allocation for a
//! `&'static str` name; an owned name is copied once); leaving frees it the same way. The
//! root holds a [`Token`] (its slot). Its recorded descendants register beside it only while
//! descendant tracking is on (off by default); then [`snapshot`] lists them under their root.
//! With it off, and for unsampled spans, a descendant costs nothing here. A root's tags are
//! copied into its slot as they are set, under the slot's own lock; the descendants' are not.
//! Once a root is shared (made a context, the server layer's request span, a bridged span), a
//! snapshot reads its tags from the span itself ([`TagSource`]) and setting them copies
//! nothing: such roots are where most tags are set.
//!
//! This module owns the registry's entries and their read-out. It must not know which span
//! is current, nor where finished spans go; spans tell it when they start and finish.

use super::clock::Timestamp;
pub(crate) use super::registry_slots::TagSource;
use super::registry_slots::{self, Identity, Slot};
use crate::telemetry::propagation::ids::{SpanId, TraceId};
use cf_rustracing::tag::{Tag, TagValue};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Where a tracked span's entry is; children copy their root's.
#[derive(Clone, Copy)]
pub(crate) struct Token {
    slot: &'static Slot,
    /// The span id of the root the span is listed under (its own, for a root).
    root_span_id: SpanId,
    is_root: bool,
    /// Whether the root's recorded descendants register too (decided when the root
    /// started, so that a child reads no shared state to know).
    descendants: bool,
    /// Set once a root's tags are read from the span itself at snapshot time (see
    /// [`set_tag_source`]): then setting a tag copies nothing here.
    tags_read_live: bool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("slot", &std::ptr::from_ref(self.slot))
            .field("root_span_id", &self.root_span_id)
            .field("is_root", &self.is_root)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub(crate) fn is_root(self) -> bool {
        self.is_root
    }

    /// Whether tags set on this span must be copied into its entry: a root's are, until the
    /// registry reads them from the span itself.
    #[inline]
    pub(crate) fn copies_tags(self) -> bool {
        self.is_root && !self.tags_read_live
    }

    /// This token, its root's tags read from the span from now on.
    pub(crate) fn reading_tags_live(self) -> Self {
        Self {
            tags_read_live: self.is_root,
            ..self
        }
    }

    /// The token a recorded child registers under, if its descendants are tracked.
    #[inline]
    pub(crate) fn for_descendants(this: Option<Self>) -> Option<Self> {
        this.filter(|token| token.descendants)
    }
}

/// Whether tracked roots register at all (`tracing::set_live_traces_enabled`).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the recorded descendants of roots registered from now on register too
/// (`tracing::set_live_descendants_enabled`). Off by default: it costs each recorded
/// descendant a lock, twice.
static DESCENDANTS: AtomicBool = AtomicBool::new(false);

/// Turns registration of recorded descendants on or off, for roots started from now on.
pub(crate) fn set_descendants_enabled(enabled: bool) {
    DESCENDANTS.store(enabled, Ordering::Relaxed);
}

/// Whether the descendants of new roots register.
pub(crate) fn descendants_enabled() -> bool {
    DESCENDANTS.load(Ordering::Relaxed)
}

/// Turns registration of new roots (and their descendants) on or off; spans already
/// registered stay until they finish.
pub(crate) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether new roots register.
pub(crate) fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What a span registers with: its identity, name and start.
pub(crate) struct Registration<'a> {
    pub(crate) name: &'a Cow<'static, str>,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) start: Timestamp,
}

impl Registration<'_> {
    fn identity(&self, root_span_id: SpanId) -> Identity<'_> {
        Identity {
            name: self.name,
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            root_span_id,
            start: self.start,
        }
    }
}

/// Registers a new tracked root; `None` when the registry is off.
#[inline]
pub(crate) fn enter_root(span: Registration<'_>) -> Option<Token> {
    if !is_enabled() {
        return None;
    }
    let slot = registry_slots::occupy(&span.identity(span.span_id))?;
    Some(Token {
        slot,
        root_span_id: span.span_id,
        is_root: true,
        descendants: descendants_enabled(),
        tags_read_live: false,
    })
}

/// Registers a recorded descendant of the tracked root `parent` belongs to, in the calling
/// thread's table.
#[inline]
pub(crate) fn enter_descendant(parent: Token, span: Registration<'_>) -> Option<Token> {
    let slot = registry_slots::occupy(&span.identity(parent.root_span_id))?;
    Some(Token {
        slot,
        is_root: false,
        tags_read_live: false,
        ..parent
    })
}

/// Removes a finished span's entry.
#[inline]
pub(crate) fn leave(token: Token) {
    // Dropped here, outside the slot's lock: an owned name or tag values are freed after it.
    drop(token.slot.vacate());
}

/// Copies tags set on a tracked root into its entry (each replaces one of the same name),
/// under the entry's lock, and hands each tag on to `keep`.
pub(crate) fn set_root_tags(
    token: Token,
    tags: impl IntoIterator<Item = Tag>,
    mut keep: impl FnMut(Tag),
) {
    token.slot.with_extras(|extras| {
        for tag in tags {
            extras.tags.retain(|old| old.name() != tag.name());
            extras.tags.push(tag.clone());
            keep(tag);
        }
    });
}

/// From now on, a snapshot reads the root `token`'s tags from `source` (the root became a
/// shared span); the tags copied so far are shown until then.
pub(crate) fn set_tag_source(token: Token, source: Weak<dyn TagSource>) {
    token
        .slot
        .with_extras(|extras| extras.source = Some(source));
}

/// Renames a tracked span's entry.
#[cfg(feature = "tracing-bridge")]
#[allow(clippy::ptr_arg)] // Whether the name is `'static` is in the `Cow`, not the `str`.
pub(crate) fn rename(token: Token, name: &Cow<'static, str>) {
    drop(token.slot.rename(name));
}

/// An open span as the registry shows it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OpenSpan {
    /// The span's name.
    pub name: String,
    /// Its trace.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// Its parent's id: for a root, the remote parent of a continued trace, if any.
    pub parent_span_id: Option<SpanId>,
    /// When it started.
    pub start_time: SystemTime,
    /// How long it has been open, when the snapshot was taken.
    pub elapsed: Duration,
    /// The tags set so far: a root's; empty for descendants (see
    /// [`live_traces`](crate::telemetry::tracing::live_traces)).
    pub tags: Vec<(String, TagValue)>,
}

/// An open tracked root and its open recorded descendants.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LiveTrace {
    /// The root.
    pub root: OpenSpan,
    /// Its open recorded descendants, oldest first.
    pub descendants: Vec<OpenSpan>,
}

/// Every open tracked root with its open descendants, oldest root first. Each entry is
/// copied as it was at one instant (entries are not all copied at the same one), and no
/// span waits for it.
pub(crate) fn snapshot() -> Vec<LiveTrace> {
    let now = SystemTime::now();
    let seen = registry_slots::read_all();
    let view = |seen: &registry_slots::Seen| {
        let start_time = seen.start.system_time();
        OpenSpan {
            name: registry_slots::name_of(seen),
            trace_id: seen.trace_id,
            span_id: seen.span_id,
            parent_span_id: seen.parent_span_id,
            start_time,
            elapsed: now.duration_since(start_time).unwrap_or_default(),
            tags: seen
                .tags
                .iter()
                .map(|tag| (tag.name().to_owned(), tag.value().clone()))
                .collect(),
        }
    };
    let mut traces = Vec::new();
    let mut sources = Vec::new();
    let mut index_of_root = HashMap::new();
    for root in seen.iter().filter(|seen| seen.span_id == seen.root_span_id) {
        index_of_root.insert((root.trace_id, root.span_id), traces.len());
        if let Some(source) = &root.source {
            sources.push((traces.len(), source.clone()));
        }
        traces.push(LiveTrace {
            root: view(root),
            descendants: Vec::new(),
        });
    }
    // A descendant whose root finished first has no root to be shown under.
    for descendant in seen.iter().filter(|seen| seen.span_id != seen.root_span_id) {
        if let Some(&index) = index_of_root.get(&(descendant.trace_id, descendant.root_span_id)) {
            let trace: &mut LiveTrace = &mut traces[index];
            trace.descendants.push(view(descendant));
        }
    }
    // Read with no lock of ours held: a span's lock is taken before its entry's when
    // tagging. A span that finished since is simply shown as it was copied. Holding the last
    // handle here would finish the span on this thread, as dropping any handle does.
    for (index, source) in sources {
        if let Some(source) = source.upgrade() {
            traces[index].root.tags = source.current_tags();
        }
    }
    for trace in &mut traces {
        trace.descendants.sort_by_key(|span| span.start_time);
    }
    traces.sort_by_key(|trace| trace.root.start_time);
    traces
}

#[cfg(all(test, feature = "testing"))]
#[path = "registry_tests.rs"]
mod tests;
