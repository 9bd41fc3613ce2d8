//! Strings a server span records per request that take few distinct values, as
//! `&'static str`s: its name `"{METHOD} {route}"`, and its `server.address`. Each distinct
//! value is interned once, so that a request costs neither an allocation for it nor a copy
//! in the live registry or the span's record (both keep a `&'static str` as it is, and copy
//! an owned string).
//!
//! Routes are templates (`/users/{id}`) and a service answers to few host names, so the
//! values are few. The tables are bounded all the same ([`MAX_VALUES`] values of at most
//! [`MAX_LEN`] bytes per table, leaked for the life of the process: at most 512 KiB each),
//! since a route closure may return raw paths and a `Host` header says what the client
//! wants: once a table is full, or for a longer value, the value is an owned `String` per
//! request, as without interning. Each thread keeps a small cache of the values it used, so
//! that a hit takes no lock.
//!
//! This module owns only the strings; the layer decides what a span records.

use parking_lot::Mutex;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::LocalKey;

/// Most distinct values interned per table.
pub(crate) const MAX_VALUES: usize = 4096;
/// Longest value interned, in bytes.
pub(crate) const MAX_LEN: usize = 128;

/// Slots of a thread's cache, by a hash of the value.
const CACHE_SLOTS: usize = 64;

/// Per slot, a value this thread used (empty: none yet).
type Cache = [Cell<&'static str>; CACHE_SLOTS];

thread_local! {
    static NAME_CACHE: Cache = const { [const { Cell::new("") }; CACHE_SLOTS] };
    static HOST_CACHE: Cache = const { [const { Cell::new("") }; CACHE_SLOTS] };
}

/// A bounded set of interned values.
struct Table {
    /// Locked only on a thread's cache miss.
    values: Mutex<Option<HashSet<&'static str>>>,
    /// Set once the table is full: a value not cached by then is not looked up.
    full: AtomicBool,
}

impl Table {
    const fn new() -> Self {
        Self {
            values: Mutex::new(None),
            full: AtomicBool::new(false),
        }
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    #[cold]
    fn intern(&self, value: &str) -> Option<&'static str> {
        let mut values = self.values.lock();
        let values = values.get_or_insert_with(HashSet::new);
        if let Some(&known) = values.get(value) {
            return Some(known);
        }
        if values.len() >= MAX_VALUES {
            self.full.store(true, Ordering::Relaxed);
            return None;
        }
        // Bounded by MAX_VALUES × MAX_LEN for the life of the process.
        let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
        values.insert(leaked);
        Some(leaked)
    }
}

static NAMES: Table = Table::new();
static HOSTS: Table = Table::new();

/// The interned value `is_it` recognises (hashed as `hash`), from this thread's `cache`,
/// else from `table` (built by `build`), else owned.
#[inline]
fn lookup(
    cache: &'static LocalKey<Cache>,
    table: &Table,
    hash: usize,
    is_it: impl Fn(&str) -> bool,
    build: impl FnOnce() -> String,
) -> Cow<'static, str> {
    let slot = hash % CACHE_SLOTS;
    let cached = cache.try_with(|cache| cache[slot].get()).unwrap_or("");
    if is_it(cached) {
        return Cow::Borrowed(cached);
    }
    let value = build();
    if table.is_full() {
        return Cow::Owned(value);
    }
    match table.intern(&value) {
        Some(interned) => {
            let _ = cache.try_with(|cache| cache[slot].set(interned));
            Cow::Borrowed(interned)
        }
        None => Cow::Owned(value),
    }
}

/// The span name `"{method} {route}"`: interned when there is room, else owned.
pub(crate) fn span_name(method: &'static str, route: &str) -> Cow<'static, str> {
    if method.len() + 1 + route.len() > MAX_LEN {
        return Cow::Owned(build(method, route));
    }
    let first = method.as_bytes().first().copied().unwrap_or(0);
    let hash = hash(
        route.as_bytes(),
        u64::from(first) << 32 | method.len() as u64,
    );
    lookup(
        &NAME_CACHE,
        &NAMES,
        hash,
        |name| is_name_of(name, method, route),
        || build(method, route),
    )
}

/// A `server.address`: interned when there is room, else owned.
pub(crate) fn host(host: &str) -> Cow<'static, str> {
    if host.len() > MAX_LEN {
        return Cow::Owned(host.to_owned());
    }
    lookup(
        &HOST_CACHE,
        &HOSTS,
        hash(host.as_bytes(), 0),
        // An empty cache slot is never a host: an empty host is not interned.
        |cached| cached == host && !host.is_empty(),
        || host.to_owned(),
    )
}

/// `true` when `name` is `"{method} {route}"`.
fn is_name_of(name: &str, method: &str, route: &str) -> bool {
    name.len() == method.len() + 1 + route.len()
        && name.as_bytes()[method.len() + 1..] == *route.as_bytes()
        && name.as_bytes()[..method.len()] == *method.as_bytes()
        && name.as_bytes()[method.len()] == b' '
}

/// `"{method} {route}"` in one allocation of the exact size.
fn build(method: &str, route: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    name
}

/// A fast hash of `bytes`, mixed with `seed`, for a cache slot.
fn hash(bytes: &[u8], seed: u64) -> usize {
    let mut hash = (bytes.len() as u64) ^ seed;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        hash ^= hash >> 29;
    }
    hash as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_interned_once_and_found_again() {
        let first = span_name("GET", "/interned_test/{id}");
        assert!(matches!(first, Cow::Borrowed(_)));
        assert_eq!(first, "GET /interned_test/{id}");
        let route = String::from("/interned_test/{id}");
        let again = span_name("GET", &route);
        assert_eq!(again.as_ptr(), first.as_ptr(), "the same interned name");
        // Another method, another name.
        assert_eq!(span_name("POST", &route), "POST /interned_test/{id}");
    }

    #[test]
    fn a_host_is_interned_once_and_found_again() {
        let first = host("interned-test.example");
        assert!(matches!(first, Cow::Borrowed(_)));
        let again = host(&String::from("interned-test.example"));
        assert_eq!(again.as_ptr(), first.as_ptr());
        assert_eq!(
            host("other.interned-test.example"),
            "other.interned-test.example"
        );
        assert_eq!(host(""), "");
    }

    #[test]
    fn a_value_too_long_is_owned() {
        let route = "/".repeat(MAX_LEN);
        let name = span_name("GET", &route);
        assert!(matches!(name, Cow::Owned(_)));
        assert_eq!(name.len(), 4 + MAX_LEN);
        assert!(matches!(host(&"h".repeat(MAX_LEN + 1)), Cow::Owned(_)));
    }

    #[test]
    fn a_name_is_only_its_own_parts() {
        assert!(is_name_of("GET /a", "GET", "/a"));
        assert!(!is_name_of("GET /b", "GET", "/a"));
        assert!(!is_name_of("PUT /a", "GET", "/a"));
        assert!(!is_name_of("GET/a ", "GET", "/a"));
        assert!(!is_name_of("", "GET", "/a"));
    }
}
