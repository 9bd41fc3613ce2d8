//! Inline tag storage: the one tag a span (live, then finished) keeps without allocating,
//! in 24 bytes instead of the 56 of a `cf_rustracing` [`Tag`].
//!
//! Most recorded spans carry at most one tag, usually with a literal name and a literal,
//! numeric or boolean value. Such a tag is stored as an [`InlineTag`]: the value as it is
//! (a `&'static str` borrowed from the tag, never copied), the name as the index of an
//! interned name. A `Tag` cannot say whether its name is `'static`, so names are interned:
//! each thread remembers the names it met (a hit costs a short hash and one comparison of
//! the name's bytes), and a process-wide table gives each distinct name an
//! index once. The table is bounded ([`MAX_NAMES`] names of at most [`MAX_NAME_LEN`] bytes,
//! leaked for the life of the process: at most 64 KiB); a tag whose name does not fit, or
//! whose value is an owned string, is kept as a full `Tag` by the span limits' storage
//! instead (`limits`), as is every tag of a span with more than one.
//!
//! This module owns the inline representation and the interning; it does not decide which
//! tags a span keeps (that is `limits`).

use cf_rustracing::tag::{Tag, TagValue};
use parking_lot::Mutex;
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
    #[inline]
    pub(crate) fn of(tag: &Tag) -> Option<Self> {
        // The value first: an owned string is never inlined, whatever the name.
        let value = match tag.value() {
            TagValue::String(Cow::Borrowed(value)) => InlineValue::Str(value),
            TagValue::String(Cow::Owned(_)) => return None,
            TagValue::Boolean(value) => InlineValue::Bool(*value),
            TagValue::Integer(value) => InlineValue::Int(*value),
            TagValue::Float(value) => InlineValue::Float(*value),
        };
        let name = intern(tag.name())?;
        Some(match value {
            InlineValue::Str(value) => InlineTag::Str(name, value),
            InlineValue::Bool(value) => InlineTag::Bool(name, value),
            InlineValue::Int(value) => InlineTag::Int(name, value),
            InlineValue::Float(value) => InlineTag::Float(name, value),
        })
    }

    /// The tag's name.
    pub(crate) fn name(&self) -> &'static str {
        let (InlineTag::Str(name, _)
        | InlineTag::Bool(name, _)
        | InlineTag::Int(name, _)
        | InlineTag::Float(name, _)) = *self;
        name_of(name)
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

/// The tags a span keeps inline: none or one. The same type in a live span and its record,
/// so that finishing moves it. More tags live in the span limits' storage (`limits`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct InlineTags(pub(super) Option<InlineTag>);

impl InlineTags {
    /// No tag.
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    /// `true` without a tag.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The tag, if any.
    pub(crate) fn get(&self) -> Option<InlineTag> {
        self.0
    }
}

/// Interned names, by index; each set once and never changed.
static NAMES: [OnceLock<&'static str>; MAX_NAMES] = [const { OnceLock::new() }; MAX_NAMES];

/// The index of each interned name, for interning; read only on a thread's cache miss.
static INDEX: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);

/// Slots of a thread's cache of the names it interned, by a hash of their bytes.
const CACHE_SLOTS: usize = 256;

thread_local! {
    /// Per slot, the index of a name plus one (0: empty).
    static CACHE: [Cell<u32>; CACHE_SLOTS] = const { [const { Cell::new(0) }; CACHE_SLOTS] };
}

/// Set once every index is taken: a name not known by then is not looked up.
static FULL: AtomicBool = AtomicBool::new(false);

fn name_of(index: u32) -> &'static str {
    // Only indices handed out by `intern` exist, and each was set before it was.
    NAMES[index as usize].get().copied().unwrap_or("")
}

/// A fast hash of a short name's bytes.
fn hash(bytes: &[u8]) -> usize {
    let mut hash = bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        hash ^= hash >> 29;
    }
    hash as usize
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
    let slot = hash(name.as_bytes()) % CACHE_SLOTS;
    let cached = CACHE.try_with(|cache| cache[slot].get()).unwrap_or(0);
    if let Some(index) = cached.checked_sub(1)
        && name_of(index) == name
    {
        return Some(index);
    }
    let index = intern_slow(name)?;
    let _ = CACHE.try_with(|cache| cache[slot].set(index + 1));
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
    fn a_name_too_long_is_not_interned() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(intern(&long), None);
        assert_eq!(InlineTag::of(&Tag::new(long, "v")), None);
    }
}
