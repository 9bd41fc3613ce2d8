//! Span limits, as OpenTelemetry defines them: how many attributes (tags), events (log
//! entries), attributes per event and links one span keeps, and how long an attribute value
//! may be; and the bounded recording that obeys them.
//!
//! Limits apply when a span records, not when it is exported, so a span's memory is bounded
//! too: a span given 10,000 tags holds 128. What is over a limit is dropped and counted, and
//! the counts travel with the span's record to the exporter (OTLP `dropped_attributes_count`,
//! `dropped_events_count`, `dropped_links_count`, and each event's
//! `dropped_attributes_count`). A tag that replaces one of the same name is not over any
//! limit: it takes the earlier one's place.
//!
//! Setting a tag is O(1) amortised while "a later tag of the same name replaces the earlier
//! one" holds (the later one goes to the end: tags keep the order of their last writes, so
//! the last status tag written wins). A span's first two tags are kept inline (see the
//! `tags` module) when they can be; once one cannot, its tags are kept in its [`Bounded`]
//! part (two in the box itself, more on the heap). A new span given several tags at once (a
//! bridged span's fields, a server span's request attributes) keeps two inline as they
//! are, or takes the caller's collection of them as that storage ([`set_first_tags`]).
//! A span with few tags (the common case) finds a name by scanning them; once it has
//! [`INDEX_FROM`] tags, a hash table of their
//! positions, keyed by the tags' own names (nothing copied), is built once and kept up to
//! date, and a replaced tag's slot is marked dead instead of shifting the tags after it,
//! dead slots being squeezed out in one pass once they are half the slots. Only spans with
//! many tags pay for the index, and it is bounded by the attribute limit like the tags are.
//!
//! A [`Bounded`] box goes with its span's record, and back for reuse ([`SPARE_BOXES`]).
//!
//! This module owns the limits, the bounded recording and the spare boxes; it does not
//! know which span is current or where finished spans go.

use super::links::{SpanLink, SpanLinks};
use cf_rustracing::log::{Log, LogField};
use cf_rustracing::tag::{Tag, TagValue};
use crossbeam_queue::ArrayQueue;
use hashbrown::HashTable;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;

pub(crate) use super::tags::InlineTags;
use super::tags::NewTag;

/// The default links limit: a span keeps at most this many links unless its pipeline's
/// `span_limits.max_links` says otherwise; later ones are dropped and counted in
/// `dropped_links_count`.
pub const MAX_LINKS: usize = SpanLimits::DEFAULT_COUNT;

/// How much one span keeps; what is beyond is dropped and counted. The defaults are
/// OpenTelemetry's: 128 attributes, 128 events, 128 attributes per event, 128 links, and no
/// attribute value length limit (the exporter still cuts string values at 64 KiB).
///
/// # Examples
///
/// ```
/// use foundations::telemetry::SpanLimits;
///
/// let limits = SpanLimits::default()
///     .with_max_attributes(16)
///     .with_max_attribute_value_length(Some(256));
/// assert_eq!(limits.max_attributes(), 16);
/// assert_eq!(limits.max_events(), 128);
/// assert_eq!(limits.max_attribute_value_length(), Some(256));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    max_attributes: usize,
    max_events: usize,
    max_attributes_per_event: usize,
    max_links: usize,
    max_attribute_value_length: Option<usize>,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attributes: Self::DEFAULT_COUNT,
            max_events: Self::DEFAULT_COUNT,
            max_attributes_per_event: Self::DEFAULT_COUNT,
            max_links: Self::DEFAULT_COUNT,
            max_attribute_value_length: None,
        }
    }
}

impl SpanLimits {
    /// The default of every count limit: 128, as in OpenTelemetry.
    pub const DEFAULT_COUNT: usize = 128;

    /// Tags a span keeps (kind and status tags included). Default: 128.
    pub fn with_max_attributes(mut self, max: usize) -> Self {
        self.max_attributes = max;
        self
    }

    /// Log entries (OTLP events) a span keeps. Default: 128.
    pub fn with_max_events(mut self, max: usize) -> Self {
        self.max_events = max;
        self
    }

    /// Fields a log entry keeps, besides the `event` field that names it. Default: 128.
    pub fn with_max_attributes_per_event(mut self, max: usize) -> Self {
        self.max_attributes_per_event = max;
        self
    }

    /// Links a span keeps. Default: 128.
    pub fn with_max_links(mut self, max: usize) -> Self {
        self.max_links = max;
        self
    }

    /// Longest string value of a tag, log field or link attribute, in bytes (cut at a
    /// character boundary);
    /// `None` (the default) keeps values whole, up to the exporter's 64 KiB.
    pub fn with_max_attribute_value_length(mut self, max: Option<usize>) -> Self {
        self.max_attribute_value_length = max;
        self
    }

    /// Tags a span keeps.
    pub fn max_attributes(&self) -> usize {
        self.max_attributes
    }

    /// Log entries a span keeps.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// Fields a log entry keeps, besides its `event` field.
    pub fn max_attributes_per_event(&self) -> usize {
        self.max_attributes_per_event
    }

    /// Links a span keeps.
    pub fn max_links(&self) -> usize {
        self.max_links
    }

    /// Longest string value kept, in bytes; `None` for no limit.
    pub fn max_attribute_value_length(&self) -> Option<usize> {
        self.max_attribute_value_length
    }
}

/// From this many tags on, a span indexes its tags by name instead of scanning them.
pub(crate) const INDEX_FROM: usize = 8;

/// A span's tags once they are not inline: two stay in the box itself, so that a span with
/// two tags that cannot be inline (two owned strings) allocates once for them, not twice.
pub(crate) type SpilledTags = SmallVec<[Tag; 2]>;

/// What a span recorded besides its name and inline tag, and what it dropped: boxed in the
/// span only once there is any (more than one tag, links, or something dropped or logged).
///
/// The same box becomes the extras of the span's record (`finished`), which is why it also
/// has the record-only fields (`name`, `long_duration_nanos`, `logs`, empty while the span is
/// live): finishing a span moves the pointer, it allocates and copies nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bounded {
    /// Every tag of a span that has more than its inline ones (or one that cannot be
    /// inline); the inline tags are then empty.
    pub(crate) tags: SpilledTags,
    pub(crate) links: SpanLinks,
    /// Boxed: only spans with many tags have one, and the others' box stays small.
    index: Option<Box<TagIndex>>,
    /// Slots of replaced tags (only once indexed), and how many.
    dead: Vec<bool>,
    dead_count: usize,
    pub(crate) dropped_attributes: u32,
    /// Log entries kept so far.
    pub(crate) events: u32,
    pub(crate) dropped_events: u32,
    /// `(event position, fields dropped)` for the events that dropped fields.
    pub(crate) event_dropped_attributes: Vec<(u32, u32)>,
    /// Record only: an owned name.
    pub(crate) name: Option<Box<str>>,
    /// Record only: the duration in nanoseconds, when it does not fit the record's `u32`.
    pub(crate) long_duration_nanos: u64,
    /// Record only: log entries, copied out of a `cf_rustracing` span.
    pub(crate) logs: Vec<Log>,
}

impl Bounded {
    /// The tags kept so far, in order, without the slots of replaced ones.
    pub(crate) fn live_tags(&self) -> impl Iterator<Item = &Tag> {
        self.tags
            .iter()
            .enumerate()
            .filter(|(position, _)| !self.dead.get(*position).copied().unwrap_or(false))
            .map(|(_, tag)| tag)
    }
}

/// Positions of a span's tags, keyed by their names.
#[derive(Clone, Debug)]
struct TagIndex {
    hasher: RandomState,
    positions: HashTable<u32>,
}

impl TagIndex {
    fn of(tags: &[Tag]) -> Self {
        let mut index = Self {
            hasher: RandomState::new(),
            positions: HashTable::with_capacity(tags.len() * 2),
        };
        for (position, tag) in tags.iter().enumerate() {
            let hash = index.hasher.hash_one(tag.name());
            index.positions.insert_unique(hash, position as u32, |&p| {
                index.hasher.hash_one(tags[p as usize].name())
            });
        }
        index
    }
}

fn count(counter: &mut u32, n: u32) {
    *counter = counter.saturating_add(n);
}

/// Sets `tag` on a span whose tags are `tags` (inline) and `bounded`'s: it replaces the tag
/// of the same name (and moves to the end: tags are in the order of their last writes,
/// which is what lets the last status written win), or is added if the span has room, or is
/// dropped and counted.
///
/// A span's first two tags are kept inline when they can be (see `tags`); a tag that cannot
/// join them moves them all into `bounded`, where the span's tags stay from then on.
#[inline]
pub(crate) fn set_tag(
    tags: &mut InlineTags,
    bounded: &mut Option<Box<Bounded>>,
    tag: impl NewTag,
    limits: &SpanLimits,
) {
    if let Some(spilled) = bounded.as_deref_mut().filter(|b| !b.tags.is_empty()) {
        return set_spilled_tag(spilled, tag.into_tag(), limits);
    }
    match limits.max_attribute_value_length {
        // Without a length limit (the default), the tag goes on as it came: a tag macro's
        // `'static` name is interned by its address.
        None => set_unspilled_tag(tags, bounded, tag, limits),
        Some(max) => set_cut_tag(tags, bounded, tag.into_tag(), max, limits),
    }
}

/// [`set_tag`] with a value length limit: the tag's string value is cut first. Out of
/// line, so that the default (no limit) does not carry it.
#[inline(never)]
fn set_cut_tag(
    tags: &mut InlineTags,
    bounded: &mut Option<Box<Bounded>>,
    tag: Tag,
    max: usize,
    limits: &SpanLimits,
) {
    set_unspilled_tag(tags, bounded, cut_tag(tag, max), limits);
}

/// [`set_tag`] on a span whose tags are not (yet) kept apart in `bounded`.
#[inline(always)]
fn set_unspilled_tag(
    tags: &mut InlineTags,
    bounded: &mut Option<Box<Bounded>>,
    tag: impl NewTag,
    limits: &SpanLimits,
) {
    // Only a span at its limit looks for a tag to replace.
    let full = tags.len() >= limits.max_attributes;
    if full && (tags.len() > limits.max_attributes || !tags.has(tag.name())) {
        count(
            &mut bounded.get_or_insert_with(new_box).dropped_attributes,
            1,
        );
        return;
    }
    if let Some(inline) = tag.inline()
        && tags.try_set(inline)
    {
        return tag.drop_inlined();
    }
    let tag = tag.into_tag();
    let spilled = &mut bounded.get_or_insert_with(new_box).tags;
    spilled.extend(tags.take_except(tag.name()));
    spilled.push(tag);
}

/// Sets the first tags of a span that has none yet: what [`set_tag`] for each would do. When
/// that is to keep them all as they are (distinct names, within the limits, no value to
/// cut), two that can be inline are, and more (or two that cannot) make `new` itself the
/// span's storage: moved in, no tag copied, no per-tag work. Else the tags are set one by
/// one.
#[cfg_attr(
    not(any(feature = "tower", feature = "tracing-bridge")),
    allow(dead_code)
)]
pub(crate) fn set_first_tags(
    tags: &mut InlineTags,
    bounded: &mut Option<Box<Bounded>>,
    new: SpilledTags,
    limits: &SpanLimits,
) {
    let has_tags = !tags.is_empty() || bounded.as_ref().is_some_and(|b| !b.tags.is_empty());
    // The common pair (a bridged span's two fields), inline in one step. Taken out of the
    // vector first: dropping two tags is cheaper than dropping a vector of them.
    let new = if new.len() == 2
        && !has_tags
        && limits.max_attributes >= 2
        && limits.max_attribute_value_length.is_none()
    {
        match new.into_inner() {
            Ok(two) => match InlineTags::pair(&two[0], &two[1]) {
                Some(pair) => {
                    *tags = pair;
                    return;
                }
                None => SpilledTags::from_buf(two),
            },
            Err(new) => new,
        }
    } else {
        new
    };
    let as_they_are = !has_tags
        && new.len() > 1
        && new.len() <= limits.max_attributes.min(INDEX_FROM)
        && limits.max_attribute_value_length.is_none()
        && distinct_names(&new);
    if !as_they_are {
        for tag in new {
            set_tag(tags, bounded, tag, limits);
        }
        return;
    }
    bounded.get_or_insert_with(new_box).tags = new;
}

/// `true` when no two of `tags` (a few) have the same name.
fn distinct_names(tags: &[Tag]) -> bool {
    tags.iter()
        .enumerate()
        .all(|(i, tag)| tags[..i].iter().all(|other| other.name() != tag.name()))
}

/// [`set_tag`] for a span whose tags are all in `bounded`.
#[inline(never)]
fn set_spilled_tag(bounded: &mut Bounded, tag: Tag, limits: &SpanLimits) {
    if bounded.tags.len() >= INDEX_FROM {
        return set_tag_indexed(bounded, tag, limits);
    }
    // Few tags, none dead (dead slots exist only once indexed): a scan is cheapest.
    let tag = bounded_tag(tag, limits);
    let tags = &mut bounded.tags;
    if let Some(position) = tags.iter().position(|old| old.name() == tag.name()) {
        tags.remove(position);
        tags.push(tag);
    } else if tags.len() < limits.max_attributes {
        tags.push(tag);
    } else {
        count(&mut bounded.dropped_attributes, 1);
    }
}

/// [`set_tag`] for a span with many tags, through (and keeping up) its index. A replaced
/// tag's slot is marked dead rather than removed (removing would shift every later tag);
/// dead slots are squeezed out once they are as many as the live ones, so each set costs
/// O(1) amortised and the tags take at most twice the attribute limit.
fn set_tag_indexed(bounded: &mut Bounded, tag: Tag, limits: &SpanLimits) {
    let Bounded {
        tags,
        index,
        dead,
        dead_count,
        dropped_attributes,
        ..
    } = bounded;
    let index = index.get_or_insert_with(|| Box::new(TagIndex::of(tags)));
    let hash = index.hasher.hash_one(tag.name());
    let found = index
        .positions
        .find_mut(hash, |&p| tags[p as usize].name() == tag.name());
    if let Some(position) = found {
        let old = std::mem::replace(position, tags.len() as u32) as usize;
        tags.push(bounded_tag(tag, limits));
        if dead.len() < tags.len() {
            dead.resize(tags.len(), false);
        }
        dead[old] = true;
        *dead_count += 1;
        if *dead_count * 2 >= tags.len() {
            squeeze(bounded);
            // Fewer tags than that are scanned, and a scan does not keep an index up to
            // date: a stale one must not be found later.
            bounded.index =
                (bounded.tags.len() >= INDEX_FROM).then(|| Box::new(TagIndex::of(&bounded.tags)));
        }
    } else if tags.len() - *dead_count < limits.max_attributes {
        tags.push(bounded_tag(tag, limits));
        let hasher = &index.hasher;
        index
            .positions
            .insert_unique(hash, (tags.len() - 1) as u32, |&p| {
                hasher.hash_one(tags[p as usize].name())
            });
    } else {
        count(dropped_attributes, 1);
    }
}

/// Removes the dead slots of the tags, keeping the order of the others. The index, if any,
/// is stale afterwards.
fn squeeze(bounded: &mut Bounded) {
    let mut position = 0;
    let dead = &bounded.dead;
    bounded.tags.retain(|_| {
        let keep = !dead.get(position).copied().unwrap_or(false);
        position += 1;
        keep
    });
    bounded.dead.clear();
    bounded.dead_count = 0;
}

/// The tags of a span that finishes: dead slots removed, the index freed.
pub(crate) fn finish_tags(bounded: &mut Bounded) {
    if bounded.dead_count > 0 {
        squeeze(bounded);
    }
    // A record may wait in a queue for long: it keeps only what it exports.
    bounded.index = None;
    bounded.dead = Vec::new();
}

/// `tag`, its string value cut to the value length limit.
#[inline(always)]
fn bounded_tag(tag: Tag, limits: &SpanLimits) -> Tag {
    // Without a length limit (the default), a tag passes as it is, with no call.
    match limits.max_attribute_value_length {
        None => tag,
        Some(max) => cut_tag(tag, max),
    }
}

/// `tag`, its string value cut to `max` bytes.
#[inline(never)]
fn cut_tag(tag: Tag, max: usize) -> Tag {
    match tag.value() {
        TagValue::String(value) if value.len() > max => {
            let value = cut(value, max);
            Tag::new(tag.name().to_owned(), value)
        }
        _ => tag,
    }
}

/// `link`, its string attribute values cut to the value length limit.
pub(crate) fn bounded_link(mut link: SpanLink, limits: &SpanLimits) -> SpanLink {
    if limits.max_attribute_value_length.is_some() {
        link.attributes = std::mem::take(&mut link.attributes)
            .into_iter()
            .map(|tag| bounded_tag(tag, limits))
            .collect();
    }
    link
}

/// `field`, its value cut to the value length limit.
pub(crate) fn bounded_field(field: LogField, limits: &SpanLimits) -> LogField {
    match limits.max_attribute_value_length {
        Some(max) if field.value().len() > max => {
            let value = cut(field.value(), max);
            LogField::new(field.name().to_owned(), value)
        }
        _ => field,
    }
}

/// The first `max` bytes of `value` or fewer, ending at a character boundary.
fn cut(value: &str, max: usize) -> Cow<'static, str> {
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(value[..end].to_owned())
}

/// Boxes of span extras that the exporter is done with, for new spans to fill.
///
/// A `Bounded` box travels with its record to the exporter's thread. Freed there, glibc's
/// allocator made both threads take one arena lock, to free and to allocate again: with
/// server spans (eight tags), a futex call on each side per request. So a dropped record
/// gives its box back ([`give_back`]) and a span takes one from here first ([`new_box`]),
/// emptied by the taking thread: a box holds one span's data at a time, whichever
/// pipeline, trace or routing it served before.
static SPARE_BOXES: LazyLock<ArrayQueue<Box<Bounded>>> =
    LazyLock::new(|| ArrayQueue::new(MAX_SPARE_BOXES));

/// Spare boxes kept at most, process-wide; past that, a box given back is dropped.
const MAX_SPARE_BOXES: usize = 1024;

/// Most tags a spare box keeps room for: more is rare, and not worth keeping spare.
const MAX_SPARE_TAGS: usize = 16;

/// A box for a span's extras: a spare one, emptied, or a new one.
pub(crate) fn new_box() -> Box<Bounded> {
    let Some(mut spare) = SPARE_BOXES.pop() else {
        return Box::default();
    };
    let mut tags = std::mem::take(&mut spare.tags);
    tags.clear();
    *spare = Bounded::default();
    spare.tags = tags;
    spare
}

/// Keeps `extras`, the box of a record its consumer is done with, for a new span; one that
/// holds room for more than [`MAX_SPARE_TAGS`] tags or any other memory is dropped, and
/// so is one past [`MAX_SPARE_BOXES`].
pub(crate) fn give_back(extras: Box<Bounded>) {
    let small = extras.tags.capacity() <= MAX_SPARE_TAGS
        && extras.links.links.capacity() == 0
        && extras.index.is_none()
        && extras.dead.capacity() == 0
        && extras.event_dropped_attributes.capacity() == 0
        && extras.name.is_none()
        && extras.logs.capacity() == 0;
    if small {
        let _ = SPARE_BOXES.push(extras);
    }
}

impl Bounded {
    /// Counts a log entry about to be recorded: `false` when the span has no room for it
    /// (it is then counted as dropped).
    pub(crate) fn admit_event(&mut self, limits: &SpanLimits) -> bool {
        if self.events as usize >= limits.max_events {
            count(&mut self.dropped_events, 1);
            return false;
        }
        true
    }

    /// Records that a log entry was kept, `dropped` of its fields over the limit.
    pub(crate) fn kept_event(&mut self, dropped: u32) {
        if dropped > 0 {
            self.event_dropped_attributes.push((self.events, dropped));
        }
        self.events += 1;
    }

    /// Counts `n` log entries as dropped: added beyond the limit where the span did not see
    /// them (by its finish callback), or left without any field the limits kept.
    pub(crate) fn count_dropped_events(&mut self, n: usize) {
        count(
            &mut self.dropped_events,
            u32::try_from(n).unwrap_or(u32::MAX),
        );
    }

    /// `true` when nothing is kept or counted here that a record needs.
    pub(crate) fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.links.links.is_empty()
            && self.links.dropped == 0
            && self.dropped_attributes == 0
            && self.dropped_events == 0
            && self.event_dropped_attributes.is_empty()
            && self.name.is_none()
            && self.logs.is_empty()
    }
}

/// The fields of a log entry, bounded: the `event` field (the entry's name) always kept, at
/// most `max_attributes_per_event` others, each value cut to the value length limit. Counts
/// the fields it drops in `dropped`.
pub(crate) fn bounded_fields<'a>(
    fields: impl IntoIterator<Item = LogField> + 'a,
    limits: &'a SpanLimits,
    dropped: &'a mut u32,
) -> impl Iterator<Item = LogField> + 'a {
    let mut kept = 0usize;
    fields.into_iter().filter_map(move |field| {
        if field.name() != "event" {
            if kept >= limits.max_attributes_per_event {
                count(dropped, 1);
                return None;
            }
            kept += 1;
        }
        Some(bounded_field(field, limits))
    })
}

#[cfg(all(test, feature = "testing"))]
#[path = "limits_tests.rs"]
mod tests;
