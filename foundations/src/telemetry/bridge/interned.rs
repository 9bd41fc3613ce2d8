//! Strings the bridges record per span that take few distinct values, as `&'static str`s: a
//! server span's name `"{METHOD} {route}"`, its `server.address` and its
//! `user_agent.original`, and the string values of `tracing` span fields that keep coming back
//! (`kind = "db"`, `status = "ok"`). Each
//! distinct value is interned once, so that a span costs no allocation for it: a
//! `&'static str` tag value is kept inline in the span and its record (see the core's `tags`
//! module), where an owned one needs a `String` per span, freed on the exporter's thread.
//!
//! Routes are templates (`/users/{id}`) and a service answers to few host names, so those
//! values are few. A field's value, or a user agent, is interned only once a thread has seen
//! it [`SIGHTINGS`] times (about in a row: a thread counts one candidate per cache slot), so
//! that ids and other one-off values, which rarely come back that often, stay owned (a
//! service's callers are mostly a few clients, each sending its own agent on every request).
//! The
//! tables are bounded all the same ([`MAX_VALUES`] values of at most [`MAX_LEN`] bytes per
//! table, leaked for the life of the process: at most 512 KiB each), since a route closure
//! may return raw paths, a `Host` header says what the client wants, and a field may carry
//! anything: once a table is full, or for a longer value, the value is an owned `String`
//! per span, as without interning. Each thread keeps a small cache of the values it used,
//! so that a hit takes no lock.
//!
//! This module owns only the strings; the layers decide what a span records.

use parking_lot::Mutex;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "tower")]
use std::thread::LocalKey;

/// Most distinct values interned per table.
pub(crate) const MAX_VALUES: usize = 4096;
/// Longest value interned, in bytes.
pub(crate) const MAX_LEN: usize = 128;

/// Sightings on one thread after which a field's value is interned.
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
pub(crate) const SIGHTINGS: u32 = 8;

/// Slots of a thread's cache, by a hash of the value.
const CACHE_SLOTS: usize = 64;

/// Per slot, a value this thread used (empty: none yet).
#[cfg(feature = "tower")]
type Cache = [Cell<&'static str>; CACHE_SLOTS];

#[cfg(feature = "tower")]
thread_local! {
    static NAME_CACHE: Cache = const { [const { Cell::new("") }; CACHE_SLOTS] };
    static HOST_CACHE: Cache = const { [const { Cell::new("") }; CACHE_SLOTS] };
}

/// A slot of a thread's cache of field values: an interned value it used, and the value
/// it is counting the sightings of (by hash) until that one is interned.
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
#[derive(Clone, Copy)]
struct ValueSlot {
    interned: &'static str,
    candidate: u64,
    sightings: u32,
}

#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
thread_local! {
    static VALUE_CACHE: [Cell<ValueSlot>; CACHE_SLOTS] = const {
        [const {
            Cell::new(ValueSlot {
                interned: "",
                candidate: 0,
                sightings: 0,
            })
        }; CACHE_SLOTS]
    };
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

#[cfg(feature = "tower")]
static NAMES: Table = Table::new();
#[cfg(feature = "tower")]
static HOSTS: Table = Table::new();
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
static VALUES: Table = Table::new();

/// The interned value `is_it` recognises (hashed as `hash`), from this thread's `cache`,
/// else from `table` (built by `build`), else owned.
#[cfg(feature = "tower")]
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

/// A `tracing` field's string value: interned once this thread has seen it [`SIGHTINGS`]
/// times and while there is room, else owned (an owned `value` is moved, not copied).
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
#[inline]
pub(crate) fn field_value(value: Cow<'_, str>) -> Cow<'static, str> {
    if value.len() > MAX_LEN {
        return Cow::Owned(value.into_owned());
    }
    let hash = short_hash(value.as_bytes());
    let slot = hash % CACHE_SLOTS;
    let hit = VALUE_CACHE.try_with(|cache| {
        let interned = cache[slot].get().interned;
        // An empty slot's value is the empty value: right for it too.
        (interned == value).then_some(interned)
    });
    match hit {
        Ok(Some(interned)) => Cow::Borrowed(interned),
        _ => field_value_missed(value, hash, slot),
    }
}

/// [`field_value`] when this thread's cache missed: counts a sighting, and interns the
/// value at the last. Out of line, so that the hit stays small.
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
#[inline(never)]
fn field_value_missed(value: Cow<'_, str>, hash: usize, slot: usize) -> Cow<'static, str> {
    let interned = VALUE_CACHE.try_with(|cache| {
        let mut entry = cache[slot].get();
        if entry.candidate != hash as u64 {
            entry.candidate = hash as u64;
            entry.sightings = 0;
        }
        entry.sightings += 1;
        let mut interned = None;
        if entry.sightings >= SIGHTINGS
            && !VALUES.is_full()
            && let Some(value) = VALUES.intern(&value)
        {
            entry.interned = value;
            entry.sightings = 0;
            interned = Some(value);
        }
        cache[slot].set(entry);
        interned
    });
    match interned {
        Ok(Some(interned)) => Cow::Borrowed(interned),
        _ => Cow::Owned(value.into_owned()),
    }
}

/// A request's `user_agent.original`: interned as a field value is (once seen often on this
/// thread, while there is room), else owned.
#[cfg(feature = "tower")]
#[inline]
pub(crate) fn user_agent(agent: &str) -> Cow<'static, str> {
    field_value(Cow::Borrowed(agent))
}

/// The span name `"{method} {route}"`: interned when there is room, else owned.
#[cfg(feature = "tower")]
pub(crate) fn span_name(method: &'static str, route: &str) -> Cow<'static, str> {
    if method.len() + 1 + route.len() > MAX_LEN {
        return Cow::Owned(build(method, route));
    }
    // The method's first byte and length tell the standard ones apart.
    let first = method.as_bytes().first().copied().unwrap_or(0);
    let hash = short_hash(route.as_bytes()) ^ usize::from(first) ^ method.len() << 3;
    lookup(
        &NAME_CACHE,
        &NAMES,
        hash,
        |name| is_name_of(name, method, route),
        || build(method, route),
    )
}

/// A `server.address`: interned when there is room, else owned.
#[cfg(feature = "tower")]
pub(crate) fn host(host: &str) -> Cow<'static, str> {
    if host.len() > MAX_LEN {
        return Cow::Owned(host.to_owned());
    }
    lookup(
        &HOST_CACHE,
        &HOSTS,
        short_hash(host.as_bytes()),
        // An empty cache slot is never a host: an empty host is not interned.
        |cached| cached == host && !host.is_empty(),
        || host.to_owned(),
    )
}

/// `true` when `name` is `"{method} {route}"`.
#[cfg(feature = "tower")]
#[inline]
pub(crate) fn is_name_of(name: &str, method: &str, route: &str) -> bool {
    name.len() == method.len() + 1 + route.len()
        && name.as_bytes()[method.len() + 1..] == *route.as_bytes()
        && name.as_bytes()[..method.len()] == *method.as_bytes()
        && name.as_bytes()[method.len()] == b' '
}

/// `"{method} {route}"` in one allocation of the exact size.
#[cfg(feature = "tower")]
fn build(method: &str, route: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    name
}

/// A hash of `bytes` for a cache slot, in a few loads for up to 16 bytes (the start and the
/// end, overlapping, cover them all) and no call.
#[cfg(any(feature = "tracing-bridge", feature = "tower"))]
fn short_hash(bytes: &[u8]) -> usize {
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().unwrap_or([0; 4]),
        ))
    };
    let (a, b) = match n {
        17.. => return hash(bytes, 0),
        8.. => (word(0), word(n - 8)),
        4..8 => (half(0), half(n - 4)),
        1..4 => (
            u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16,
            0,
        ),
        0 => (0, 0),
    };
    let mixed = (a ^ b.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed ^ mixed >> 32) as usize
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

    #[cfg(feature = "tracing-bridge")]
    #[test]
    fn a_field_value_is_interned_once_seen_often_on_a_thread() {
        let value = || Cow::Owned(String::from("interned_test.field"));
        for _ in 1..SIGHTINGS {
            assert!(matches!(field_value(value()), Cow::Owned(_)));
        }
        let first = field_value(value());
        assert!(matches!(first, Cow::Borrowed(_)), "interned at last");
        assert_eq!(first, "interned_test.field");
        let again = field_value(Cow::Borrowed("interned_test.field"));
        assert_eq!(again.as_ptr(), first.as_ptr(), "the same interned value");
        // Another thread finds it in the table after its own sightings, and interns
        // nothing new for it.
        std::thread::spawn(move || {
            let found = (0..SIGHTINGS)
                .map(|_| field_value(value()))
                .find(|value| matches!(value, Cow::Borrowed(_)))
                .expect("interned");
            assert_eq!(found.as_ptr(), first.as_ptr());
        })
        .join()
        .unwrap();
    }

    #[cfg(feature = "tracing-bridge")]
    #[test]
    fn values_seen_once_each_are_not_interned() {
        for i in 0..10 * CACHE_SLOTS {
            let value = format!("interned_test.once.{i}");
            assert!(matches!(field_value(Cow::Borrowed(&value)), Cow::Owned(_)));
        }
        assert!(matches!(field_value(Cow::Borrowed("")), Cow::Borrowed("")));
        let long = "v".repeat(MAX_LEN + 1);
        for _ in 0..2 * SIGHTINGS {
            assert!(matches!(field_value(Cow::Borrowed(&long)), Cow::Owned(_)));
        }
    }

    #[cfg(feature = "tower")]
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

    #[cfg(feature = "tower")]
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

    #[cfg(feature = "tower")]
    #[test]
    fn a_value_too_long_is_owned() {
        let route = "/".repeat(MAX_LEN);
        let name = span_name("GET", &route);
        assert!(matches!(name, Cow::Owned(_)));
        assert_eq!(name.len(), 4 + MAX_LEN);
        assert!(matches!(host(&"h".repeat(MAX_LEN + 1)), Cow::Owned(_)));
    }

    #[cfg(feature = "tower")]
    #[test]
    fn a_name_is_only_its_own_parts() {
        assert!(is_name_of("GET /a", "GET", "/a"));
        assert!(!is_name_of("GET /b", "GET", "/a"));
        assert!(!is_name_of("PUT /a", "GET", "/a"));
        assert!(!is_name_of("GET/a ", "GET", "/a"));
        assert!(!is_name_of("", "GET", "/a"));
    }
}
