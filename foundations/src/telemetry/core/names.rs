//! Span names as small indices: each distinct `&'static str` a span is named with gets an
//! index once, for the life of the process, and the index names it from then on.
//!
//! A finished span's record keeps its name as this 4-byte index rather than a 16-byte
//! `&str` (the record's size is the queue's memory per span), and the live registry's
//! slots keep it in an atomic. Looking an index up costs a thread a probe of its own small
//! cache, keyed by the name's address and length (most threads name their spans with a few
//! literals); a miss takes the process-wide lock once per name and thread. Reading a name
//! back by its index takes no lock, from any thread.
//!
//! The list is bounded ([`MAX_NAMES`]; the names themselves are `'static`, only the list's
//! slots are leaked: at most 1.5 MiB, allocated in chunks as it grows). A name that does not
//! get an index (an owned name, or the list is full) is the caller's to keep another way.
//!
//! This module owns the list and the caches; it knows nothing about spans.

use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Most distinct names indexed per process.
pub(crate) const MAX_NAMES: usize = 1 << 16;

/// Names per chunk of the list.
const CHUNK: usize = 4096;

/// The list's slots, a chunk allocated when the list first reaches it; each slot set once.
static CHUNKS: [OnceLock<Box<[OnceLock<&'static str>]>>; MAX_NAMES / CHUNK] =
    [const { OnceLock::new() }; MAX_NAMES / CHUNK];

/// Indices by name (equal names at different addresses share one), and the next free
/// index: for a cache miss only.
static INDEX: Mutex<Option<(HashMap<&'static str, u32>, u32)>> = Mutex::new(None);

thread_local! {
    static CACHE: Cache = const { Cache::new() };
}

/// The index of `name`, giving it one if it has none; `None` once the list is full (or
/// while the thread exits).
#[inline]
pub(crate) fn index_of(name: &'static str) -> Option<u32> {
    CACHE.try_with(|cache| cache.index(name)).ok()?
}

/// The name with index `index`; `""` for an index never given.
#[inline]
pub(crate) fn name_at(index: u32) -> &'static str {
    let index = index as usize;
    CHUNKS
        .get(index / CHUNK)
        .and_then(OnceLock::get)
        .and_then(|chunk| chunk[index % CHUNK].get())
        .copied()
        .unwrap_or("")
}

/// A thread's cache of name indices by address.
struct Cache([Cell<(usize, usize, u32)>; 64]);

impl Cache {
    const fn new() -> Self {
        Self([const { Cell::new((0, 0, 0)) }; 64])
    }

    #[inline]
    fn index(&self, name: &'static str) -> Option<u32> {
        let key = (name.as_ptr() as usize, name.len());
        let hash = (key.0 ^ key.1).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
        let entry = &self.0[hash >> (usize::BITS - 6)];
        let (address, len, index) = entry.get();
        if (address, len) == key && address != 0 {
            return Some(index);
        }
        let index = index_slow(name)?;
        entry.set((key.0, key.1, index));
        Some(index)
    }
}

#[cold]
fn index_slow(name: &'static str) -> Option<u32> {
    let mut guard = INDEX.lock();
    let (index, next) = guard.get_or_insert_with(|| (HashMap::new(), 0));
    if let Some(&found) = index.get(name) {
        return Some(found);
    }
    let found = *next;
    if found as usize >= MAX_NAMES {
        return None;
    }
    let chunk = CHUNKS[found as usize / CHUNK]
        .get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
    // Set before the index is handed out: whoever reads the index can read the name.
    let _ = chunk[found as usize % CHUNK].set(name);
    index.insert(name, found);
    *next += 1;
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_index_and_reads_back_from_any_thread() {
        let first = index_of("names::tests::first").unwrap();
        assert_eq!(index_of("names::tests::first"), Some(first));
        let second = index_of("names::tests::second").unwrap();
        assert_ne!(first, second);
        let (a, b) =
            std::thread::spawn(move || (name_at(first), index_of("names::tests::second").unwrap()))
                .join()
                .unwrap();
        assert_eq!(a, "names::tests::first");
        assert_eq!(b, second, "the same index on another thread");
        assert_eq!(name_at(u32::MAX), "");
    }

    #[test]
    fn equal_names_at_different_addresses_share_an_index() {
        let leaked: &'static str = String::from("names::tests::leaked").leak();
        assert_eq!(index_of(leaked), index_of("names::tests::leaked"));
    }
}
