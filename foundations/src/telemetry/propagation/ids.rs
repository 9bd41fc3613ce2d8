//! W3C identity: [`TraceId`], [`SpanId`] and [`TraceFlags`], their hex forms, and the
//! per-thread generator that makes new ids.
//!
//! This module owns the id types and their generation. It knows nothing about spans,
//! headers beyond the hex digits they share, harnesses or export.

use std::fmt;

// ---------------------------------------------------------------------------
// Id generation
// ---------------------------------------------------------------------------

thread_local! {
    /// This thread's id generator: xoshiro256++ (`SmallRng`), seeded once from the
    /// OS-seeded `ThreadRng`.
    static ID_RNG: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::make_rng());
}

/// Runs `f` with this thread's id generator.
///
/// Ids must not collide and must be random enough for W3C's random-trace-id flag
/// ("randomly or pseudo-randomly generated"); they are not secrets, since they travel in
/// headers. A seeded non-cryptographic generator meets that at a fraction of the cost of
/// `ThreadRng` (ChaCha, which was most of the cost of an unsampled root). Like `ThreadRng`,
/// it is not reseeded in a process forked without `exec`.
#[inline]
fn with_id_rng<R>(f: impl FnOnce(&mut rand::rngs::SmallRng) -> R) -> R {
    let mut f = Some(f);
    ID_RNG
        .try_with(|rng| (f.take().expect("called once"))(&mut rng.borrow_mut()))
        // Thread teardown: a generator seeded for this call still works.
        .unwrap_or_else(|_| (f.take().expect("not called"))(&mut rand::make_rng()))
}

/// Span ids are drawn from one process-wide sequence, handed to threads in blocks so that
/// a thread takes the shared counter once per [`SPAN_ID_BLOCK`] ids. Each sequence number
/// goes through a bijection of 64-bit integers keyed at random per process: distinct
/// numbers give distinct ids, so a process never repeats a span id, and the ids look random
/// (and differ from another process's) as W3C recommends.
const SPAN_ID_BLOCK: u64 = 1 << 16;

static SPAN_ID_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

static SPAN_ID_KEY: std::sync::LazyLock<u64> = std::sync::LazyLock::new(rand::random);

thread_local! {
    /// This thread's block of the span id sequence: the next number and the block's end.
    static SPAN_ID_NEXT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// The next span id sequence number of this thread.
#[inline]
fn next_span_number() -> u64 {
    SPAN_ID_NEXT
        .try_with(|block| {
            let (next, end) = block.get();
            if next < end {
                block.set((next + 1, end));
                next
            } else {
                let start = take_span_id_block();
                block.set((start + 1, start + SPAN_ID_BLOCK));
                start
            }
        })
        // Thread teardown: a number of its own.
        .unwrap_or_else(|_| {
            SPAN_ID_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + SPAN_ID_BLOCK
        })
}

#[cold]
fn take_span_id_block() -> u64 {
    // A block starts one block past the counter's value it took, and a teardown number is
    // the counter's value plus one block: numbers taken either way never overlap.
    let block = SPAN_ID_SEQUENCE.fetch_add(SPAN_ID_BLOCK, std::sync::atomic::Ordering::Relaxed);
    block + SPAN_ID_BLOCK
}

/// A bijection of `u64` (the SplitMix64 finalizer): each step is invertible, so distinct
/// inputs give distinct outputs, and 0 is the only input that gives 0.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Hex helpers
// ---------------------------------------------------------------------------

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Marker in [`HEX_DECODE`] for a byte that is not a hex digit at all.
const NOT_HEX: u8 = 0xFF;
/// Marker in [`HEX_DECODE`] for an uppercase hex digit (`A`-`F`).
const UPPER_HEX: u8 = 0xFE;

/// Maps every byte to its lowercase hex value, or to one of the markers above.
const HEX_DECODE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = UPPER_HEX;
        i += 1;
    }
    table
};

/// Why a run of bytes is not lowercase hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HexError {
    NotHex,
    Uppercase,
}

/// Decodes up to 32 lowercase hex digits. Every byte is validated, so signs,
/// whitespace and uppercase digits are rejected.
pub(super) fn decode_hex(digits: &[u8]) -> Result<u128, HexError> {
    debug_assert!(digits.len() <= 32);
    let mut acc = 0u128;
    for &b in digits {
        match HEX_DECODE[usize::from(b)] {
            NOT_HEX => return Err(HexError::NotHex),
            UPPER_HEX => return Err(HexError::Uppercase),
            d => acc = (acc << 4) | u128::from(d),
        }
    }
    Ok(acc)
}

/// Writes the low `4 * out.len()` bits of `value` as lowercase hex, most
/// significant digit first. `out` must be an even number of bytes, at most 32.
///
/// Works a byte (two digits) at a time: shifting a `u128` by a different amount for every
/// digit made formatting a `traceparent` several times slower.
pub(super) fn encode_hex(value: u128, out: &mut [u8]) {
    debug_assert!(out.len() <= 32 && out.len() % 2 == 0);
    let bytes = value.to_be_bytes();
    let bytes = &bytes[bytes.len().saturating_sub(out.len() / 2)..];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0xF)];
    }
}

/// Views bytes produced by [`encode_hex`] (always ASCII) as `&str`.
pub(super) fn ascii_str(bytes: &[u8]) -> Result<&str, fmt::Error> {
    std::str::from_utf8(bytes).map_err(|_| fmt::Error)
}

/// Strips optional whitespace (`OWS`: space and horizontal tab) on both ends.
pub(super) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

// ---------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------

/// A 128-bit W3C trace id.
///
/// The byte representation ([`TraceId::to_bytes`]) is big-endian, matching
/// both the hex text in `traceparent` and the 16-byte `trace_id` in OTLP.
/// [`Debug`](fmt::Debug) and [`Display`](fmt::Display) print 32 lowercase hex
/// characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

impl TraceId {
    /// The all-zero trace id, which the W3C specification declares invalid.
    pub const INVALID: TraceId = TraceId(0);

    /// Creates a trace id from its numeric value.
    pub const fn from_u128(v: u128) -> Self {
        TraceId(v)
    }

    /// Returns the numeric value of the trace id.
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// Creates a trace id from 16 big-endian bytes (wire / OTLP order).
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        TraceId(u128::from_be_bytes(b))
    }

    /// Returns the 16 big-endian bytes of the trace id (wire / OTLP order).
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Returns `true` unless this is the all-zero [`TraceId::INVALID`].
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Generates a uniformly random, valid (non-zero) trace id.
    ///
    /// All 128 bits are random, so ids from this function may be sent with the
    /// [`TraceFlags::RANDOM`] flag set. Ids come from a per-thread generator (xoshiro256++
    /// seeded from the OS).
    pub fn random() -> Self {
        with_id_rng(Self::random_from)
    }

    #[inline]
    fn random_from(rng: &mut impl rand::Rng) -> Self {
        loop {
            let v = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
            if v != 0 {
                return TraceId(v);
            }
        }
    }

    /// A new trace id and the id of its root span, from one use of the generator.
    #[inline]
    pub(crate) fn random_with_root_span_id() -> (Self, SpanId) {
        (with_id_rng(Self::random_from), SpanId::random())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        encode_hex(self.0, &mut buf);
        f.pad(ascii_str(&buf)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A 64-bit W3C span id (the `parent-id` of `traceparent`).
///
/// The byte representation ([`SpanId::to_bytes`]) is big-endian, matching both
/// the hex text in `traceparent` and the 8-byte `span_id` in OTLP.
/// [`Debug`](fmt::Debug) and [`Display`](fmt::Display) print 16 lowercase hex
/// characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl SpanId {
    /// The all-zero span id, which the W3C specification declares invalid.
    pub const INVALID: SpanId = SpanId(0);

    /// Creates a span id from its numeric value.
    pub const fn from_u64(v: u64) -> Self {
        SpanId(v)
    }

    /// Returns the numeric value of the span id.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// Creates a span id from 8 big-endian bytes (wire / OTLP order).
    pub const fn from_bytes(b: [u8; 8]) -> Self {
        SpanId(u64::from_be_bytes(b))
    }

    /// Returns the 8 big-endian bytes of the span id (wire / OTLP order).
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Returns `true` unless this is the all-zero [`SpanId::INVALID`].
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Generates a new valid (non-zero) span id that looks random and is never repeated
    /// within this process (until a fork without `exec`): a per-thread block of a
    /// process-wide sequence, scrambled by a bijection keyed at random per process. No
    /// shared state is touched per id.
    #[inline]
    pub fn random() -> Self {
        loop {
            let id = mix(next_span_number().wrapping_add(*SPAN_ID_KEY));
            if id != 0 {
                return SpanId(id);
            }
        }
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 16];
        encode_hex(u128::from(self.0), &mut buf);
        f.pad(ascii_str(&buf)?)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The `trace-flags` byte of `traceparent`.
///
/// Inbound, all eight bits are kept as received; [`TraceFlags::outbound`]
/// returns only the bits that may be sent on (sampled and random). The default
/// is `0` (not sampled, not random).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The `sampled` flag (`0x01`): the caller may have recorded the trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);

    /// The `random-trace-id` flag (`0x02`, Level 2): at least the rightmost
    /// 7 bytes of the trace id are random.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);

    /// Bits this implementation knows and therefore may send.
    const KNOWN: u8 = Self::SAMPLED.0 | Self::RANDOM.0;

    /// Creates flags from the raw byte.
    pub const fn from_bits(b: u8) -> Self {
        TraceFlags(b)
    }

    /// Returns the raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Returns `true` if the [`TraceFlags::SAMPLED`] bit is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }

    /// Returns `true` if the [`TraceFlags::RANDOM`] bit is set.
    pub const fn is_random(self) -> bool {
        self.0 & Self::RANDOM.0 != 0
    }

    /// Returns these flags with the [`TraceFlags::SAMPLED`] bit set or cleared.
    #[must_use]
    pub const fn with_sampled(self, on: bool) -> Self {
        if on {
            TraceFlags(self.0 | Self::SAMPLED.0)
        } else {
            TraceFlags(self.0 & !Self::SAMPLED.0)
        }
    }

    /// Returns these flags with the [`TraceFlags::RANDOM`] bit set or cleared.
    #[must_use]
    pub const fn with_random(self, on: bool) -> Self {
        if on {
            TraceFlags(self.0 | Self::RANDOM.0)
        } else {
            TraceFlags(self.0 & !Self::RANDOM.0)
        }
    }

    /// Returns only the bits that may be sent (`0x01 | 0x02`); unknown bits
    /// are zeroed, as the specification requires.
    #[must_use]
    pub const fn outbound(self) -> Self {
        TraceFlags(self.0 & Self::KNOWN)
    }
}

#[cfg(test)]
mod generation_tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn span_ids_never_repeat_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    // More than a block per thread, so blocks are taken concurrently.
                    (0..SPAN_ID_BLOCK + 1000)
                        .map(|_| SpanId::random())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(id.is_valid());
                assert!(seen.insert(id), "{id} repeated");
            }
        }
    }

    #[test]
    fn span_ids_look_random() {
        // Consecutive sequence numbers spread over the whole range: every nibble position
        // takes many values, and the high bit is set about half the time.
        let ids: Vec<u64> = (0..4096).map(|_| SpanId::random().0).collect();
        let high = ids.iter().filter(|id| *id >> 63 == 1).count();
        assert!(
            (1700..2400).contains(&high),
            "{high} of 4096 with the high bit"
        );
        for shift in (0..64).step_by(4) {
            let nibbles: HashSet<u64> = ids.iter().map(|id| (id >> shift) & 0xf).collect();
            assert_eq!(nibbles.len(), 16, "nibble at bit {shift}");
        }
    }

    #[test]
    fn the_mix_is_a_bijection_on_a_sample() {
        let outputs: HashSet<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(outputs.len(), 100_000);
        assert_eq!(mix(0), 0);
        assert!((1..100_000u64).all(|x| mix(x) != 0));
    }
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    /// The plain reading: a digit at a time, the first bad byte deciding the error.
    fn reference(digits: &[u8]) -> Result<u128, HexError> {
        let mut acc = 0u128;
        for &b in digits {
            acc = (acc << 4)
                | u128::from(match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    b'A'..=b'F' => return Err(HexError::Uppercase),
                    _ => return Err(HexError::NotHex),
                });
        }
        Ok(acc)
    }

    #[test]
    fn every_length_and_every_byte_decodes_as_the_plain_reading() {
        let digits = b"0123456789abcdef0f1e2d3c4b5a6978";
        for len in 0..=32 {
            let valid = &digits[..len];
            assert_eq!(decode_hex(valid), reference(valid), "{len} digits");
            for position in 0..len {
                for bad in 0..=255u8 {
                    let mut input = valid.to_vec();
                    input[position] = bad;
                    assert_eq!(
                        decode_hex(&input),
                        reference(&input),
                        "byte {bad} at {position} of {len}"
                    );
                }
            }
        }
        // Two bad bytes: the first one decides.
        assert_eq!(decode_hex(b"0G0A"), Err(HexError::NotHex));
        assert_eq!(decode_hex(b"0A0G"), Err(HexError::Uppercase));
    }
}
