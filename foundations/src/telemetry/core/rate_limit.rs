//! The root-creation rate limit: a lock-free token bucket a harness asks before it records a
//! new root ([`RootRateLimiter`]).
//!
//! The bucket holds one second's worth of roots (`max_roots_per_second`) and refills
//! continuously. It is kept as one atomic word, the time at which the bucket is next full
//! (GCRA, the "generic cell rate algorithm"), so taking tokens is one compare-and-swap and
//! needs no lock.
//!
//! Threads take tokens from the bucket in small batches and spend them from a thread-local
//! counter: a root admitted from that counter costs a thread-local decrement, no atomic
//! operation and no clock read. A batch is at most a thousandth of the rate (one token
//! below 1,000 roots per second), so tokens held by idle threads can let through at most
//! one batch per thread more than the rate. A root the bucket refuses costs a clock read
//! and one atomic load; the harness then counts it (one atomic add).
//!
//! This module owns the bucket and its clock only: what a refused root becomes (unsampled)
//! and where it is counted are the harness's.

use super::pipeline::{PerPipeline, Pipeline};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The highest rate a limiter accepts; the settings refuse more.
pub(crate) const MAX_ROOTS_PER_SECOND: u64 = 10_000_000;

/// Where a limiter reads the time: the monotonic clock, or a test's hand-set one.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    /// Nanoseconds since the limiter was made.
    Monotonic(Instant),
    /// A fake clock, in nanoseconds, moved by the test that holds it.
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    fn now_nanos(&self) -> u64 {
        match self {
            Clock::Monotonic(origin) => {
                u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
            Clock::Manual(now) => now.load(Ordering::Relaxed),
        }
    }
}

/// Tokens a thread took from a limiter and has not spent yet, one cache per pipeline (so
/// that a thread starting an internal and a user root per request keeps both batches).
#[derive(Clone, Copy)]
struct Cached {
    /// The limiter the tokens came from (its `id`); 0 for none.
    limiter: u64,
    tokens: u64,
}

thread_local! {
    static CACHED: PerPipeline<Cell<Cached>> = const {
        PerPipeline::new(
            Cell::new(Cached { limiter: 0, tokens: 0 }),
            Cell::new(Cached { limiter: 0, tokens: 0 }),
        )
    };
}

/// Gives each limiter a distinct id for the thread-local caches.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A token bucket of `max_roots_per_second` tokens, refilled at that rate.
#[derive(Debug)]
pub(crate) struct RootRateLimiter {
    /// The time (on `clock`) at which the bucket is full again: never earlier than "now
    /// minus nothing", and a token is available while it is at most `capacity` ahead of now.
    full_at: AtomicU64,
    /// Time one token takes to refill.
    interval: u64,
    /// Time the whole bucket takes to refill: the most `full_at` may run ahead of now.
    capacity: u64,
    /// Tokens a thread takes at once.
    batch: u64,
    id: u64,
    clock: Clock,
}

impl RootRateLimiter {
    /// A limiter of `max_roots_per_second` (clamped to `1..=MAX_ROOTS_PER_SECOND`), full.
    pub(crate) fn new(max_roots_per_second: u64) -> Self {
        Self::with_clock(max_roots_per_second, Clock::Monotonic(Instant::now()))
    }

    /// A limiter reading `clock`.
    pub(crate) fn with_clock(max_roots_per_second: u64, clock: Clock) -> Self {
        let rate = max_roots_per_second.clamp(1, MAX_ROOTS_PER_SECOND);
        let interval = NANOS_PER_SECOND / rate;
        Self {
            full_at: AtomicU64::new(0),
            interval,
            capacity: interval * rate,
            batch: (rate / 1000).max(1),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            clock,
        }
    }

    /// Takes one token for a new root of pipeline `P`: `true` when the root may be
    /// recorded.
    #[inline]
    pub(crate) fn admit<P: Pipeline>(&self) -> bool {
        let from_cache = CACHED.try_with(|cached| {
            let cell = cached.get::<P>();
            let mut state = cell.get();
            if state.limiter == self.id && state.tokens > 0 {
                state.tokens -= 1;
                cell.set(state);
                return true;
            }
            false
        });
        match from_cache {
            Ok(true) => true,
            // The thread is being torn down: no cache, one token straight from the bucket.
            Err(_) => self.take(1) > 0,
            Ok(false) => self.refill::<P>(),
        }
    }

    /// The thread's cache is empty (or holds another limiter's tokens): takes a batch, keeps
    /// all but the one spent now.
    #[cold]
    #[inline(never)]
    fn refill<P: Pipeline>(&self) -> bool {
        let taken = self.take(self.batch);
        if taken == 0 {
            return false;
        }
        let _ = CACHED.try_with(|cached| {
            cached.get::<P>().set(Cached {
                limiter: self.id,
                tokens: taken - 1,
            })
        });
        true
    }

    /// Takes up to `wanted` tokens from the bucket; returns how many it took.
    fn take(&self, wanted: u64) -> u64 {
        let now = self.clock.now_nanos();
        let mut full_at = self.full_at.load(Ordering::Relaxed);
        loop {
            // An empty stretch since the bucket was last full does not bank tokens.
            let start = full_at.max(now);
            let room = (now + self.capacity).saturating_sub(start);
            let taken = (room / self.interval).min(wanted);
            if taken == 0 {
                return 0;
            }
            match self.full_at.compare_exchange_weak(
                full_at,
                start + taken * self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return taken,
                Err(actual) => full_at = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::core::pipeline::{Internal, User};

    fn limiter(rate: u64) -> (RootRateLimiter, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(0));
        let limiter = RootRateLimiter::with_clock(rate, Clock::Manual(Arc::clone(&now)));
        (limiter, now)
    }

    fn admitted<P: Pipeline>(limiter: &RootRateLimiter, tries: usize) -> usize {
        (0..tries).filter(|_| limiter.admit::<P>()).count()
    }

    #[test]
    fn a_full_bucket_admits_one_second_of_roots_then_refuses() {
        let (limiter, _now) = limiter(10);
        assert_eq!(admitted::<Internal>(&limiter, 25), 10);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let (limiter, now) = limiter(10);
        assert_eq!(admitted::<Internal>(&limiter, 10), 10);
        now.store(NANOS_PER_SECOND / 10 - 1, Ordering::Relaxed);
        assert_eq!(
            admitted::<Internal>(&limiter, 5),
            0,
            "not yet a whole token"
        );
        now.store(NANOS_PER_SECOND / 10, Ordering::Relaxed);
        assert_eq!(admitted::<Internal>(&limiter, 5), 1);
        now.store(
            NANOS_PER_SECOND / 2 + NANOS_PER_SECOND / 10,
            Ordering::Relaxed,
        );
        assert_eq!(admitted::<Internal>(&limiter, 10), 5);
    }

    #[test]
    fn an_idle_stretch_banks_at_most_a_full_bucket() {
        let (limiter, now) = limiter(10);
        now.store(3600 * NANOS_PER_SECOND, Ordering::Relaxed);
        assert_eq!(admitted::<Internal>(&limiter, 100), 10);
    }

    #[test]
    fn high_rates_hand_out_batches_and_still_hold_the_rate() {
        let (limiter, now) = limiter(1_000_000);
        assert_eq!(limiter.batch, 1000);
        assert_eq!(admitted::<Internal>(&limiter, 1_500_000), 1_000_000);
        now.store(NANOS_PER_SECOND / 100, Ordering::Relaxed);
        assert_eq!(admitted::<Internal>(&limiter, 20_000), 10_000);
    }

    #[test]
    fn the_pipelines_keep_their_batches_apart() {
        let (internal, _) = limiter(5_000);
        let (user, _) = limiter(5_000);
        // Alternating, as a request starting both roots does: neither discards the other's.
        for _ in 0..5_000 {
            assert!(internal.admit::<Internal>());
            assert!(user.admit::<User>());
        }
        assert!(!internal.admit::<Internal>());
        assert!(!user.admit::<User>());
    }

    #[test]
    fn threads_together_never_exceed_the_bucket() {
        let (limiter, _now) = limiter(100_000);
        let limiter = Arc::new(limiter);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                std::thread::spawn(move || admitted::<Internal>(&limiter, 60_000))
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 100_000);
    }
}
