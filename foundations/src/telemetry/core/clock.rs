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
//! Conversions read the counter's value itself (fastant keeps it private; see [`counter`])
//! and scale it by a fixed-point factor taken once from fastant's calibration: a multiply
//! and a shift, where fastant's own conversions go through floating point. A span's
//! conversions are on its finishing thread's hot path, twice per span.
//!
//! Under Miri, which cannot run fastant's calibration, the counter is `std::time::Instant`
//! (see `miri_counter`); everything else is the same code.
//!
//! This module owns time only; it knows nothing about spans.

#[cfg(not(miri))]
use fastant::Instant;
#[cfg(miri)]
use miri_counter::Instant;
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an anchor is used before it is renewed.
const REANCHOR_EVERY: Duration = Duration::from_secs(1);

/// Fractional bits of [`Scale`]: 32 keep a conversion within a nanosecond per second.
const SCALE_SHIFT: u32 = 32;

/// A moment, as the time-stamp counter read it: the counter's value itself (cycles, or
/// nanoseconds where fastant falls back to the system clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(u64);

impl Timestamp {
    /// Now.
    #[inline]
    pub(crate) fn now() -> Self {
        Self(counter(Instant::now()))
    }

    /// UNIX nanoseconds.
    #[inline]
    pub(crate) fn unix_nanos(self) -> u64 {
        anchor_for(self).convert(self)
    }

    /// The wall-clock time.
    pub(crate) fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_nanos())
    }

    /// Nanoseconds from `earlier` to this timestamp, 0 if it is not later: a span's duration
    /// needs no anchor, so it never moves with one.
    #[inline]
    pub(crate) fn nanos_since(self, earlier: Timestamp) -> u64 {
        scale().nanos(self.0.saturating_sub(earlier.0))
    }

    /// A span's start in UNIX nanoseconds and its duration in nanoseconds (0 if `end` is
    /// not later): what a finished record keeps, with one read of this thread's anchor.
    #[inline]
    pub(crate) fn start_and_duration(self, end: Timestamp) -> (u64, u64) {
        let convert = |anchor: Anchor| {
            (
                anchor.convert(self),
                anchor.scale.nanos(end.0.saturating_sub(self.0)),
            )
        };
        // Converted inside the thread-local's access: an anchor handed out of it is copied
        // through the stack first.
        match ANCHOR.try_with(|anchor| {
            let anchor = anchor.get();
            (self.0 < anchor.expires).then(|| convert(anchor))
        }) {
            Ok(Some(converted)) => converted,
            _ => convert(renew()),
        }
    }
}

/// The counter's value in `instant`. fastant keeps it private but hashes it as its only
/// field (`derive(Hash)` on a `u64` newtype): capturing that hash reads it with no
/// conversion. The test `the_counter_reads_as_fastant_converts_it` holds this to fastant's
/// own conversions.
#[inline(always)]
fn counter(instant: Instant) -> u64 {
    /// A "hasher" that keeps the last `u64` it is given.
    struct Capture(u64);

    impl Hasher for Capture {
        fn finish(&self) -> u64 {
            self.0
        }

        fn write(&mut self, bytes: &[u8]) {
            // Not how a `u64` is written; were it ever, its bytes still make the value.
            let mut word = [0; 8];
            let n = bytes.len().min(8);
            word[..n].copy_from_slice(&bytes[..n]);
            self.0 = u64::from_ne_bytes(word);
        }

        #[inline(always)]
        fn write_u64(&mut self, value: u64) {
            self.0 = value;
        }
    }

    let mut capture = Capture(0);
    instant.hash(&mut capture);
    capture.0
}

/// Nanoseconds per counter tick, in fixed point ([`SCALE_SHIFT`] fractional bits): a
/// multiply and a shift per conversion, where fastant's own conversions go through `f64`.
#[derive(Clone, Copy)]
struct Scale(u64);

impl Scale {
    /// The process's scale, measured once from fastant's calibration.
    #[inline]
    fn get() -> Self {
        static SCALE: OnceLock<Scale> = OnceLock::new();
        *SCALE.get_or_init(Self::measure)
    }

    /// fastant's ticks in 1000 s, read off an instant that far from its zero.
    #[cold]
    fn measure() -> Self {
        let span = Duration::from_secs(1000);
        let ticks = Instant::ZERO.checked_add(span).map_or(0, counter);
        if ticks == 0 {
            // No usable calibration: a tick is a nanosecond, as in fastant's fallback.
            return Self(1 << SCALE_SHIFT);
        }
        let scaled = (span.as_nanos() << SCALE_SHIFT) / u128::from(ticks);
        Self(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// `ticks` in nanoseconds (saturated).
    #[inline]
    fn nanos(self, ticks: u64) -> u64 {
        let nanos = (u128::from(ticks) * u128::from(self.0)) >> SCALE_SHIFT;
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

/// The process's scale, for conversions that read no anchor.
#[inline]
fn scale() -> Scale {
    match ANCHOR.try_with(Cell::get) {
        // Set with every anchor: one thread-local read, where the shared one costs a check.
        Ok(anchor) if anchor.scale.0 != 0 => anchor.scale,
        _ => Scale::get(),
    }
}

/// A timestamp that one thread writes and others read at any time (the live registry's start
/// times, written when a span starts and turned into wall time only when someone looks).
pub(crate) struct AtomicTimestamp(AtomicU64);

impl AtomicTimestamp {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
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

/// One (counter, UNIX nanoseconds) pair, the counter reading from which it is renewed, and
/// the process's scale (kept here so that a conversion reads one thread-local only).
#[derive(Clone, Copy)]
struct Anchor {
    counter: u64,
    unix_nanos: u64,
    expires: u64,
    scale: Scale,
}

impl Anchor {
    /// No anchor yet: every timestamp is at or after its expiry.
    const EXPIRED: Self = Self {
        counter: 0,
        unix_nanos: 0,
        expires: 0,
        scale: Scale(0),
    };

    /// A new anchor, now.
    fn now() -> Self {
        let unix_nanos = system_time_nanos(SystemTime::now());
        let now = Instant::now();
        let counter = counter(now);
        Self {
            counter,
            unix_nanos,
            expires: now
                .checked_add(REANCHOR_EVERY)
                .map_or(counter, self::counter),
            scale: Scale::get(),
        }
    }

    /// `at` in UNIX nanoseconds, by this anchor.
    #[inline]
    fn convert(self, at: Timestamp) -> u64 {
        match at.0.checked_sub(self.counter) {
            Some(after) => self.unix_nanos.saturating_add(self.scale.nanos(after)),
            None => self
                .unix_nanos
                .saturating_sub(self.scale.nanos(self.counter - at.0)),
        }
    }
}

thread_local! {
    /// This thread's anchor (see the module docs).
    static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor::EXPIRED) };
}

/// This thread's anchor, renewed first if `at` is at or after its expiry.
#[inline]
fn anchor_for(at: Timestamp) -> Anchor {
    match ANCHOR.try_with(Cell::get) {
        Ok(anchor) if at.0 < anchor.expires => anchor,
        _ => renew(),
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

/// The part of fastant's API this module uses, on `std::time::Instant`, for Miri.
#[cfg(miri)]
mod miri_counter {
    use std::sync::LazyLock;
    use std::time::Duration;

    /// Nanoseconds since the first reading; hashed as its one field, as fastant's is.
    #[derive(Clone, Copy, Debug, Hash)]
    pub(super) struct Instant(u64);

    static ORIGIN: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

    impl Instant {
        pub(super) const ZERO: Self = Self(0);

        pub(super) fn now() -> Self {
            Self(u64::try_from(ORIGIN.elapsed().as_nanos()).unwrap_or(u64::MAX))
        }

        pub(super) fn checked_add(self, duration: Duration) -> Option<Self> {
            let nanos = u64::try_from(duration.as_nanos()).ok()?;
            self.0.checked_add(nanos).map(Self)
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
        let in_a_minute = Timestamp::now().0 + 60 * (Anchor::now().expires - Anchor::now().counter);
        let made_up = Anchor {
            counter: now.0,
            unix_nanos: 42,
            expires: in_a_minute,
            scale: Scale::get(),
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

    /// The counter read through fastant's hash (see [`counter`]) converts as fastant
    /// converts it: a change in how fastant hashes its instants fails here.
    #[test]
    #[cfg_attr(miri, ignore = "fastant is not used under Miri")]
    fn the_counter_reads_as_fastant_converts_it() {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let end = Instant::now();
        let fastants = end.duration_since(start).as_nanos() as u64;
        let ours = Timestamp(counter(end)).nanos_since(Timestamp(counter(start)));
        assert!(fastants >= 2_000_000);
        // Both scale the same ticks; they differ by rounding only.
        assert!(
            ours.abs_diff(fastants) <= fastants / 1_000_000 + 2,
            "{ours} vs {fastants}"
        );
        // A second from an instant is a second's ticks from its counter.
        let second = start.checked_add(Duration::from_secs(1)).unwrap();
        let ticks = counter(second) - counter(start);
        let nanos = Scale::get().nanos(ticks);
        assert!(nanos.abs_diff(1_000_000_000) <= 1_000, "{nanos}");
    }

    #[test]
    fn a_span_is_its_start_converted_and_its_counters_difference() {
        let start = Timestamp::now();
        std::thread::sleep(Duration::from_millis(1));
        let end = Timestamp::now();
        let (start_nanos, duration) = start.start_and_duration(end);
        assert_eq!(start_nanos, start.unix_nanos());
        assert_eq!(duration, end.nanos_since(start));
        assert!(duration >= 1_000_000);
        assert_eq!(
            end.start_and_duration(start).1,
            0,
            "a reversed pair is clamped"
        );
    }

    #[test]
    fn system_times_convert() {
        assert_eq!(system_time_nanos(UNIX_EPOCH), 0);
        assert_eq!(system_time_nanos(UNIX_EPOCH + Duration::from_nanos(42)), 42);
    }
}
