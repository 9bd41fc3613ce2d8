//! Span timestamps: read from the CPU's time-stamp counter ([`fastant`]); a span's start is
//! turned into wall-clock UNIX nanoseconds once, when it finishes, and its duration is the
//! counters' difference (no anchor involved).
//!
//! Reading the counter costs a few nanoseconds where the system clock costs tens (more in
//! virtual machines), and a recorded span reads the clock twice. Where the counter is not
//! usable (not x86 Linux, or a counter that is not invariant), `fastant` falls back to the
//! system clock by itself.
//!
//! The counter is tied to wall time by an *anchor*: one (counter, wall time) pair. Each
//! thread keeps its own, so that a conversion reads nothing another thread writes (a shared
//! anchor cost every span a sequence lock's loads and a call). The wall clock is slewed by
//! NTP while the counter is not, so a thread renews its anchor when it converts a timestamp
//! at or after the anchor's expiry, [`REANCHOR_EVERY`] after it was taken: a timestamp is
//! then off wall time by at most what the clock slews in that time (≤ 0.5 ms at NTP's
//! maximum rate), plus the few nanoseconds between the two readings that make an anchor
//! (so two threads' anchors may differ by that much). A span's end is never before its
//! start: its duration is the counters' difference, not a difference of conversions.
//!
//! Under Miri, which cannot run fastant's calibration, the counter is `std::time::Instant`
//! (see `miri_counter`); everything else is the same code.
//!
//! This module owns time only; it knows nothing about spans.

#[cfg(not(miri))]
use fastant::{Atomic, Instant};
#[cfg(miri)]
use miri_counter::{Atomic, Instant};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an anchor is used before it is renewed.
const REANCHOR_EVERY: Duration = Duration::from_secs(1);

/// A moment, as the time-stamp counter read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(Instant);

impl Timestamp {
    /// Now.
    #[inline]
    pub(crate) fn now() -> Self {
        Self(Instant::now())
    }

    /// UNIX nanoseconds.
    #[inline]
    pub(crate) fn unix_nanos(self) -> u64 {
        unix_nanos(self.0)
    }

    /// The wall-clock time.
    pub(crate) fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_nanos())
    }

    /// Nanoseconds from `earlier` to this timestamp, 0 if it is not later: a span's duration
    /// needs no anchor, so it never moves with one.
    #[inline]
    pub(crate) fn nanos_since(self, earlier: Timestamp) -> u64 {
        self.0.checked_duration_since(earlier.0).map_or(0, nanos)
    }
}

/// A timestamp that one thread writes and others read at any time (the live registry's start
/// times, written when a span starts and turned into wall time only when someone looks).
pub(crate) struct AtomicTimestamp(Atomic);

impl AtomicTimestamp {
    pub(crate) fn new() -> Self {
        Self(Atomic::new(Instant::ZERO))
    }

    #[inline]
    pub(crate) fn store(&self, time: Timestamp, order: Ordering) {
        self.0.store(time.0, order);
    }

    pub(crate) fn load(&self, order: Ordering) -> Timestamp {
        Timestamp(self.0.load(order))
    }
}

/// UNIX nanoseconds of a system time (0 before 1970, saturated far in the future).
pub(crate) fn system_time_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One (counter, UNIX nanoseconds) pair, and the counter reading from which it is renewed.
#[derive(Clone, Copy)]
struct Anchor {
    counter: Instant,
    unix_nanos: u64,
    expires: Instant,
}

impl Anchor {
    /// No anchor yet: every timestamp is at or after its expiry.
    const EXPIRED: Self = Self {
        counter: Instant::ZERO,
        unix_nanos: 0,
        expires: Instant::ZERO,
    };

    /// A new anchor, now.
    fn now() -> Self {
        let unix_nanos = system_time_nanos(SystemTime::now());
        let counter = Instant::now();
        Self {
            counter,
            unix_nanos,
            expires: counter.checked_add(REANCHOR_EVERY).unwrap_or(counter),
        }
    }

    /// `at` in UNIX nanoseconds, by this anchor.
    #[inline]
    fn convert(self, at: Instant) -> u64 {
        match at.checked_duration_since(self.counter) {
            Some(after) => self.unix_nanos.saturating_add(nanos(after)),
            None => self
                .unix_nanos
                .saturating_sub(nanos(self.counter.duration_since(at))),
        }
    }
}

thread_local! {
    /// This thread's anchor (see the module docs).
    static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor::EXPIRED) };
}

/// `at` in UNIX nanoseconds, by this thread's anchor, renewed first if `at` is at or after
/// its expiry.
#[inline]
fn unix_nanos(at: Instant) -> u64 {
    match ANCHOR.try_with(Cell::get) {
        Ok(anchor) if at < anchor.expires => anchor.convert(at),
        _ => renew().convert(at),
    }
}

/// Takes this thread's new anchor. Out of line: once a second per thread at most.
#[cold]
#[inline(never)]
fn renew() -> Anchor {
    let anchor = Anchor::now();
    // A thread being torn down has no anchor to keep: it takes a new one per conversion.
    let _ = ANCHOR.try_with(|current| current.set(anchor));
    anchor
}

/// Renews this thread's anchor `ahead_nanos` ahead of the wall clock: an anchor that
/// drifted, for tests of what must not depend on the anchor's accuracy.
#[cfg(all(test, feature = "testing"))]
pub(crate) fn skew_this_threads_anchor(ahead_nanos: u64) {
    let mut anchor = Anchor::now();
    anchor.unix_nanos += ahead_nanos;
    ANCHOR.with(|current| current.set(anchor));
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The part of fastant's API this module uses, on `std::time::Instant`, for Miri.
#[cfg(miri)]
mod miri_counter {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Nanoseconds since the first reading.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub(super) struct Instant(u64);

    static ORIGIN: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

    impl Instant {
        pub(super) const ZERO: Self = Self(0);

        pub(super) fn now() -> Self {
            Self(u64::try_from(ORIGIN.elapsed().as_nanos()).unwrap_or(u64::MAX))
        }

        pub(super) fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
            self.0.checked_sub(earlier.0).map(Duration::from_nanos)
        }

        pub(super) fn duration_since(self, earlier: Self) -> Duration {
            self.checked_duration_since(earlier).unwrap_or_default()
        }

        pub(super) fn checked_add(self, duration: Duration) -> Option<Self> {
            let nanos = u64::try_from(duration.as_nanos()).ok()?;
            self.0.checked_add(nanos).map(Self)
        }
    }

    pub(super) struct Atomic(AtomicU64);

    impl Atomic {
        pub(super) fn new(instant: Instant) -> Self {
            Self(AtomicU64::new(instant.0))
        }

        pub(super) fn load(&self, order: Ordering) -> Instant {
            Instant(self.0.load(order))
        }

        pub(super) fn store(&self, instant: Instant, order: Ordering) {
            self.0.store(instant.0, order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_the_wall_clock() {
        let before = system_time_nanos(SystemTime::now());
        let now = Timestamp::now().unix_nanos();
        let after = system_time_nanos(SystemTime::now());
        // Within a millisecond either way: the anchor may be up to a second old.
        assert!(now + 1_000_000 >= before, "{now} vs {before}");
        assert!(now <= after + 1_000_000, "{now} vs {after}");
    }

    #[test]
    fn a_duration_is_never_negative() {
        let start = Timestamp::now();
        std::thread::sleep(Duration::from_millis(1));
        let end = Timestamp::now();
        assert_eq!(start.nanos_since(end), 0, "a reversed pair is clamped");
        assert!(end.nanos_since(start) >= 1_000_000);
    }

    #[test]
    fn renewing_the_anchor_keeps_time_moving_forward() {
        let first = Timestamp::now();
        let a = first.unix_nanos();
        ANCHOR.with(|anchor| anchor.set(Anchor::EXPIRED));
        let second = Timestamp::now();
        let b = second.unix_nanos();
        // Renewal may move the mapping by what the clocks drifted: a few microseconds.
        assert!(b + 100_000 >= a, "{a} then {b}");
    }

    #[test]
    fn a_thread_converts_by_its_own_anchor_until_it_expires() {
        let now = Timestamp::now();
        let in_a_minute = now.0.checked_add(Duration::from_secs(60)).unwrap();
        let made_up = Anchor {
            counter: now.0,
            unix_nanos: 42,
            expires: in_a_minute,
        };
        ANCHOR.with(|anchor| anchor.set(made_up));
        assert_eq!(now.unix_nanos(), 42);
        // Another thread converts by its own anchor, from the wall clock.
        let wall = system_time_nanos(SystemTime::now());
        let elsewhere = std::thread::spawn(move || now.unix_nanos()).join().unwrap();
        assert!(
            elsewhere.abs_diff(wall) < 1_000_000_000,
            "{elsewhere} vs {wall}"
        );
        // Expired: this thread renews its anchor before converting.
        ANCHOR.with(|anchor| {
            anchor.set(Anchor {
                expires: now.0,
                ..made_up
            })
        });
        let renewed = now.unix_nanos();
        assert!(
            renewed.abs_diff(wall) < 1_000_000_000,
            "{renewed} vs {wall}"
        );
    }

    #[test]
    fn system_times_convert() {
        assert_eq!(system_time_nanos(UNIX_EPOCH), 0);
        assert_eq!(system_time_nanos(UNIX_EPOCH + Duration::from_nanos(42)), 42);
    }
}
