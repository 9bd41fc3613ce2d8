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
//! A tracked root is one entry in one of a fixed set of shards (a thread keeps using the
//! shard it was first given), each a `Vec` of slots behind its own lock: registering is one
//! uncontended lock and a slot write, no allocation for a `&'static str` name (an owned name
//! is copied once). The root holds a [`Token`] (shard and slot). Its recorded descendants
//! register beside it only while descendant tracking is on (off by default: it costs each
//! recorded descendant two locks, about 230 instructions, +17% on a recorded span); then
//! [`snapshot`] lists them under their root. With it off, and for unsampled spans, a
//! descendant costs nothing here. A root's tags are copied here as they are set, the
//! descendants' are not (that would cost every tagged span a lock). Once a root is shared
//! (made a context, the server layer's request span, a bridged span), a snapshot reads its
//! tags from the span itself ([`TagSource`]) and setting them copies nothing: such roots
//! are where most tags are set, and each copy cost an allocation under the lock.
//!
//! This module owns the registry's entries and their read-out. It must not know which span
//! is current, nor where finished spans go; spans tell it when they start and finish.

use crate::telemetry::propagation::ids::{SpanId, TraceId};
use cf_rustracing::tag::{Tag, TagValue};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// Where a tracked span's entry is; children copy their root's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    shard: u16,
    slot: u32,
    /// The root's slot (its own, for a root).
    root: u32,
    /// Whether the root's recorded descendants register too (decided when the root
    /// started, so that a child reads no shared state to know).
    descendants: bool,
    /// Set once a root's tags are read from the span itself at snapshot time (see
    /// [`set_tag_source`]): then setting a tag copies nothing here.
    tags_read_live: bool,
}

impl Token {
    pub(crate) fn is_root(self) -> bool {
        self.slot == self.root
    }

    /// Whether tags set on this span must be copied into its entry: a root's are, until the
    /// registry reads them from the span itself.
    #[inline]
    pub(crate) fn copies_tags(self) -> bool {
        self.is_root() && !self.tags_read_live
    }

    /// This token, its root's tags read from the span from now on.
    pub(crate) fn reading_tags_live(self) -> Self {
        Self {
            tags_read_live: self.is_root(),
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

const SHARDS: usize = 16;

/// One lock's worth of entries, on cache lines of its own so that threads registering in
/// different shards do not slow each other down.
#[repr(align(128))]
struct Shard(Mutex<Slots>);

struct Slots {
    entries: Vec<Option<Entry>>,
    /// Vacant indexes of `entries`, reused before the vector grows.
    free: Vec<u32>,
}

/// A registered span.
struct Entry {
    root: u32,
    name: Cow<'static, str>,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    start_time: SystemTime,
    /// A root's tags. A vector (one allocation once tagged), not inline room: entries are
    /// written per registered span, and most register no tags.
    tags: Vec<Tag>,
    /// A shared root, whose tags a snapshot reads from the span itself instead.
    source: Option<Weak<dyn TagSource>>,
}

/// A shared span the registry can read a root's tags from at snapshot time, so that setting
/// a tag on it copies nothing (see [`set_tag_source`]).
pub(crate) trait TagSource: Send + Sync {
    /// The span's tags as they are now.
    fn current_tags(&self) -> Vec<(String, TagValue)>;
}

static REGISTRY: [Shard; SHARDS] = [const {
    Shard(Mutex::new(Slots {
        entries: Vec::new(),
        free: Vec::new(),
    }))
}; SHARDS];

/// Hands shards to threads in turn.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard; `SHARDS` until it is given one.
    static THREAD_SHARD: Cell<usize> = const { Cell::new(SHARDS) };
}

fn thread_shard() -> usize {
    THREAD_SHARD
        .try_with(|shard| {
            if shard.get() == SHARDS {
                shard.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            shard.get()
        })
        .unwrap_or(0)
}

/// What a span registers with: its identity, name and start.
pub(crate) struct Registration<'a> {
    pub(crate) name: &'a Cow<'static, str>,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) start_time: SystemTime,
}

impl Slots {
    fn insert(&mut self, root: Option<u32>, span: Registration<'_>) -> Option<(u32, u32)> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.entries.len()).ok()?;
                self.entries.push(None);
                slot
            }
        };
        let root = root.unwrap_or(slot);
        self.entries[slot as usize] = Some(Entry {
            root,
            name: span.name.clone(),
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            start_time: span.start_time,
            tags: Vec::new(),
            source: None,
        });
        Some((slot, root))
    }
}

/// Registers a new tracked root; `None` when the registry is off.
#[inline]
pub(crate) fn enter_root(span: Registration<'_>) -> Option<Token> {
    if !is_enabled() {
        return None;
    }
    let shard = thread_shard();
    let (slot, root) = REGISTRY[shard].0.lock().insert(None, span)?;
    Some(Token {
        shard: shard as u16,
        slot,
        root,
        descendants: descendants_enabled(),
        tags_read_live: false,
    })
}

/// Registers a recorded descendant of the tracked root `parent` belongs to, beside it.
#[inline]
pub(crate) fn enter_descendant(parent: Token, span: Registration<'_>) -> Option<Token> {
    let (slot, root) = REGISTRY[usize::from(parent.shard)]
        .0
        .lock()
        .insert(Some(parent.root), span)?;
    Some(Token {
        shard: parent.shard,
        slot,
        root,
        descendants: true,
        tags_read_live: false,
    })
}

/// Removes a finished span's entry.
#[inline]
pub(crate) fn leave(token: Token) {
    let mut slots = REGISTRY[usize::from(token.shard)].0.lock();
    if let Some(entry) = slots.entries.get_mut(token.slot as usize) {
        // Dropped outside the lock: an owned name or tag values are freed after it.
        let left = entry.take();
        slots.free.push(token.slot);
        drop(slots);
        drop(left);
    }
}

/// Copies tags set on a tracked root into its entry (each replaces one of the same name),
/// under one lock, and hands each tag on to `keep`.
pub(crate) fn set_root_tags(
    token: Token,
    tags: impl IntoIterator<Item = Tag>,
    mut keep: impl FnMut(Tag),
) {
    let mut slots = REGISTRY[usize::from(token.shard)].0.lock();
    let entry = slots
        .entries
        .get_mut(token.slot as usize)
        .and_then(Option::as_mut);
    match entry {
        Some(entry) => {
            for tag in tags {
                entry.tags.retain(|old| old.name() != tag.name());
                entry.tags.push(tag.clone());
                keep(tag);
            }
        }
        None => tags.into_iter().for_each(keep),
    }
}

/// From now on, a snapshot reads the root `token`'s tags from `source` (the root became a
/// shared span); the tags copied so far are shown until then.
pub(crate) fn set_tag_source(token: Token, source: Weak<dyn TagSource>) {
    let mut slots = REGISTRY[usize::from(token.shard)].0.lock();
    if let Some(Some(entry)) = slots.entries.get_mut(token.slot as usize) {
        entry.source = Some(source);
    }
}

/// Renames a tracked span's entry.
#[cfg(feature = "tracing-bridge")]
#[allow(clippy::ptr_arg)] // Cloning the `Cow` keeps a borrowed name borrowed: no allocation.
pub(crate) fn rename(token: Token, name: &Cow<'static, str>) {
    let mut slots = REGISTRY[usize::from(token.shard)].0.lock();
    if let Some(Some(entry)) = slots.entries.get_mut(token.slot as usize) {
        entry.name = name.clone();
    }
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

impl Entry {
    fn view(&self, now: SystemTime) -> OpenSpan {
        OpenSpan {
            name: self.name.to_string(),
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            start_time: self.start_time,
            elapsed: now.duration_since(self.start_time).unwrap_or_default(),
            tags: self
                .tags
                .iter()
                .map(|tag| (tag.name().to_owned(), tag.value().clone()))
                .collect(),
        }
    }
}

/// Every open tracked root with its open descendants, oldest root first. Each shard is
/// locked only while it is copied.
pub(crate) fn snapshot() -> Vec<LiveTrace> {
    let now = SystemTime::now();
    let mut traces = Vec::new();
    let mut sources = Vec::new();
    for shard in &REGISTRY {
        let slots = shard.0.lock();
        let first = traces.len();
        let mut index_of_root = std::collections::HashMap::new();
        for (slot, entry) in slots.entries.iter().enumerate() {
            if let Some(entry) = entry.as_ref().filter(|entry| entry.root as usize == slot) {
                index_of_root.insert(entry.root, traces.len());
                if let Some(source) = &entry.source {
                    sources.push((traces.len(), source.clone()));
                }
                traces.push(LiveTrace {
                    root: entry.view(now),
                    descendants: Vec::new(),
                });
            }
        }
        for (slot, entry) in slots.entries.iter().enumerate() {
            let Some(entry) = entry.as_ref().filter(|entry| entry.root as usize != slot) else {
                continue;
            };
            // A descendant whose root finished first (or whose root's slot was reused by
            // another trace) has no root to be shown under.
            if let Some(&index) = index_of_root.get(&entry.root) {
                let trace: &mut LiveTrace = &mut traces[index];
                if trace.root.trace_id == entry.trace_id {
                    trace.descendants.push(entry.view(now));
                }
            }
        }
        drop(slots);
        for trace in &mut traces[first..] {
            trace.descendants.sort_by_key(|span| span.start_time);
        }
    }
    // Read with no shard locked: a span's lock is taken before the registry's when tagging.
    // A span that finished since is simply shown as it was copied. Holding the last handle
    // here would finish the span on this thread, as dropping any handle does.
    for (index, source) in sources {
        if let Some(source) = source.upgrade() {
            traces[index].root.tags = source.current_tags();
        }
    }
    traces.sort_by_key(|trace| trace.root.start_time);
    traces
}

#[cfg(all(test, feature = "testing"))]
#[path = "registry_tests.rs"]
mod tests;
