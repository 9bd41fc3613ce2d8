//! Server span names, `"{METHOD} {route}"`, as `&'static str`s: interned once per distinct
//! name, so that a request's span name costs neither an allocation nor a copy in the live
//! registry or in the span's record (both keep a `&'static str` as it is, and copy an owned
//! name).
//!
//! Routes are templates (`/users/{id}`), few per service, so the names are few. The table is
//! bounded all the same ([`MAX_NAMES`] names of at most [`MAX_NAME_LEN`] bytes, leaked for
//! the life of the process: at most 512 KiB), since a route closure may return raw paths:
//! once it is full, or for a longer name, a name is built as an owned `String` per request,
//! as before interning. Each thread keeps a small cache of the names it used, so that a hit
//! takes no lock.
//!
//! This module owns only the names; the layer decides when a span is named.

use parking_lot::Mutex;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most distinct names interned per process.
pub(crate) const MAX_NAMES: usize = 4096;
/// Longest name interned, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Slots of a thread's cache, by a hash of the name's parts.
const CACHE_SLOTS: usize = 64;

thread_local! {
    /// Per slot, a name this thread used (empty: none yet).
    static CACHE: [Cell<&'static str>; CACHE_SLOTS] = const { [const { Cell::new("") }; CACHE_SLOTS] };
}

/// Every interned name, for interning; locked only on a thread's cache miss.
static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// Set once the table is full: a name not cached by then is built per request.
static FULL: AtomicBool = AtomicBool::new(false);

/// The span name `"{method} {route}"`: interned when there is room, else owned.
pub(crate) fn span_name(method: &'static str, route: &str) -> Cow<'static, str> {
    let len = method.len() + 1 + route.len();
    if len > MAX_NAME_LEN {
        return Cow::Owned(build(method, route));
    }
    let slot = hash(method, route) % CACHE_SLOTS;
    let cached = CACHE.try_with(|cache| cache[slot].get()).unwrap_or("");
    if is_name_of(cached, method, route) {
        return Cow::Borrowed(cached);
    }
    match intern(method, route) {
        Some(name) => {
            let _ = CACHE.try_with(|cache| cache[slot].set(name));
            Cow::Borrowed(name)
        }
        None => Cow::Owned(build(method, route)),
    }
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

/// A fast hash of the name's parts (the method is one of a few literals: its length and
/// first byte tell them apart well enough for a cache slot).
fn hash(method: &str, route: &str) -> usize {
    let first = method.as_bytes().first().copied().unwrap_or(0);
    let mut hash = (route.len() as u64) ^ (u64::from(first) << 32);
    for chunk in route.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        hash ^= hash >> 29;
    }
    (hash ^ method.len() as u64) as usize
}

#[cold]
fn intern(method: &str, route: &str) -> Option<&'static str> {
    let name = build(method, route);
    if FULL.load(Ordering::Relaxed) {
        return None;
    }
    let mut names = NAMES.lock();
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(&known) = names.get(name.as_str()) {
        return Some(known);
    }
    if names.len() >= MAX_NAMES {
        FULL.store(true, Ordering::Relaxed);
        return None;
    }
    // Bounded by MAX_NAMES × MAX_NAME_LEN for the life of the process.
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_interned_once_and_found_again() {
        let first = span_name("GET", "/span_names_test/{id}");
        assert!(matches!(first, Cow::Borrowed(_)));
        assert_eq!(first, "GET /span_names_test/{id}");
        let route = String::from("/span_names_test/{id}");
        let again = span_name("GET", &route);
        assert_eq!(again.as_ptr(), first.as_ptr(), "the same interned name");
        // Another method, another name.
        assert_eq!(span_name("POST", &route), "POST /span_names_test/{id}");
    }

    #[test]
    fn a_name_too_long_is_owned() {
        let route = "/".repeat(MAX_NAME_LEN);
        let name = span_name("GET", &route);
        assert!(matches!(name, Cow::Owned(_)));
        assert_eq!(name.len(), 4 + MAX_NAME_LEN);
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
