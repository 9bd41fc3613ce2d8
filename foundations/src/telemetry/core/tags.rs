//! Inline tag storage: the (at most) two tags a span (live, then finished) keeps without
//! allocating, in 32 bytes, where two `cf_rustracing` [`Tag`]s take 112.
//!
//! Most recorded spans carry at most two tags, usually with a literal name and a literal,
//! numeric or boolean value (a bridged `tracing` span with two fields, a span tagged with a
//! status code). The first such tag is stored as an [`InlineTag`] (24 bytes): the value as
//! it is (a `&'static str` borrowed from the tag, never copied), the name as the index of
//! an interned name. A second one is stored beside it in 8 bytes when one of the two is a
//! boolean or an integer that fits in 32 bits (that one then takes the small slot, with a
//! bit saying which tag was written first, so that the order of writes is kept). A `Tag`
//! cannot say whether its name is `'static`, so names are interned: each thread remembers
//! the names it met (a hit costs a short hash and one comparison of the name's bytes), and
//! a process-wide table gives each distinct name an index once. The tag macros build a
//! [`MacroTag`] instead, which keeps its name as given: a `'static` name (a literal, the
//! common case) is found in a second per-thread cache by its address and length, none of
//! its bytes read; a miss interns it by its bytes, so both ways give a name the same index.
//! The table is bounded ([`MAX_NAMES`] names of at most [`MAX_NAME_LEN`] bytes, leaked for
//! the life of the process: at most 64 KiB); tags that do not fit (a name too long, an
//! owned string value, a second tag when neither is small, a third tag) are kept as full
//! `Tag`s by the span limits' storage instead (`limits`).
//!
//! This module owns the inline representation and the interning; it does not decide which
//! tags a span keeps (that is `limits`).

use cf_rustracing::tag::{Tag, TagValue};
use parking_lot::Mutex;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most distinct tag names interned per process.
pub(crate) const MAX_NAMES: usize = 1024;
/// Longest tag name interned, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// One tag in 24 bytes: its interned name's index and its value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum InlineTag {
    Str(u32, &'static str),
    Bool(u32, bool),
    Int(u32, i64),
    Float(u32, f64),
}

const _: () = assert!(std::mem::size_of::<InlineTag>() == 24);
const _: () = assert!(std::mem::size_of::<Option<InlineTag>>() == 24);

impl InlineTag {
    /// `tag` as an inline tag, if its value is borrowed, numeric or boolean and its name
    /// is interned (or can be).
    #[inline(always)]
    pub(crate) fn of(tag: &Tag) -> Option<Self> {
        Self::with_name(tag.value(), || intern(tag.name()))
    }

    /// A tag of value `value` as an inline tag, if the value is borrowed, numeric or
    /// boolean and `name` gives its name's index (asked only then).
    #[inline(always)]
    fn with_name(value: &TagValue, name: impl FnOnce() -> Option<u32>) -> Option<Self> {
        // The value first: an owned string is never inlined, whatever the name.
        let value = match value {
            TagValue::String(Cow::Borrowed(value)) => InlineValue::Str(value),
            TagValue::String(Cow::Owned(_)) => return None,
            TagValue::Boolean(value) => InlineValue::Bool(*value),
            TagValue::Integer(value) => InlineValue::Int(*value),
            TagValue::Float(value) => InlineValue::Float(*value),
        };
        let name = name()?;
        Some(match value {
            InlineValue::Str(value) => InlineTag::Str(name, value),
            InlineValue::Bool(value) => InlineTag::Bool(name, value),
            InlineValue::Int(value) => InlineTag::Int(name, value),
            InlineValue::Float(value) => InlineTag::Float(name, value),
        })
    }

    /// The tag's name.
    pub(crate) fn name(&self) -> &'static str {
        name_of(self.name_index())
    }

    fn name_index(&self) -> u32 {
        let (InlineTag::Str(name, _)
        | InlineTag::Bool(name, _)
        | InlineTag::Int(name, _)
        | InlineTag::Float(name, _)) = *self;
        name
    }

    /// The tag as a `cf_rustracing` tag: nothing is copied but the two references.
    pub(crate) fn to_tag(self) -> Tag {
        let value = match self {
            InlineTag::Str(_, value) => TagValue::String(Cow::Borrowed(value)),
            InlineTag::Bool(_, value) => TagValue::Boolean(value),
            InlineTag::Int(_, value) => TagValue::Integer(value),
            InlineTag::Float(_, value) => TagValue::Float(value),
        };
        Tag::new(self.name(), value)
    }
}

enum InlineValue {
    Str(&'static str),
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// A tag on its way into a span: a `cf_rustracing` [`Tag`], whose name is interned by its
/// bytes, or a [`MacroTag`], whose `'static` name is interned by its address.
pub(crate) trait NewTag {
    /// The tag's name.
    fn name(&self) -> &str;

    /// The tag in the inline form, if it can take it (see [`InlineTag::of`]).
    fn inline(&self) -> Option<InlineTag>;

    /// The tag as a `cf_rustracing` tag, for the storage that keeps tags apart.
    fn into_tag(self) -> Tag;

    /// Drops the tag once its [`inline`](Self::inline) form was kept (its value then owns
    /// nothing, so only its name may need freeing), as cheaply as the tag allows. Only for
    /// a tag whose inline form was kept: another one's value may own a string.
    fn drop_inlined(self)
    where
        Self: Sized,
    {
        drop(self);
    }
}

impl NewTag for Tag {
    #[inline(always)]
    fn name(&self) -> &str {
        Tag::name(self)
    }

    #[inline(always)]
    fn inline(&self) -> Option<InlineTag> {
        InlineTag::of(self)
    }

    #[inline(always)]
    fn into_tag(self) -> Tag {
        self
    }
}

/// A tag as the tag macros (`add_span_tags!`, `add_user_span_tags!`) build it. Not a public
/// API: it may change in any release.
///
/// Unlike a [`Tag`], it keeps its name as given: a `'static` name (a literal, the common
/// case) is then known by its address, and goes inline without its bytes being read.
///
/// # Examples
///
/// ```
/// use foundations::telemetry::tracing::__private::{INTERNAL, MacroTag};
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// # let ctx = foundations::telemetry::TelemetryContext::test();
/// # let _scope = ctx.scope();
/// let _root = tracing::start_trace("request", StartTraceOptions::default());
/// INTERNAL.set_macro_tags([MacroTag::new("cache.hit", true)]);
/// ```
#[derive(Clone, Debug)]
pub struct MacroTag {
    name: Cow<'static, str>,
    value: TagValue,
}

impl MacroTag {
    /// A tag named `name` of value `value`.
    #[inline(always)]
    pub fn new(name: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl NewTag for MacroTag {
    #[inline(always)]
    fn name(&self) -> &str {
        &self.name
    }

    #[inline(always)]
    fn inline(&self) -> Option<InlineTag> {
        InlineTag::with_name(&self.value, || match &self.name {
            Cow::Borrowed(name) => intern_static(name),
            Cow::Owned(name) => intern(name),
        })
    }

    #[inline(always)]
    fn into_tag(self) -> Tag {
        Tag::new(self.name, self.value)
    }

    #[inline(always)]
    fn drop_inlined(self) {
        // Taken apart here, so that the common tag (a literal name, a value that owns
        // nothing) is dropped with two tests and no call to the tag's general drop.
        let Self { name, value } = self;
        if let Cow::Owned(name) = name {
            drop(name);
        }
        // An inlined tag's value is borrowed, numeric or boolean: nothing to free (testing
        // which one it is costs more than the rest of the drop).
        debug_assert!(!matches!(value, TagValue::String(Cow::Owned(_))));
        std::mem::forget(value);
    }
}

/// A second inline tag, in 8 bytes: a boolean or an integer that fits in 32 bits, its
/// name's index, and whether it was written before the [`InlineTag`] beside it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SmallTag {
    Bool {
        /// Interned name indices are below [`MAX_NAMES`], so they fit.
        name: u16,
        /// Written before the other inline tag.
        earlier: bool,
        value: bool,
    },
    Int {
        name: u16,
        earlier: bool,
        value: i32,
    },
}

const _: () = assert!(MAX_NAMES <= u16::MAX as usize + 1);
const _: () = assert!(std::mem::size_of::<Option<SmallTag>>() == 8);

impl SmallTag {
    /// `tag` in the small form, if its value is boolean or a small enough integer.
    fn of(tag: InlineTag, earlier: bool) -> Option<Self> {
        match tag {
            InlineTag::Bool(name, value) => Some(SmallTag::Bool {
                name: name as u16,
                earlier,
                value,
            }),
            InlineTag::Int(name, value) => Some(SmallTag::Int {
                name: name as u16,
                earlier,
                value: i32::try_from(value).ok()?,
            }),
            InlineTag::Str(..) | InlineTag::Float(..) => None,
        }
    }

    fn name(self) -> u16 {
        let (SmallTag::Bool { name, .. } | SmallTag::Int { name, .. }) = self;
        name
    }

    fn earlier(self) -> bool {
        let (SmallTag::Bool { earlier, .. } | SmallTag::Int { earlier, .. }) = self;
        earlier
    }

    fn to_inline(self) -> InlineTag {
        match self {
            SmallTag::Bool { name, value, .. } => InlineTag::Bool(u32::from(name), value),
            SmallTag::Int { name, value, .. } => InlineTag::Int(u32::from(name), i64::from(value)),
        }
    }
}

/// The tags a span keeps inline: none, one, or two (see the module docs). The same type in
/// a live span and its record, so that finishing moves it. More tags live in the span
/// limits' storage (`limits`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct InlineTags {
    first: Option<InlineTag>,
    /// Only beside a first one.
    second: Option<SmallTag>,
}

const _: () = assert!(std::mem::size_of::<InlineTags>() == 32);

impl InlineTags {
    /// No tag.
    pub(crate) const fn new() -> Self {
        Self {
            first: None,
            second: None,
        }
    }

    /// `true` without a tag.
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// How many tags there are.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + usize::from(self.second.is_some())
    }

    /// The tags, in the order they were written.
    pub(crate) fn get(&self) -> InlineList {
        match (self.first, self.second) {
            (first, None) => InlineList([first, None]),
            (first, Some(second)) if second.earlier() => {
                InlineList([Some(second.to_inline()), first])
            }
            (first, Some(second)) => InlineList([first, Some(second.to_inline())]),
        }
    }

    /// The only tag, if there is one and no other; `None` inside when there is none;
    /// `None` when there are two.
    pub(crate) fn single(&self) -> Option<Option<InlineTag>> {
        self.second.is_none().then_some(self.first)
    }

    /// `true` when a tag named `name` is kept here.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get().into_iter().any(|tag| tag.name() == name)
    }

    /// Sets `new` inline if it can be, as the span limits set tags: it replaces the tag of
    /// the same name (and becomes the last written), or is added. `false`, with nothing
    /// changed, when the tags with it cannot all be inline: the caller keeps them apart.
    /// The caller has checked the attribute limit.
    #[inline]
    pub(crate) fn try_set(&mut self, new: InlineTag) -> bool {
        let Some(first) = self.first else {
            self.first = Some(new);
            return true;
        };
        // The tag that stays beside the new one, if any. Names are interned by their
        // bytes: the same name has the same index.
        let name = new.name_index();
        let stays = match self.second {
            None if first.name_index() == name => None,
            None => Some(first),
            Some(second) if first.name_index() == name => Some(second.to_inline()),
            Some(second) if u32::from(second.name()) == name => Some(first),
            Some(_) => return false,
        };
        let Some(earlier) = stays else {
            self.first = Some(new);
            return true;
        };
        // One of the two must fit the small slot; the order of writes is kept.
        let tags = if let Some(second) = SmallTag::of(new, false) {
            Self {
                first: Some(earlier),
                second: Some(second),
            }
        } else if let Some(second) = SmallTag::of(earlier, true) {
            Self {
                first: Some(new),
                second: Some(second),
            }
        } else {
            return false;
        };
        *self = tags;
        true
    }

    /// The inline tags of a span whose first tags are `earlier` then `later`, if both can
    /// be inline: what [`try_set`](Self::try_set) for each would keep, in one step.
    #[inline]
    pub(crate) fn pair(earlier: &Tag, later: &Tag) -> Option<Self> {
        let (earlier, later) = (InlineTag::of(earlier)?, InlineTag::of(later)?);
        let (first, second) = if earlier.name_index() == later.name_index() {
            (later, None)
        } else if let Some(second) = SmallTag::of(later, false) {
            (earlier, Some(second))
        } else {
            (later, Some(SmallTag::of(earlier, true)?))
        };
        Some(Self {
            first: Some(first),
            second,
        })
    }

    /// Empties the inline tags, returning them in order as `Tag`s but for the one named
    /// `except`: they are moving to the span limits' storage, which a tag named `except`
    /// is joining.
    pub(crate) fn take_except(&mut self, except: &str) -> SmallVec<[Tag; 2]> {
        let tags = std::mem::take(self).get();
        tags.into_iter()
            .filter(|tag| tag.name() != except)
            .map(InlineTag::to_tag)
            .collect()
    }
}

/// A span's inline tags in the order they were written ([`InlineTags::get`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InlineList([Option<InlineTag>; 2]);

impl InlineList {
    /// Each tag through `f`, in order.
    pub(crate) fn map<T>(self, f: impl FnMut(InlineTag) -> T) -> SmallVec<[T; 2]> {
        self.into_iter().map(f).collect()
    }
}

impl IntoIterator for InlineList {
    type Item = InlineTag;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<InlineTag>, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// Interned names, by index; each set once and never changed.
static NAMES: [OnceLock<&'static str>; MAX_NAMES] = [const { OnceLock::new() }; MAX_NAMES];

/// The index of each interned name, for interning; read only on a thread's cache miss.
static INDEX: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);

/// Slots of a thread's cache of the names it interned, by a hash of their bytes.
const CACHE_SLOTS: usize = 256;

/// A name this thread interned: its [`words`], length and index plus one (0: empty slot).
#[derive(Clone, Copy)]
struct CachedName {
    words: [u64; 2],
    len: u32,
    index: u32,
}

thread_local! {
    static CACHE: [Cell<CachedName>; CACHE_SLOTS] = const {
        [const {
            Cell::new(CachedName {
                words: [0; 2],
                len: 0,
                index: 0,
            })
        }; CACHE_SLOTS]
    };
}

/// Set once every index is taken: a name not known by then is not looked up.
static FULL: AtomicBool = AtomicBool::new(false);

fn name_of(index: u32) -> &'static str {
    // Only indices handed out by `intern` exist, and each was set before it was.
    NAMES[index as usize].get().copied().unwrap_or("")
}

/// Up to [`WORDS_TELL`] bytes, two words read from a name (overlapping, at its start and
/// end) that, with its length, tell it apart from any other name; the start and end of a
/// longer one. In a few loads, whatever the length: a name is hashed and recognised with
/// no loop and no call.
fn words(bytes: &[u8]) -> [u64; 2] {
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().unwrap_or([0; 4]),
        ))
    };
    match n {
        8.. => [word(0), word(n - 8)],
        4..8 => [half(0), half(n - 4)],
        1..4 => [
            u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16,
            0,
        ],
        0 => [0; 2],
    }
}

/// Names up to this long are told apart by their [`words`] and length alone.
const WORDS_TELL: usize = 16;

/// A cache slot for a name's words and length.
fn slot_of(words: [u64; 2], len: usize) -> usize {
    let mixed =
        (words[0] ^ words[1].rotate_left(29) ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 32) as usize % CACHE_SLOTS
}

/// The index of the interned `name`, interning it if there is room; `None` when there is
/// not (or it is too long).
#[inline]
fn intern(name: &str) -> Option<u32> {
    if name.len() > MAX_NAME_LEN {
        return None;
    }
    // By the name's bytes, not its address: an owned name made anew for every span still
    // hits.
    let words = words(name.as_bytes());
    let slot = slot_of(words, name.len());
    let cached = CACHE.try_with(|cache| cache[slot].get());
    if let Ok(cached) = cached
        && cached.words == words
        && cached.len as usize == name.len()
        && let Some(index) = cached.index.checked_sub(1)
        && (name.len() <= WORDS_TELL || name_of(index) == name)
    {
        return Some(index);
    }
    intern_missed(name, words, slot)
}

/// Slots of a thread's cache of the `'static` names it interned, by address.
const STATIC_SLOTS: usize = 64;

thread_local! {
    /// Per slot: a `'static` name's address and length, and its index plus one (0: empty).
    static BY_ADDRESS: [Cell<(usize, usize, u32)>; STATIC_SLOTS] =
        const { [const { Cell::new((0, 0, 0)) }; STATIC_SLOTS] };
}

/// [`intern`] for a `'static` name: by its address and length, which name the same bytes for
/// the life of the process (a `'static` string is never freed nor changed), so a hit reads
/// none of them.
#[inline]
fn intern_static(name: &'static str) -> Option<u32> {
    let key = (name.as_ptr() as usize, name.len());
    let hash = (key.0 ^ key.1).wrapping_mul(0x9e37_79b9_7f4a_7c15_u64 as usize);
    let slot = hash >> (usize::BITS - STATIC_SLOTS.trailing_zeros());
    if let Ok((address, len, index)) = BY_ADDRESS.try_with(|cache| cache[slot].get())
        && (address, len) == key
        && let Some(index) = index.checked_sub(1)
    {
        return Some(index);
    }
    intern_static_missed(name, key, slot)
}

/// [`intern_static`] when this thread's cache missed: out of line, so that the hit stays
/// small.
#[cold]
#[inline(never)]
fn intern_static_missed(name: &'static str, key: (usize, usize), slot: usize) -> Option<u32> {
    let index = intern(name)?;
    let _ = BY_ADDRESS.try_with(|cache| cache[slot].set((key.0, key.1, index + 1)));
    Some(index)
}

/// [`intern`] when this thread's cache missed: out of line, so that the hit stays small.
#[cold]
#[inline(never)]
fn intern_missed(name: &str, words: [u64; 2], slot: usize) -> Option<u32> {
    let index = intern_slow(name)?;
    let _ = CACHE.try_with(|cache| {
        cache[slot].set(CachedName {
            words,
            len: name.len() as u32,
            index: index + 1,
        })
    });
    Some(index)
}

#[cold]
fn intern_slow(name: &str) -> Option<u32> {
    if FULL.load(Ordering::Relaxed) {
        return None;
    }
    let mut index = INDEX.lock();
    let index = index.get_or_insert_with(HashMap::new);
    if let Some(&known) = index.get(name) {
        return Some(known);
    }
    if index.len() >= MAX_NAMES {
        FULL.store(true, Ordering::Relaxed);
        return None;
    }
    let next = index.len() as u32;
    // Bounded by MAX_NAMES × MAX_NAME_LEN for the life of the process.
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let _ = NAMES[next as usize].set(leaked);
    index.insert(leaked, next);
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_numeric_and_boolean_values_inline_owned_strings_do_not() {
        for tag in [
            Tag::new("k", "v"),
            Tag::new("k", true),
            Tag::new("k", 7i64),
            Tag::new("k", 1.5f64),
        ] {
            let inline = InlineTag::of(&tag).expect("inlined");
            assert_eq!(inline.name(), "k");
            assert_eq!(inline.to_tag().value(), tag.value());
        }
        assert_eq!(InlineTag::of(&Tag::new("k", String::from("v"))), None);
    }

    #[test]
    fn an_owned_name_is_interned_by_its_bytes_not_its_address() {
        let first = String::from("tags_test.owned");
        let index = intern(&first).unwrap();
        drop(first);
        // Whatever reuses the address, a different name gets a different index.
        let other = String::from("tags_test.other");
        assert_ne!(intern(&other), Some(index));
        assert_eq!(name_of(intern(&other).unwrap()), "tags_test.other");
        assert_eq!(intern(&String::from("tags_test.owned")), Some(index));
    }

    #[test]
    fn a_static_name_gets_the_index_its_bytes_get_at_any_address() {
        let literal: &'static str = "tags_test.static";
        // The same bytes at another `'static` address, and as a name made at run time.
        let leaked: &'static str = Box::leak(String::from("tags_test.static").into_boxed_str());
        let index = intern_static(literal).unwrap();
        assert_eq!(intern_static(literal), Some(index), "a cache hit");
        assert_eq!(intern_static(leaked), Some(index));
        assert_eq!(intern(&String::from("tags_test.static")), Some(index));
        assert_ne!(intern_static("tags_test.statik"), Some(index));
        let long: &'static str = "x".repeat(MAX_NAME_LEN + 1).leak();
        assert_eq!(intern_static(long), None);
    }

    #[test]
    fn a_macro_tag_inlines_as_the_same_tag_would() {
        let pairs = [
            (MacroTag::new("k", "v"), Tag::new("k", "v")),
            (MacroTag::new(String::from("k"), 7i64), Tag::new("k", 7i64)),
            (MacroTag::new("k", true), Tag::new(String::from("k"), true)),
            (MacroTag::new("k", 1.5f64), Tag::new("k", 1.5f64)),
        ];
        for (macro_tag, tag) in pairs {
            assert_eq!(NewTag::inline(&macro_tag), InlineTag::of(&tag));
            assert!(NewTag::inline(&macro_tag).is_some());
            let back = macro_tag.into_tag();
            assert_eq!((back.name(), back.value()), (tag.name(), tag.value()));
        }
        assert_eq!(NewTag::inline(&MacroTag::new("k", String::from("v"))), None);
    }

    #[test]
    fn a_name_too_long_is_not_interned() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(intern(&long), None);
        assert_eq!(InlineTag::of(&Tag::new(long, "v")), None);
    }
}
