//! W3C Trace Context: identity and header parsing/formatting.
//!
//! This module owns W3C Trace Context identity ([`TraceId`], [`SpanId`],
//! [`TraceFlags`]) and the parsing and formatting of the `traceparent`
//! ([`TraceparentContext`]) and `tracestate` ([`TraceState`]) headers. It knows
//! nothing about spans, harnesses or export.
//!
//! Parsing works on raw header bytes: arbitrary (including non-UTF-8) input is
//! rejected with a typed error and never panics. Parsing a `traceparent` and
//! formatting it with [`TraceparentContext::write_header_value`] do not
//! allocate.
//!
//! Rules implemented (W3C Trace Context, Level 2):
//!
//! * `traceparent` is `version-traceid-parentid-flags`: 2, 32, 16 and 2
//!   lowercase hex digits separated by `-`. Version `ff` is forbidden; version
//!   `00` must be exactly 55 bytes; a higher version is parsed
//!   forward-compatibly (the four known fields, then end of input or `-`).
//!   All-zero trace or parent ids are invalid. Optional whitespace (space and
//!   tab) around the value is ignored. Output always uses version `00` and only
//!   the flag bits this implementation knows ([`TraceFlags::outbound`]).
//! * `tracestate` is a comma-separated list of at most
//!   [`TraceState::MAX_MEMBERS`] `key=value` members with optional whitespace
//!   around each member; empty members are skipped. Any invalid member, a
//!   duplicate key or too many members invalidates the whole header.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Name of the `traceparent` header (lowercase, as it should be sent).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Name of the `tracestate` header (lowercase, as it should be sent).
pub const TRACESTATE_HEADER: &str = "tracestate";

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
enum HexError {
    NotHex,
    Uppercase,
}

/// Decodes up to 32 lowercase hex digits. Every byte is validated, so signs,
/// whitespace and uppercase digits are rejected.
fn decode_hex(digits: &[u8]) -> Result<u128, HexError> {
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
fn encode_hex(value: u128, out: &mut [u8]) {
    debug_assert!(out.len() <= 32 && out.len() % 2 == 0);
    let bytes = value.to_be_bytes();
    let bytes = &bytes[bytes.len().saturating_sub(out.len() / 2)..];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0xF)];
    }
}

/// Views bytes produced by [`encode_hex`] (always ASCII) as `&str`.
fn ascii_str(bytes: &[u8]) -> Result<&str, fmt::Error> {
    std::str::from_utf8(bytes).map_err(|_| fmt::Error)
}

/// Strips optional whitespace (`OWS`: space and horizontal tab) on both ends.
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
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
    /// [`TraceFlags::RANDOM`] flag set. See [`with_id_rng`] for the generator.
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
        with_id_rng(|rng| (Self::random_from(rng), SpanId::random_from(rng)))
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

    /// Generates a uniformly random, valid (non-zero) span id. See [`with_id_rng`] for the
    /// generator.
    pub fn random() -> Self {
        with_id_rng(Self::random_from)
    }

    #[inline]
    fn random_from(rng: &mut impl rand::Rng) -> Self {
        loop {
            let v = rng.next_u64();
            if v != 0 {
                return SpanId(v);
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

// ---------------------------------------------------------------------------
// traceparent
// ---------------------------------------------------------------------------

/// One of the four fields of a `traceparent` value, used in error reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceparentField {
    /// `version` (bytes 0..2).
    Version,
    /// `trace-id` (bytes 3..35).
    TraceId,
    /// `parent-id` (bytes 36..52).
    ParentId,
    /// `trace-flags` (bytes 53..55).
    Flags,
}

impl fmt::Display for TraceparentField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceparentField::Version => "version",
            TraceparentField::TraceId => "trace-id",
            TraceparentField::ParentId => "parent-id",
            TraceparentField::Flags => "trace-flags",
        })
    }
}

/// Why a `traceparent` value was rejected.
///
/// Per the specification, a rejected `traceparent` means: start a new trace
/// and ignore `tracestate` as well. Byte offsets in messages are counted after
/// leading whitespace has been trimmed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceparentError {
    /// The value is empty (or only whitespace).
    Empty,
    /// No `traceparent` header value was given.
    Missing,
    /// More than one `traceparent` header value was given.
    Multiple,
    /// The version is not two hex digits.
    InvalidVersion,
    /// The version is `ff`, which is forbidden.
    ForbiddenVersion,
    /// The value is shorter than a `traceparent` must be.
    InvalidLength {
        /// Minimum length in bytes (55).
        expected: usize,
        /// Length of the value after trimming whitespace.
        actual: usize,
    },
    /// A `-` separator is missing.
    InvalidDelimiter {
        /// Byte offset where `-` was expected.
        offset: usize,
    },
    /// A field contains uppercase hex digits; only lowercase is allowed.
    UppercaseHex {
        /// The offending field.
        field: TraceparentField,
    },
    /// The trace id is not 32 hex digits.
    InvalidTraceId,
    /// The parent id is not 16 hex digits.
    InvalidParentId,
    /// The flags are not 2 hex digits.
    InvalidFlags,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is all zeros.
    ZeroParentId,
    /// Data follows the flags where the version does not allow it (version
    /// `00`: anything; higher versions: anything not starting with `-`).
    TrailingData,
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceparentError::Empty => f.write_str("traceparent value is empty"),
            TraceparentError::Missing => f.write_str("no traceparent header value present"),
            TraceparentError::Multiple => {
                f.write_str("more than one traceparent header value present")
            }
            TraceparentError::InvalidVersion => {
                f.write_str("traceparent version (bytes 0..2) is not two lowercase hex digits")
            }
            TraceparentError::ForbiddenVersion => f.write_str("traceparent version ff is invalid"),
            TraceparentError::InvalidLength { expected, actual } => write!(
                f,
                "traceparent is too short: {actual} bytes, at least {expected} required"
            ),
            TraceparentError::InvalidDelimiter { offset } => {
                write!(f, "traceparent: expected '-' at byte {offset}")
            }
            TraceparentError::UppercaseHex { field } => write!(
                f,
                "traceparent {field} contains uppercase hex digits; only lowercase is allowed"
            ),
            TraceparentError::InvalidTraceId => {
                f.write_str("traceparent trace-id (bytes 3..35) is not 32 lowercase hex digits")
            }
            TraceparentError::InvalidParentId => {
                f.write_str("traceparent parent-id (bytes 36..52) is not 16 lowercase hex digits")
            }
            TraceparentError::InvalidFlags => f.write_str(
                "traceparent trace-flags (bytes 53..55) is not two lowercase hex digits",
            ),
            TraceparentError::ZeroTraceId => f.write_str("traceparent trace-id is all zeros"),
            TraceparentError::ZeroParentId => f.write_str("traceparent parent-id is all zeros"),
            TraceparentError::TrailingData => {
                f.write_str("traceparent has unexpected data after trace-flags (byte 55)")
            }
        }
    }
}

impl std::error::Error for TraceparentError {}

/// Decodes one fixed-width `traceparent` field.
fn decode_field(
    digits: &[u8],
    field: TraceparentField,
    invalid: TraceparentError,
) -> Result<u128, TraceparentError> {
    decode_hex(digits).map_err(|e| match e {
        HexError::Uppercase => TraceparentError::UppercaseHex { field },
        HexError::NotHex => invalid,
    })
}

/// A parsed W3C `traceparent` header: the remote caller's trace id, its span
/// id (`parent-id`) and the trace flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceparentContext {
    /// The trace id.
    pub trace_id: TraceId,
    /// The caller's span id, i.e. the parent of the next span.
    pub parent_id: SpanId,
    /// The trace flags as received (all bits); only
    /// [`TraceFlags::outbound`] bits are ever formatted.
    pub flags: TraceFlags,
}

impl TraceparentContext {
    /// Length in bytes of a version `00` `traceparent` value.
    pub const HEADER_LEN: usize = 55;

    /// Creates a context from its parts. No validation is done: formatting a
    /// context with an invalid (zero) id produces a value that parsers reject.
    pub fn new(trace_id: TraceId, parent_id: SpanId, flags: TraceFlags) -> Self {
        TraceparentContext {
            trace_id,
            parent_id,
            flags,
        }
    }

    /// Parses one `traceparent` header value.
    ///
    /// Optional whitespace (space and tab) around the value is ignored. Hex
    /// must be lowercase. Version `ff` is rejected, version `00` must be
    /// exactly 55 bytes, and higher versions are parsed forward-compatibly.
    /// Never allocates and never panics, whatever the input.
    ///
    /// ```
    /// use foundations::telemetry::tracing::w3c::{TraceparentContext, TraceparentError};
    ///
    /// let ctx = TraceparentContext::parse(
    ///     b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// )
    /// .unwrap();
    /// assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(ctx.parent_id.to_u64(), 0x00f0_67aa_0ba9_02b7);
    /// assert!(ctx.flags.is_sampled());
    ///
    /// // Uppercase hex is not allowed.
    /// assert!(matches!(
    ///     TraceparentContext::parse(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
    ///     Err(TraceparentError::UppercaseHex { .. })
    /// ));
    /// ```
    pub fn parse(value: &[u8]) -> Result<Self, TraceparentError> {
        use TraceparentError as E;

        let v = trim_ows(value);
        if v.is_empty() {
            return Err(E::Empty);
        }
        let too_short = E::InvalidLength {
            expected: Self::HEADER_LEN,
            actual: v.len(),
        };

        let Some(version) = v.get(..2) else {
            return Err(too_short);
        };
        let version = decode_field(version, TraceparentField::Version, E::InvalidVersion)?;
        if version == 0xff {
            return Err(E::ForbiddenVersion);
        }

        let Some(head) = v
            .get(..Self::HEADER_LEN)
            .and_then(|h| <&[u8; Self::HEADER_LEN]>::try_from(h).ok())
        else {
            return Err(too_short);
        };
        for offset in [2, 35, 52] {
            if head[offset] != b'-' {
                return Err(E::InvalidDelimiter { offset });
            }
        }
        let trace_id = decode_field(&head[3..35], TraceparentField::TraceId, E::InvalidTraceId)?;
        let parent_id = decode_field(
            &head[36..52],
            TraceparentField::ParentId,
            E::InvalidParentId,
        )?;
        let flags = decode_field(&head[53..55], TraceparentField::Flags, E::InvalidFlags)?;

        match (version, v.get(Self::HEADER_LEN)) {
            (_, None) => {}
            // Version 00 is exactly 55 bytes.
            (0, Some(_)) => return Err(E::TrailingData),
            // Higher versions may append fields after a `-`; ignore them.
            (_, Some(b'-')) => {}
            (_, Some(_)) => return Err(E::TrailingData),
        }

        if trace_id == 0 {
            return Err(E::ZeroTraceId);
        }
        if parent_id == 0 {
            return Err(E::ZeroParentId);
        }
        Ok(TraceparentContext {
            trace_id: TraceId(trace_id),
            // Both fit: 16 and 2 hex digits were decoded.
            parent_id: SpanId(parent_id as u64),
            flags: TraceFlags(flags as u8),
        })
    }

    /// Parses the `traceparent` header values of one request: exactly one
    /// value must be present ([`TraceparentError::Missing`] for none,
    /// [`TraceparentError::Multiple`] for more), and it must parse.
    pub fn parse_header_values<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, TraceparentError> {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return Err(TraceparentError::Missing);
        };
        if values.next().is_some() {
            return Err(TraceparentError::Multiple);
        }
        Self::parse(first)
    }

    /// Formats the canonical header value `00-<trace-id>-<parent-id>-<flags>`
    /// (version `00`, flags reduced to [`TraceFlags::outbound`]).
    pub fn to_header_value(&self) -> String {
        let mut buf = [0u8; Self::HEADER_LEN];
        self.write_header_value(&mut buf);
        // One allocation of the exact size; the bytes are ASCII by construction.
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Allocation-free variant of [`TraceparentContext::to_header_value`]:
    /// writes the 55 ASCII bytes of the canonical header value into `out`.
    pub fn write_header_value(&self, out: &mut [u8; 55]) {
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        encode_hex(self.trace_id.0, &mut out[3..35]);
        out[35] = b'-';
        encode_hex(u128::from(self.parent_id.0), &mut out[36..52]);
        out[52] = b'-';
        encode_hex(u128::from(self.flags.outbound().0), &mut out[53..55]);
    }
}

impl fmt::Display for TraceparentContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; Self::HEADER_LEN];
        self.write_header_value(&mut buf);
        f.write_str(ascii_str(&buf)?)
    }
}

impl FromStr for TraceparentContext {
    type Err = TraceparentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

// ---------------------------------------------------------------------------
// tracestate
// ---------------------------------------------------------------------------

/// Why a `tracestate` value was rejected. Per the specification, the whole
/// `tracestate` is then discarded.
///
/// `index` fields are the zero-based position of the list member in the
/// (joined) header, counting empty members.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// More than [`TraceState::MAX_MEMBERS`] list members.
    TooManyMembers,
    /// The same key appears twice.
    DuplicateKey(String),
    /// A key does not match `[a-z0-9][a-z0-9_\-*/@]{0,255}`.
    InvalidKey {
        /// Position of the list member.
        index: usize,
    },
    /// A value is not 1 to 256 printable ASCII characters (except `,` and
    /// `=`) or ends with a space.
    InvalidValue {
        /// Position of the list member.
        index: usize,
    },
    /// A non-empty list member has no `=`.
    InvalidMember {
        /// Position of the list member.
        index: usize,
    },
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStateError::TooManyMembers => write!(
                f,
                "tracestate has more than {} list members",
                TraceState::MAX_MEMBERS
            ),
            TraceStateError::DuplicateKey(key) => {
                write!(f, "tracestate key {key:?} appears more than once")
            }
            TraceStateError::InvalidKey { index } => write!(
                f,
                "tracestate member #{index}: invalid key \
                 (must be 1-256 chars of [a-z0-9_-*/@], starting with [a-z0-9])"
            ),
            TraceStateError::InvalidValue { index } => write!(
                f,
                "tracestate member #{index}: invalid value (must be 1-256 printable \
                 ascii chars other than ',' and '=', not ending in a space)"
            ),
            TraceStateError::InvalidMember { index } => write!(
                f,
                "tracestate member #{index}: not a key=value pair (no '=')"
            ),
        }
    }
}

impl std::error::Error for TraceStateError {}

const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;
/// Members longer than this are the first to go when truncating.
const LONG_MEMBER_LEN: usize = 128;

/// Validates a `tracestate` key and returns it as `&str`.
fn validate_key(key: &[u8]) -> Option<&str> {
    let (&first, rest) = key.split_first()?;
    if key.len() > MAX_KEY_LEN || !matches!(first, b'a'..=b'z' | b'0'..=b'9') {
        return None;
    }
    if !rest
        .iter()
        .all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'))
    {
        return None;
    }
    std::str::from_utf8(key).ok()
}

/// Validates a `tracestate` value and returns it as `&str`.
fn validate_value(value: &[u8]) -> Option<&str> {
    let (&last, _) = value.split_last()?;
    if value.len() > MAX_VALUE_LEN || last == b' ' {
        return None;
    }
    if !value
        .iter()
        .all(|&b| matches!(b, 0x20..=0x7E) && b != b',' && b != b'=')
    {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// Byte ranges of one member inside [`TraceStateInner::header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemberSpan {
    start: usize,
    eq: usize,
    end: usize,
}

/// Shared, immutable body of a non-empty [`TraceState`]: the canonical header
/// text plus where each member lies in it.
#[derive(PartialEq, Eq)]
struct TraceStateInner {
    header: String,
    members: Vec<MemberSpan>,
}

impl TraceStateInner {
    fn pair(&self, m: &MemberSpan) -> (&str, &str) {
        (&self.header[m.start..m.eq], &self.header[m.eq + 1..m.end])
    }
}

/// Accumulates validated members into canonical form.
struct Builder {
    header: String,
    members: Vec<MemberSpan>,
}

impl Builder {
    fn with_capacity(bytes: usize) -> Self {
        Builder {
            header: String::with_capacity(bytes),
            members: Vec::new(),
        }
    }

    fn contains_key(&self, key: &str) -> bool {
        self.members
            .iter()
            .any(|m| &self.header[m.start..m.eq] == key)
    }

    fn push(&mut self, key: &str, value: &str) {
        if !self.members.is_empty() {
            self.header.push(',');
        }
        let start = self.header.len();
        self.header.push_str(key);
        let eq = self.header.len();
        self.header.push('=');
        self.header.push_str(value);
        let end = self.header.len();
        self.members.push(MemberSpan { start, eq, end });
    }

    fn finish(self) -> TraceState {
        if self.members.is_empty() {
            TraceState::default()
        } else {
            TraceState {
                inner: Some(Arc::new(TraceStateInner {
                    header: self.header,
                    members: self.members,
                })),
            }
        }
    }
}

/// Incremental `tracestate` parser; list members may span several header
/// values, which behaves exactly like joining the values with `,`.
struct Parser {
    builder: Builder,
    index: usize,
}

impl Parser {
    fn new(capacity: usize) -> Self {
        Parser {
            builder: Builder::with_capacity(capacity),
            index: 0,
        }
    }

    fn feed(&mut self, value: &[u8]) -> Result<(), TraceStateError> {
        value
            .split(|&b| b == b',')
            .try_for_each(|member| self.member(member))
    }

    fn member(&mut self, raw: &[u8]) -> Result<(), TraceStateError> {
        let index = self.index;
        self.index += 1;
        let member = trim_ows(raw);
        if member.is_empty() {
            return Ok(());
        }
        if self.builder.members.len() >= TraceState::MAX_MEMBERS {
            return Err(TraceStateError::TooManyMembers);
        }
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            return Err(TraceStateError::InvalidMember { index });
        };
        let (key, rest) = member.split_at(eq);
        let value = rest.get(1..).unwrap_or_default();
        let key = validate_key(key).ok_or(TraceStateError::InvalidKey { index })?;
        let value = validate_value(value).ok_or(TraceStateError::InvalidValue { index })?;
        if self.builder.contains_key(key) {
            return Err(TraceStateError::DuplicateKey(key.to_owned()));
        }
        self.builder.push(key, value);
        Ok(())
    }
}

/// A validated W3C `tracestate`: an ordered list of up to
/// [`TraceState::MAX_MEMBERS`] vendor `key=value` members.
///
/// Immutable; cloning is O(1) (members are shared behind an [`Arc`]), and
/// updates return a new value. Equality compares the members in order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TraceState {
    /// `None` exactly when there are no members.
    inner: Option<Arc<TraceStateInner>>,
}

impl TraceState {
    /// Maximum number of list members.
    pub const MAX_MEMBERS: usize = 32;

    /// Parses one `tracestate` header value.
    ///
    /// Members are separated by `,`, with optional whitespace (space, tab)
    /// around each; empty members are skipped. Any invalid member, a duplicate
    /// key or more than [`TraceState::MAX_MEMBERS`] members is an error, in
    /// which case the whole `tracestate` must be discarded. Never panics.
    ///
    /// ```
    /// use foundations::telemetry::tracing::w3c::{TraceState, TraceStateError};
    ///
    /// let state = TraceState::parse(b"congo=t61rcWkgMzE, rojo=00f067aa0ba902b7").unwrap();
    /// assert_eq!(state.len(), 2);
    /// assert_eq!(state.get("rojo"), Some("00f067aa0ba902b7"));
    /// assert_eq!(state.to_header_value(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    ///
    /// assert_eq!(
    ///     TraceState::parse(b"a=1,a=2"),
    ///     Err(TraceStateError::DuplicateKey("a".to_owned()))
    /// );
    /// ```
    pub fn parse(value: &[u8]) -> Result<Self, TraceStateError> {
        let mut parser = Parser::new(value.len());
        parser.feed(value)?;
        Ok(parser.builder.finish())
    }

    /// Parses several `tracestate` header values of one request as if they
    /// were joined with `,` in order.
    pub fn parse_header_values<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, TraceStateError> {
        let mut parser = Parser::new(0);
        for value in values {
            parser.feed(value)?;
        }
        Ok(parser.builder.finish())
    }

    /// Returns `true` if there are no members.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// Returns the number of members.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.members.len())
    }

    /// Returns the value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// Iterates over the `(key, value)` members, leftmost (most recent) first.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .iter()
            .flat_map(|inner| inner.members.iter().map(|m| inner.pair(m)))
    }

    /// Returns a new state with `key` set to `value` and moved to the far
    /// left, as a vendor does when it updates its own entry. Other members
    /// keep their order; if that would exceed [`TraceState::MAX_MEMBERS`],
    /// the rightmost member is dropped.
    ///
    /// Errors (with `index: 0`) if the key or value is invalid.
    pub fn with_member(&self, key: &str, value: &str) -> Result<Self, TraceStateError> {
        let key = validate_key(key.as_bytes()).ok_or(TraceStateError::InvalidKey { index: 0 })?;
        let value =
            validate_value(value.as_bytes()).ok_or(TraceStateError::InvalidValue { index: 0 })?;
        let mut builder =
            Builder::with_capacity(self.header_str().len() + key.len() + value.len() + 2);
        builder.push(key, value);
        for (k, v) in self.members() {
            if builder.members.len() == Self::MAX_MEMBERS {
                break;
            }
            if k != key {
                builder.push(k, v);
            }
        }
        Ok(builder.finish())
    }

    /// Returns a new state without `key` (a clone if it is absent).
    #[must_use]
    pub fn without_member(&self, key: &str) -> Self {
        if self.get(key).is_none() {
            return self.clone();
        }
        let mut builder = Builder::with_capacity(self.header_str().len());
        for (k, v) in self.members().filter(|&(k, _)| k != key) {
            builder.push(k, v);
        }
        builder.finish()
    }

    /// Returns a state whose header value is at most `max_len` bytes, dropping
    /// whole members: first members longer than 128 characters (`key=value`),
    /// rightmost first, then members from the right. Members are only dropped
    /// while the header is still too long. Returns a clone if it already fits.
    #[must_use]
    pub fn truncated(&self, max_len: usize) -> Self {
        if self.header_str().len() <= max_len {
            return self.clone();
        }
        let members: Vec<(&str, &str)> = self.members().collect();
        let lens: Vec<usize> = members.iter().map(|(k, v)| k.len() + 1 + v.len()).collect();
        let mut keep = vec![true; members.len()];
        let mut sum: usize = lens.iter().sum();
        let mut count = members.len();
        let fits = |sum: usize, count: usize| count == 0 || sum + count - 1 <= max_len;
        while !fits(sum, count) {
            let kept = || (0..members.len()).rev().filter(|&i| keep[i]);
            let victim = kept()
                .find(|&i| lens[i] > LONG_MEMBER_LEN)
                .or_else(|| kept().next());
            let Some(victim) = victim else { break };
            keep[victim] = false;
            sum -= lens[victim];
            count -= 1;
        }
        let mut builder = Builder::with_capacity(max_len);
        for ((k, v), _) in members.iter().zip(&keep).filter(|(_, keep)| **keep) {
            builder.push(k, v);
        }
        builder.finish()
    }

    /// Formats the header value `k1=v1,k2=v2` (no spaces); empty when there
    /// are no members.
    pub fn to_header_value(&self) -> String {
        self.header_str().to_owned()
    }

    /// Borrows the formatted header value (see
    /// [`TraceState::to_header_value`]) without allocating.
    pub fn header_str(&self) -> &str {
        self.inner.as_ref().map_or("", |i| i.header.as_str())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceState")
            .field(&self.header_str())
            .finish()
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_str())
    }
}

impl FromStr for TraceState {
    type Err = TraceStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
    const PARENT: u64 = 0x00f067aa0ba902b7;

    fn tp(s: &str) -> Result<TraceparentContext, TraceparentError> {
        TraceparentContext::parse(s.as_bytes())
    }

    fn ts(s: &str) -> Result<TraceState, TraceStateError> {
        TraceState::parse(s.as_bytes())
    }

    fn expected() -> TraceparentContext {
        TraceparentContext::new(
            TraceId::from_u128(TRACE),
            SpanId::from_u64(PARENT),
            TraceFlags::SAMPLED,
        )
    }

    // ----- identity -------------------------------------------------------

    #[test]
    fn trace_id_basics() {
        assert!(!TraceId::INVALID.is_valid());
        let id = TraceId::from_u128(TRACE);
        assert!(id.is_valid());
        assert_eq!(id.to_u128(), TRACE);
        assert_eq!(id.to_bytes()[0], 0x4b);
        assert_eq!(id.to_bytes()[15], 0x36);
        assert_eq!(TraceId::from_bytes(id.to_bytes()), id);
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(format!("{id:?}"), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceId::from_u128(1).to_string(), format!("{:032x}", 1));
        assert!(TraceId::from_u128(1) < TraceId::from_u128(2));
        for _ in 0..100 {
            assert!(TraceId::random().is_valid());
        }
        assert_ne!(TraceId::random(), TraceId::random());
    }

    #[test]
    fn span_id_basics() {
        assert!(!SpanId::INVALID.is_valid());
        let id = SpanId::from_u64(PARENT);
        assert_eq!(id.to_u64(), PARENT);
        assert_eq!(
            id.to_bytes(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(SpanId::from_bytes(id.to_bytes()), id);
        assert_eq!(id.to_string(), "00f067aa0ba902b7");
        assert_eq!(format!("{id:?}"), "00f067aa0ba902b7");
        for _ in 0..100 {
            assert!(SpanId::random().is_valid());
        }
    }

    #[test]
    fn flags() {
        let f = TraceFlags::default();
        assert_eq!(f.bits(), 0);
        assert!(!f.is_sampled() && !f.is_random());
        let f = f.with_sampled(true).with_random(true);
        assert_eq!(f.bits(), 0x03);
        assert!(f.is_sampled() && f.is_random());
        assert_eq!(f.with_sampled(false).bits(), 0x02);
        assert_eq!(f.with_random(false).bits(), 0x01);
        assert_eq!(TraceFlags::from_bits(0xff).outbound().bits(), 0x03);
        assert_eq!(TraceFlags::from_bits(0xfc).outbound().bits(), 0x00);
        assert_eq!(TraceFlags::SAMPLED.bits(), 0x01);
        assert_eq!(TraceFlags::RANDOM.bits(), 0x02);
    }

    // ----- traceparent: valid ---------------------------------------------

    #[test]
    fn traceparent_valid() {
        assert_eq!(tp(VALID), Ok(expected()));
        assert_eq!(VALID.parse::<TraceparentContext>(), Ok(expected()));
        let unsampled = tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.flags.is_sampled());
    }

    #[test]
    fn traceparent_format() {
        let ctx = expected();
        assert_eq!(ctx.to_header_value(), VALID);
        assert_eq!(ctx.to_string(), VALID);
        let mut buf = [0u8; 55];
        ctx.write_header_value(&mut buf);
        assert_eq!(&buf[..], VALID.as_bytes());
        // Unknown flag bits are never sent.
        let all = TraceparentContext {
            flags: TraceFlags::from_bits(0xff),
            ..ctx
        };
        assert!(all.to_header_value().ends_with("-03"));
        let small = TraceparentContext::new(
            TraceId::from_u128(1),
            SpanId::from_u64(2),
            TraceFlags::default(),
        );
        assert_eq!(
            small.to_header_value(),
            "00-00000000000000000000000000000001-0000000000000002-00"
        );
    }

    #[test]
    fn traceparent_unknown_flag_bits_are_kept_inbound() {
        let ctx = tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
        assert_eq!(ctx.flags.bits(), 0xff);
        assert!(ctx.to_header_value().ends_with("-03"));
    }

    #[test]
    fn traceparent_whitespace_trimmed() {
        assert_eq!(tp(&format!("  {VALID}")), Ok(expected()));
        assert_eq!(tp(&format!("{VALID} \t")), Ok(expected()));
        assert_eq!(tp(&format!("\t {VALID}\t ")), Ok(expected()));
        // Only space and tab are OWS.
        assert_eq!(
            tp(&format!("{VALID}\n")),
            Err(TraceparentError::TrailingData)
        );
        assert!(tp(&format!("\n{VALID}")).is_err());
        // Whitespace inside is not allowed.
        assert!(tp("00- 4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_err());
        assert!(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7- 1").is_err());
    }

    #[test]
    fn traceparent_empty() {
        assert_eq!(tp(""), Err(TraceparentError::Empty));
        assert_eq!(tp(" \t "), Err(TraceparentError::Empty));
    }

    // ----- traceparent: versions ------------------------------------------

    #[test]
    fn traceparent_version_ff_forbidden() {
        assert_eq!(
            tp("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::ForbiddenVersion)
        );
    }

    #[test]
    fn traceparent_version_must_be_lowercase_hex() {
        assert_eq!(
            tp("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidVersion)
        );
        assert_eq!(
            tp("+1-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidVersion)
        );
        assert_eq!(
            tp("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::UppercaseHex {
                field: TraceparentField::Version
            })
        );
        assert_eq!(
            tp("FF-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::UppercaseHex {
                field: TraceparentField::Version
            })
        );
        // A three-digit version shifts the delimiter.
        assert_eq!(
            tp("000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidDelimiter { offset: 2 })
        );
    }

    #[test]
    fn traceparent_version_00_trailing_data() {
        assert_eq!(
            tp(&format!("{VALID}-xyz")),
            Err(TraceparentError::TrailingData)
        );
        assert_eq!(
            tp(&format!("{VALID}-")),
            Err(TraceparentError::TrailingData)
        );
        assert_eq!(
            tp(&format!("{VALID}x")),
            Err(TraceparentError::TrailingData)
        );
        assert_eq!(
            tp(&format!("{VALID}0")),
            Err(TraceparentError::TrailingData)
        );
    }

    #[test]
    fn traceparent_future_version() {
        let exact = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(tp(exact), Ok(expected()));
        let extended = format!("{exact}-what-ever");
        let ctx = tp(&extended).unwrap();
        assert_eq!(ctx, expected());
        // Re-emitted as version 00.
        assert_eq!(ctx.to_header_value(), VALID);
        // After the flags there must be end-of-input or '-'.
        assert_eq!(
            tp(&format!("{exact}what")),
            Err(TraceparentError::TrailingData)
        );
        assert_eq!(
            tp(&format!("{exact}0-what")),
            Err(TraceparentError::TrailingData)
        );
        // Future versions are still validated field by field.
        assert_eq!(
            tp("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x-what"),
            Err(TraceparentError::InvalidFlags)
        );
        assert_eq!(
            tp("01-00000000000000000000000000000000-00f067aa0ba902b7-01-x"),
            Err(TraceparentError::ZeroTraceId)
        );
    }

    #[test]
    fn traceparent_too_short() {
        assert_eq!(
            tp(&VALID[..54]),
            Err(TraceparentError::InvalidLength {
                expected: 55,
                actual: 54
            })
        );
        assert_eq!(
            tp("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
            Err(TraceparentError::InvalidLength {
                expected: 55,
                actual: 54
            })
        );
        assert_eq!(
            tp("0"),
            Err(TraceparentError::InvalidLength {
                expected: 55,
                actual: 1
            })
        );
        assert!(matches!(
            tp("00"),
            Err(TraceparentError::InvalidLength { .. })
        ));
    }

    // ----- traceparent: fields --------------------------------------------

    #[test]
    fn traceparent_uppercase_rejected() {
        assert_eq!(
            tp("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::UppercaseHex {
                field: TraceparentField::TraceId
            })
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"),
            Err(TraceparentError::UppercaseHex {
                field: TraceparentField::ParentId
            })
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"),
            Err(TraceparentError::UppercaseHex {
                field: TraceparentField::Flags
            })
        );
    }

    #[test]
    fn traceparent_signs_rejected() {
        assert_eq!(
            tp("00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidTraceId)
        );
        assert_eq!(
            tp("00--bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidTraceId)
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidParentId)
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736--0f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidParentId)
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1"),
            Err(TraceparentError::InvalidFlags)
        );
    }

    #[test]
    fn traceparent_bad_chars() {
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidTraceId)
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01"),
            Err(TraceparentError::InvalidParentId)
        );
        for flags in ["0g", "zz", "x1", " 1", "\t1", "1.", "..", "é"] {
            let header = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
            assert_eq!(tp(&header), Err(TraceparentError::InvalidFlags), "{header}");
        }
    }

    #[test]
    fn traceparent_delimiters() {
        assert_eq!(
            tp("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidDelimiter { offset: 2 })
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"),
            Err(TraceparentError::InvalidDelimiter { offset: 35 })
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01"),
            Err(TraceparentError::InvalidDelimiter { offset: 52 })
        );
    }

    #[test]
    fn traceparent_zero_ids() {
        assert_eq!(
            tp("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(TraceparentError::ZeroTraceId)
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Err(TraceparentError::ZeroParentId)
        );
    }

    #[test]
    fn traceparent_non_utf8_does_not_panic() {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[10] = 0xff;
        assert_eq!(
            TraceparentContext::parse(&bytes),
            Err(TraceparentError::InvalidTraceId)
        );
        // Multi-byte UTF-8 straddling field boundaries.
        let s = "00-é4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(tp(s).is_err());
        let s = "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(tp(s), Err(TraceparentError::InvalidVersion));
        assert!(TraceparentContext::parse(&[0xc3]).is_err());
        assert!(TraceparentContext::parse(&[0xff; 100]).is_err());
    }

    #[test]
    fn traceparent_header_values() {
        let none: [&[u8]; 0] = [];
        assert_eq!(
            TraceparentContext::parse_header_values(none),
            Err(TraceparentError::Missing)
        );
        assert_eq!(
            TraceparentContext::parse_header_values([VALID.as_bytes()]),
            Ok(expected())
        );
        assert_eq!(
            TraceparentContext::parse_header_values([VALID.as_bytes(), VALID.as_bytes()]),
            Err(TraceparentError::Multiple)
        );
        assert_eq!(
            TraceparentContext::parse_header_values([&b""[..]]),
            Err(TraceparentError::Empty)
        );
        // A combined (comma-joined) header value is invalid.
        let joined = format!("{VALID},{VALID}");
        assert_eq!(
            TraceparentContext::parse_header_values([joined.as_bytes()]),
            Err(TraceparentError::TrailingData)
        );
    }

    #[test]
    fn traceparent_error_messages() {
        let e = TraceparentError::UppercaseHex {
            field: TraceparentField::TraceId,
        };
        assert_eq!(
            e.to_string(),
            "traceparent trace-id contains uppercase hex digits; only lowercase is allowed"
        );
        assert_eq!(
            TraceparentError::InvalidDelimiter { offset: 35 }.to_string(),
            "traceparent: expected '-' at byte 35"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(TraceparentError::ZeroTraceId);
        assert_eq!(boxed.to_string(), "traceparent trace-id is all zeros");
    }

    // ----- tracestate -----------------------------------------------------

    fn members(state: &TraceState) -> Vec<(String, String)> {
        state
            .members()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn tracestate_basic() {
        let s = ts("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").unwrap();
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        assert_eq!(s.get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(s.get("rojo"), Some("00f067aa0ba902b7"));
        assert_eq!(s.get("nope"), None);
        assert_eq!(
            s.members().collect::<Vec<_>>(),
            vec![("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]
        );
        assert_eq!(
            s.to_header_value(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        );
        assert_eq!(s.to_string(), s.to_header_value());
        assert_eq!("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".parse(), Ok(s));
    }

    #[test]
    fn tracestate_empty() {
        let s = ts("").unwrap();
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        assert_eq!(s.to_header_value(), "");
        assert_eq!(s, TraceState::default());
        assert_eq!(ts(" , ,\t,,"), Ok(TraceState::default()));
    }

    #[test]
    fn tracestate_whitespace_and_empty_members() {
        let s = ts(" a=1 ,\tb=2\t, ,,c=3,").unwrap();
        assert_eq!(s.to_header_value(), "a=1,b=2,c=3");
        assert_eq!(s, ts("a=1,b=2,c=3").unwrap());
        // Whitespace inside the key or around '=' before the key ends is invalid.
        assert_eq!(ts("a =1"), Err(TraceStateError::InvalidKey { index: 0 }));
        // A value may start with a space.
        assert_eq!(ts("a= 1").unwrap().get("a"), Some(" 1"));
    }

    #[test]
    fn tracestate_max_members() {
        let header32 = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(ts(&header32).unwrap().len(), 32);
        // Empty members do not count.
        assert_eq!(ts(&format!(",,{header32},, ,")).unwrap().len(), 32);
        let header33 = format!("{header32},k32=v");
        assert_eq!(ts(&header33), Err(TraceStateError::TooManyMembers));
    }

    #[test]
    fn tracestate_key_rules() {
        let key256 = format!("a{}", "b".repeat(255));
        assert_eq!(ts(&format!("{key256}=v")).unwrap().get(&key256), Some("v"));
        let key257 = format!("a{}", "b".repeat(256));
        assert_eq!(
            ts(&format!("{key257}=v")),
            Err(TraceStateError::InvalidKey { index: 0 })
        );
        for key in ["0abc", "a_-*/@9", "tenant@system", "fw529a3039@dt"] {
            assert!(ts(&format!("{key}=v")).is_ok(), "{key}");
        }
        for key in ["", "Abc", "aBc", "_a", "-a", "@a", "a.b", "a b", "é"] {
            assert_eq!(
                ts(&format!("x=1,{key}=v")),
                Err(TraceStateError::InvalidKey { index: 1 }),
                "{key}"
            );
        }
    }

    #[test]
    fn tracestate_value_rules() {
        let v256 = "x".repeat(256);
        assert!(ts(&format!("k={v256}")).is_ok());
        let v257 = "x".repeat(257);
        assert_eq!(
            ts(&format!("k={v257}")),
            Err(TraceStateError::InvalidValue { index: 0 })
        );
        assert_eq!(ts("k="), Err(TraceStateError::InvalidValue { index: 0 }));
        assert_eq!(ts("k=  "), Err(TraceStateError::InvalidValue { index: 0 }));
        assert_eq!(ts("k=a=b"), Err(TraceStateError::InvalidValue { index: 0 }));
        assert_eq!(
            ts("k=a\tb"),
            Err(TraceStateError::InvalidValue { index: 0 })
        );
        assert_eq!(
            ts("k=a\x7fb"),
            Err(TraceStateError::InvalidValue { index: 0 })
        );
        assert_eq!(ts("k=é"), Err(TraceStateError::InvalidValue { index: 0 }));
        assert_eq!(ts("k=a b ~!").unwrap().get("k"), Some("a b ~!"));
        // A trailing space in a header is optional whitespace, not part of the value...
        assert_eq!(ts("k=v ").unwrap().get("k"), Some("v"));
        // ...but a value ending in a space is invalid.
        assert_eq!(
            TraceState::default().with_member("k", "v "),
            Err(TraceStateError::InvalidValue { index: 0 })
        );
    }

    #[test]
    fn tracestate_invalid_member() {
        assert_eq!(
            ts("a=1,novalue"),
            Err(TraceStateError::InvalidMember { index: 1 })
        );
        assert_eq!(ts("=v"), Err(TraceStateError::InvalidKey { index: 0 }));
    }

    #[test]
    fn tracestate_duplicate_key() {
        assert_eq!(
            ts("a=1,b=2,a=3"),
            Err(TraceStateError::DuplicateKey("a".to_owned()))
        );
    }

    #[test]
    fn tracestate_non_utf8_does_not_panic() {
        assert!(TraceState::parse(b"a=\xff").is_err());
        assert!(TraceState::parse(b"\xff=a").is_err());
        assert!(TraceState::parse(&[0xc3, b'=', 0xa9]).is_err());
    }

    #[test]
    fn tracestate_header_values_are_joined() {
        let s = TraceState::parse_header_values([&b"a=1, b=2"[..], b"", b" c=3"]).unwrap();
        assert_eq!(s.to_header_value(), "a=1,b=2,c=3");
        assert_eq!(
            TraceState::parse_header_values([&b"a=1"[..], b"a=2"]),
            Err(TraceStateError::DuplicateKey("a".to_owned()))
        );
        assert_eq!(
            TraceState::parse_header_values([&b"a=1"[..], b"oops"]),
            Err(TraceStateError::InvalidMember { index: 1 })
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(
            TraceState::parse_header_values(none),
            Ok(TraceState::default())
        );
        let first = (0..20)
            .map(|i| format!("a{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let second = (0..13)
            .map(|i| format!("b{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            TraceState::parse_header_values([first.as_bytes(), second.as_bytes()]),
            Err(TraceStateError::TooManyMembers)
        );
    }

    #[test]
    fn tracestate_clone_is_shared() {
        let s = ts("a=1,b=2").unwrap();
        let c = s.clone();
        assert!(Arc::ptr_eq(
            s.inner.as_ref().unwrap(),
            c.inner.as_ref().unwrap()
        ));
        assert_eq!(s, c);
    }

    #[test]
    fn tracestate_with_member() {
        let s = ts("a=1,b=2,c=3").unwrap();
        let added = s.with_member("new", "x").unwrap();
        assert_eq!(added.to_header_value(), "new=x,a=1,b=2,c=3");
        let updated = s.with_member("b", "9").unwrap();
        assert_eq!(updated.to_header_value(), "b=9,a=1,c=3");
        // The original is untouched.
        assert_eq!(s.to_header_value(), "a=1,b=2,c=3");
        assert_eq!(
            s.with_member("B", "1"),
            Err(TraceStateError::InvalidKey { index: 0 })
        );
        assert_eq!(
            s.with_member("k", "a,b"),
            Err(TraceStateError::InvalidValue { index: 0 })
        );
        assert_eq!(
            TraceState::default()
                .with_member("k", "v")
                .unwrap()
                .to_header_value(),
            "k=v"
        );
    }

    #[test]
    fn tracestate_with_member_drops_rightmost_when_full() {
        let header32 = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let full = ts(&header32).unwrap();
        let added = full.with_member("new", "x").unwrap();
        assert_eq!(added.len(), 32);
        assert_eq!(added.members().next(), Some(("new", "x")));
        assert_eq!(added.get("k31"), None);
        assert_eq!(added.get("k30"), Some("v"));
        // Updating an existing key in a full list drops nothing.
        let updated = full.with_member("k31", "y").unwrap();
        assert_eq!(updated.len(), 32);
        assert_eq!(updated.members().next(), Some(("k31", "y")));
        assert_eq!(updated.get("k30"), Some("v"));
    }

    #[test]
    fn tracestate_without_member() {
        let s = ts("a=1,b=2,c=3").unwrap();
        assert_eq!(s.without_member("b").to_header_value(), "a=1,c=3");
        assert_eq!(s.without_member("zz"), s);
        assert!(ts("a=1").unwrap().without_member("a").is_empty());
    }

    #[test]
    fn tracestate_truncation_order() {
        let long1 = format!("l1={}", "x".repeat(130)); // 133 chars
        let long2 = format!("l2={}", "y".repeat(130)); // 133 chars
        let header = format!("a=1,{long1},b=2,{long2},c=3");
        let s = ts(&header).unwrap();
        let full = header.len();
        assert_eq!(s.truncated(full), s);
        assert_eq!(s.truncated(usize::MAX), s);
        // One long member must go: the rightmost long one.
        let t = s.truncated(full - 1);
        assert_eq!(t.to_header_value(), format!("a=1,{long1},b=2,c=3"));
        // Both long ones go before any short one.
        let t = s.truncated(full - 134 - 1);
        assert_eq!(t.to_header_value(), "a=1,b=2,c=3");
        // Then from the right.
        let t = s.truncated(10);
        assert_eq!(t.to_header_value(), "a=1,b=2");
        let t = s.truncated(3);
        assert_eq!(t.to_header_value(), "a=1");
        assert!(s.truncated(2).is_empty());
        assert!(s.truncated(0).is_empty());
    }

    #[test]
    fn tracestate_truncation_exactly_128_is_not_long() {
        let m128 = format!("m={}", "x".repeat(126));
        assert_eq!(m128.len(), 128);
        let s = ts(&format!("{m128},a=1")).unwrap();
        // Nothing is over 128 characters, so the rightmost member goes.
        assert_eq!(s.truncated(128).to_header_value(), m128);
    }

    #[test]
    fn tracestate_error_messages() {
        assert_eq!(
            TraceStateError::TooManyMembers.to_string(),
            "tracestate has more than 32 list members"
        );
        assert_eq!(
            TraceStateError::DuplicateKey("a".into()).to_string(),
            "tracestate key \"a\" appears more than once"
        );
        assert!(
            TraceStateError::InvalidKey { index: 3 }
                .to_string()
                .starts_with("tracestate member #3: invalid key")
        );
        let boxed: Box<dyn std::error::Error> =
            Box::new(TraceStateError::InvalidMember { index: 0 });
        assert!(boxed.to_string().contains("no '='"));
    }

    #[test]
    fn tracestate_debug() {
        assert_eq!(
            format!("{:?}", ts("a=1,b=2").unwrap()),
            "TraceState(\"a=1,b=2\")"
        );
    }

    // ----- property tests -------------------------------------------------

    fn key_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9][a-z0-9_\\-*/@]{0,12}",
            1 => "[a-z0-9][a-z0-9_\\-*/@]{0,255}",
        ]
    }

    fn value_strategy() -> impl Strategy<Value = String> {
        // Printable ASCII except ',' and '=', not ending in a space.
        prop_oneof![
            4 => "[ -+\\--<>-~]{0,16}[!-+\\--<>-~]",
            1 => "[ -+\\--<>-~]{0,255}[!-+\\--<>-~]",
        ]
    }

    fn members_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::btree_map(key_strategy(), value_strategy(), 0..=32)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
    }

    fn separator_strategy() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![",", ", ", " ,", ",\t", " , ,", ",,", "\t,\t"])
    }

    fn traceparent_strategy() -> impl Strategy<Value = TraceparentContext> {
        (1..=u128::MAX, 1..=u64::MAX, any::<u8>()).prop_map(|(t, p, f)| {
            TraceparentContext::new(
                TraceId::from_u128(t),
                SpanId::from_u64(p),
                TraceFlags::from_bits(f),
            )
        })
    }

    proptest! {
        #[test]
        fn prop_traceparent_roundtrip(ctx in traceparent_strategy()) {
            let header = ctx.to_header_value();
            prop_assert_eq!(header.len(), 55);
            let parsed = TraceparentContext::parse(header.as_bytes()).unwrap();
            prop_assert_eq!(parsed, TraceparentContext { flags: ctx.flags.outbound(), ..ctx });
            let mut buf = [0u8; 55];
            ctx.write_header_value(&mut buf);
            prop_assert_eq!(&buf[..], header.as_bytes());
        }

        #[test]
        fn prop_traceparent_future_version(
            ctx in traceparent_strategy(),
            version in 1u8..=0xfe,
            suffix in "(-[ -~]{0,20})?",
        ) {
            let header = format!("{version:02x}{}{suffix}", &ctx.to_header_value()[2..]);
            let parsed = TraceparentContext::parse(header.as_bytes()).unwrap();
            prop_assert_eq!(parsed, TraceparentContext { flags: ctx.flags.outbound(), ..ctx });
        }

        #[test]
        fn prop_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(ctx) = TraceparentContext::parse(&bytes) {
                let again = TraceparentContext::parse(ctx.to_header_value().as_bytes()).unwrap();
                prop_assert_eq!(again, TraceparentContext { flags: ctx.flags.outbound(), ..ctx });
            }
            let parsed = TraceState::parse(&bytes);
            let split: Vec<&[u8]> = bytes.split(|&b| b == b',').collect();
            prop_assert_eq!(TraceState::parse_header_values(split), parsed.clone());
            if let Ok(state) = parsed {
                prop_assert_eq!(TraceState::parse(state.to_header_value().as_bytes()), Ok(state));
            }
        }

        #[test]
        fn prop_traceparent_mutations_never_panic(
            ctx in traceparent_strategy(),
            edits in prop::collection::vec((0usize..60, any::<u8>()), 1..4),
        ) {
            let mut bytes = ctx.to_header_value().into_bytes();
            for (pos, byte) in edits {
                if pos < bytes.len() {
                    bytes[pos] = byte;
                } else {
                    bytes.push(byte);
                }
            }
            if let Ok(parsed) = TraceparentContext::parse(&bytes) {
                prop_assert!(parsed.trace_id.is_valid() && parsed.parent_id.is_valid());
            }
        }

        #[test]
        fn prop_tracestate_roundtrip(
            members in members_strategy(),
            seps in prop::collection::vec(separator_strategy(), 32),
            lead in "[ \t,]{0,3}",
            trail in "[ \t,]{0,3}",
        ) {
            let mut header = lead.clone();
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    header.push_str(seps[i]);
                }
                header.push_str(k);
                header.push('=');
                header.push_str(v);
            }
            header.push_str(&trail);
            let state = TraceState::parse(header.as_bytes()).unwrap();
            prop_assert_eq!(super::tests::members(&state), members.clone());
            let formatted = state.to_header_value();
            let reparsed = TraceState::parse(formatted.as_bytes()).unwrap();
            prop_assert_eq!(&reparsed, &state);
            prop_assert_eq!(reparsed.to_header_value(), formatted);
        }

        #[test]
        fn prop_tracestate_truncated(members in members_strategy(), max_len in 0usize..4000) {
            let header = members
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let state = TraceState::parse(header.as_bytes()).unwrap();
            let truncated = state.truncated(max_len);
            let out = truncated.to_header_value();
            prop_assert!(out.len() <= max_len);
            if header.len() <= max_len {
                prop_assert_eq!(&truncated, &state);
            }
            // The result is a subsequence of the original members, in order.
            let mut original = state.members();
            for kept in truncated.members() {
                prop_assert!(original.any(|m| m == kept), "{:?} not in order", kept);
            }
            prop_assert_eq!(TraceState::parse(out.as_bytes()), Ok(truncated));
        }

        #[test]
        fn prop_tracestate_with_member(
            members in members_strategy(),
            key in key_strategy(),
            value in value_strategy(),
        ) {
            let header = members
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let state = TraceState::parse(header.as_bytes()).unwrap();
            let updated = state.with_member(&key, &value).unwrap();
            prop_assert_eq!(updated.members().next(), Some((key.as_str(), value.as_str())));
            prop_assert!(updated.len() <= TraceState::MAX_MEMBERS);
            let others: Vec<_> = state.members().filter(|&(k, _)| k != key).collect();
            let rest: Vec<_> = updated.members().skip(1).collect();
            prop_assert_eq!(&rest[..], &others[..rest.len()]);
            prop_assert_eq!(TraceState::parse(updated.to_header_value().as_bytes()), Ok(updated));
        }
    }
}
