//! [`Routing`]: where a user trace's spans are delivered, resolved once per trace.
//!
//! The application describes a customer with a `RoutingMetadata`; its `encode()` is the
//! value of the routing header that every request carrying the trace's spans is sent
//! under. It is called here, exactly once per trace, the first time the header is asked
//! for: by the exporter, on its own thread, so that the thread recording the trace pays
//! for neither the application's formatting nor the string's allocation, which the
//! exporter's thread would free. The routing, and with it the header, travels with every
//! span of the trace. The exporter groups spans by that value and nothing else, so two
//! routings can only share a request when they encode to the same header (application
//! code such as `group_key()` is never asked to decide it), and a panicking `encode()`
//! costs only its own trace's spans, counted.
//!
//! Dropping a routing's last reference runs the application's `Drop` of its metadata, so
//! it must not happen while a scope stack is borrowed (that code may open spans). A span
//! ended in place holds a reference only while its record is refused (a full or closed
//! queue): [`drop_later`] keeps that reference on the thread until [`drop_deferred`], which
//! the stacks call once released.
//!
//! This module owns the resolution, its outcome, and those deferred drops. It knows nothing
//! of HTTP beyond the characters a header value may hold, and nothing of requests.

// Only the user pipeline (feature `user-tracing`) starts traces with a routing.
#![cfg_attr(not(feature = "user-tracing"), allow(dead_code))]

use cf_rustracing::span::RoutingMetadata;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// A user trace's routing: the header value the application's metadata encoded to, and
/// the metadata itself (last, unsized: one allocation holds both, see [`Routing::new`]).
pub(crate) struct Routing<M: ?Sized = dyn RoutingMetadata> {
    // A `String` as `encode()` made it: boxing it as a `str` could cost a reallocation.
    header: OnceLock<Result<String, RoutingFault>>,
    metadata: M,
}

/// Why a routing cannot be sent: its spans are dropped and counted under this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoutingFault {
    /// `encode()` panicked.
    Panicked,
    /// `encode()` returned something no HTTP header value may hold (a control character,
    /// a non-ASCII byte).
    InvalidHeader,
}

impl Routing {
    /// The routing of a trace described by `metadata`, its header not encoded yet (see
    /// [`Routing::header`]).
    pub(crate) fn new<M: RoutingMetadata + 'static>(metadata: M) -> Arc<Routing> {
        // Coerced to the unsized `Routing`: the metadata is not boxed apart.
        Arc::new(Routing {
            header: OnceLock::new(),
            metadata,
        })
    }

    /// Calls the application's `encode()`. A panic is caught (and logged at most once every
    /// 10 seconds per process): the trace still runs, its spans are counted as dropped when
    /// exported.
    fn encode(&self) -> Result<String, RoutingFault> {
        match catch_unwind(AssertUnwindSafe(|| self.metadata.encode())) {
            Ok(encoded) if is_header_value(&encoded) => Ok(encoded),
            Ok(_) => Err(RoutingFault::InvalidHeader),
            Err(_) => {
                log_panic_rate_limited();
                Err(RoutingFault::Panicked)
            }
        }
    }

    /// The application's description of the routing.
    pub(crate) fn metadata(&self) -> &dyn RoutingMetadata {
        &self.metadata
    }

    /// The routing header value the trace's spans are sent under, or why they cannot be:
    /// encoded on the first call, by whichever thread makes it, and the same from then on.
    pub(crate) fn header(&self) -> Result<&str, RoutingFault> {
        self.header
            .get_or_init(|| self.encode())
            .as_deref()
            .map_err(|fault| *fault)
    }
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// References dropped while a stack may be borrowed, to drop once it is not.
    static DEFERRED: RefCell<Vec<Arc<Routing>>> = const { RefCell::new(Vec::new()) };
}

/// Set once any thread defers a drop: until then, [`drop_deferred`] is one load.
static ANY_DEFERRED: AtomicBool = AtomicBool::new(false);

/// Keeps `routing` on this thread until [`drop_deferred`] (when the next scope ends on this
/// thread, or at its exit): a span that ends in place drops its reference here when its
/// record is refused.
#[cold]
#[inline(never)]
pub(crate) fn drop_later(routing: Arc<Routing>) {
    ANY_DEFERRED.store(true, Ordering::Relaxed);
    let mut routing = Some(routing);
    let _ = DEFERRED.try_with(|deferred| {
        if let Ok(mut deferred) = deferred.try_borrow_mut() {
            deferred.extend(routing.take());
        }
    });
    // Still here only while the thread exits: no stack is usable then anyway.
    drop(routing);
}

/// Drops what [`drop_later`] kept on this thread; call it with no scope stack borrowed.
#[inline(always)]
pub(crate) fn drop_deferred() {
    if ANY_DEFERRED.load(Ordering::Relaxed) {
        drop_deferred_now();
    }
}

#[cold]
#[inline(never)]
fn drop_deferred_now() {
    let taken = DEFERRED
        .try_with(|deferred| {
            deferred
                .try_borrow_mut()
                .map(|mut deferred| std::mem::take(&mut *deferred))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    // The application's drops run here, nothing of ours borrowed.
    drop(taken);
}

/// What `http::HeaderValue::from_str` accepts: visible ASCII, space and tab.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| byte == b'\t' || (0x20..0x7f).contains(&byte))
}

fn log_panic_rate_limited() {
    static LAST_LOG_SECS: AtomicU64 = AtomicU64::new(0);
    log_rate_limited(&LAST_LOG_SECS, || {
        log::error!(
            "foundations user tracing: a RoutingMetadata::encode() panicked; the spans of its \
             trace are dropped and counted (dropped_routing_panicked)"
        )
    });
}

/// Runs `log` unless it ran less than 10 seconds ago (by `last`, seconds since the epoch):
/// application code that panics on every span must not flood the logs.
pub(crate) fn log_rate_limited(last: &AtomicU64, log: impl FnOnce()) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let previous = last.load(Ordering::Relaxed);
    if now >= previous.saturating_add(10)
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log();
    }
}

/// One tenant's routing, for the crate's own unit tests.
#[cfg(all(test, feature = "user-tracing", feature = "testing"))]
#[derive(Debug)]
pub(crate) struct TestTenant;

#[cfg(all(test, feature = "user-tracing", feature = "testing"))]
impl RoutingMetadata for TestTenant {
    fn group_key(&self) -> String {
        "t".into()
    }

    fn encode(&self) -> String {
        "tenant=1".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Encodes(&'static str);

    impl RoutingMetadata for Encodes {
        fn group_key(&self) -> String {
            "same".into()
        }
        fn encode(&self) -> String {
            if self.0 == "panic" {
                panic!("encode failed");
            }
            self.0.into()
        }
    }

    #[test]
    fn encode_is_resolved_once_into_a_header_value_or_a_fault() {
        let ok = Routing::new(Encodes("tenant=1; plan=pro"));
        assert_eq!(ok.header(), Ok("tenant=1; plan=pro"));
        assert_eq!(ok.metadata().group_key(), "same");
        let invalid = Routing::new(Encodes("line\nbreak"));
        assert_eq!(invalid.header(), Err(RoutingFault::InvalidHeader));
        let non_ascii = Routing::new(Encodes("café"));
        assert_eq!(non_ascii.header(), Err(RoutingFault::InvalidHeader));
        let panicked = Routing::new(Encodes("panic"));
        assert_eq!(panicked.header(), Err(RoutingFault::Panicked));
    }

    /// Counts its `encode()` calls, and encodes to a different value on each.
    #[derive(Debug)]
    struct Counting(&'static AtomicU64);

    impl RoutingMetadata for Counting {
        fn group_key(&self) -> String {
            "same".into()
        }
        fn encode(&self) -> String {
            format!("call={}", self.0.fetch_add(1, Ordering::SeqCst))
        }
    }

    #[test]
    fn encode_runs_once_on_first_use_whichever_thread_asks() {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let routing = Routing::new(Counting(&CALLS));
        let calls = || CALLS.load(Ordering::SeqCst);
        assert_eq!(calls(), 0, "resolving a routing runs no application code");
        let headers: Vec<String> = std::thread::scope(|scope| {
            let asking: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| routing.header().map(str::to_owned)))
                .collect();
            asking
                .into_iter()
                .map(|thread| thread.join().unwrap().unwrap())
                .collect()
        });
        assert!(
            headers.iter().all(|header| header == "call=0"),
            "{headers:?}"
        );
        assert_eq!(routing.header(), Ok("call=0"));
        assert_eq!(calls(), 1);
    }
}
