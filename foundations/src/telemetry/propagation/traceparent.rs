//! The W3C `traceparent` header: [`TraceparentContext`], parsed from raw header bytes and
//! formatted without allocating.
//!
//! Rules (W3C Trace Context, Level 2): `version-traceid-parentid-flags`, 2, 32, 16 and 2
//! lowercase hex digits separated by `-`. Version `ff` is forbidden; version `00` must be
//! exactly 55 bytes; a higher version is parsed forward-compatibly (the four known fields,
//! then end of input or `-`). All-zero trace or parent ids are invalid. Optional whitespace
//! (space and tab) around the value is ignored. Output always uses version `00` and only the
//! flag bits this implementation knows ([`TraceFlags::outbound`]). Arbitrary (including
//! non-UTF-8) input is rejected with a typed error and never panics.
//!
//! This module owns the header's grammar only; which span a header describes is the API's
//! business.

use super::ids::{
    HexError, SpanId, TraceFlags, TraceId, ascii_str, decode_hex, encode_hex, trim_ows,
};
use std::fmt;
use std::str::FromStr;

/// Name of the `traceparent` header (lowercase, as it should be sent).
pub const TRACEPARENT_HEADER: &str = "traceparent";

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

/// Decodes 8 lowercase hex digits, the first in the most significant byte of `x`, all at
/// once (bytes as lanes of one word). The second value is zero when every byte was one of
/// `0-9a-f`; otherwise the first means nothing. No branch: callers check once for many.
#[inline(always)]
fn hex8(x: u64) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Below 0x80 a byte plus at most 0x7f stays in its lane, so each sum's high bit says
    // whether the byte reached a bound.
    let ascii = x & !HIGH;
    let at_least = |low: u64| ascii + (0x80 - low) * ONES;
    let above = |high: u64| ascii + (0x7f - high) * ONES;
    let digit = at_least(0x30) & !above(0x39);
    let letter = at_least(0x61) & !above(0x66) & HIGH;
    let bad = (x | !(digit | letter)) & HIGH;
    // A digit's low nibble is its value; a letter's (`a` is 0x61) is its value less 9.
    let nibbles = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Pack the eight nibbles, one per byte, into the low 32 bits, in order.
    let pairs = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | pairs >> 8) & 0x0000_ffff_0000_ffff;
    ((quads | quads >> 16) & 0xffff_ffff, bad)
}

/// Decodes 16 lowercase hex digits, the first the most significant, as two [`hex8`]
/// words. The flag is `true` when every byte was one of `0-9a-f`; otherwise the value
/// means nothing. No branch: callers check once for many. (An SSE2 version took about a
/// hundred instructions fewer per `traceparent`, but needs `unsafe` to call: not worth a
/// third `unsafe` in the crate.)
#[inline(always)]
fn hex16(digits: &[u8; 16]) -> (u64, bool) {
    let word = |at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&digits[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let ((high, high_bad), (low, low_bad)) = (hex8(word(0)), hex8(word(8)));
    (high << 32 | low, high_bad | low_bad == 0)
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
    /// use foundations::telemetry::tracing::{TraceparentContext, TraceparentError};
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
        // Nearly every inbound value is the canonical version-00 form; anything else (and
        // every error, so that each is reported as the full reading reports it) takes the
        // full reading below.
        if let Some(parsed) = Self::parse_canonical(value) {
            return Ok(parsed);
        }
        Self::parse_full(value)
    }

    /// The canonical form only: exactly 55 bytes, version `00`, lowercase hex, non-zero
    /// ids. `None` for anything else, which [`parse_full`](Self::parse_full) then reads;
    /// what this accepts, that accepts identically.
    #[inline]
    fn parse_canonical(value: &[u8]) -> Option<Self> {
        let v: &[u8; Self::HEADER_LEN] = value.try_into().ok()?;
        // Leading `00` and trailing hex digits: no whitespace to trim.
        if v[..3] != *b"00-" || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let digits =
            |at: usize| -> &[u8; 16] { v[at..at + 16].try_into().expect("16 bytes within the 55") };
        // The flags: two digits, behind six zeros.
        let flags = u64::from_be_bytes(*b"000000\0\0") | u64::from(v[53]) << 8 | u64::from(v[54]);
        // Every field decoded, then one check for all of them.
        let (high, high_valid) = hex16(digits(3));
        let (low, low_valid) = hex16(digits(19));
        let (parent_id, parent_valid) = hex16(digits(36));
        let (flags, flags_bad) = hex8(flags);
        let trace_id = u128::from(high) << 64 | u128::from(low);
        let valid = high_valid & low_valid & parent_valid & (flags_bad == 0);
        if !valid || trace_id == 0 || parent_id == 0 {
            return None;
        }
        Some(TraceparentContext {
            trace_id: TraceId::from_u128(trace_id),
            parent_id: SpanId::from_u64(parent_id),
            flags: TraceFlags::from_bits(flags as u8),
        })
    }

    /// Reads any value, and says why one is rejected. Out of line: the canonical reading
    /// before it stays small.
    #[inline(never)]
    fn parse_full(value: &[u8]) -> Result<Self, TraceparentError> {
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
            trace_id: TraceId::from_u128(trace_id),
            // Both fit: 16 and 2 hex digits were decoded.
            parent_id: SpanId::from_u64(parent_id as u64),
            flags: TraceFlags::from_bits(flags as u8),
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
        encode_hex(self.trace_id.to_u128(), &mut out[3..35]);
        out[35] = b'-';
        encode_hex(u128::from(self.parent_id.to_u64()), &mut out[36..52]);
        out[52] = b'-';
        encode_hex(u128::from(self.flags.outbound().bits()), &mut out[53..55]);
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

#[cfg(test)]
mod canonical_tests {
    use super::*;

    /// Canonical values: ids with every hex digit, extremes, both flag states.
    const VALUES: [&[u8; 55]; 4] = [
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-0123456789abcdef0123456789abcdef-fedcba9876543210-00",
        b"00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff",
        b"00-00000000000000000000000000000001-0000000000000001-09",
    ];

    #[test]
    fn the_canonical_reading_agrees_with_the_full_one_for_every_byte_anywhere() {
        for value in VALUES {
            assert_eq!(
                TraceparentContext::parse_canonical(value),
                Some(TraceparentContext::parse_full(value).unwrap()),
            );
            for at in 0..value.len() {
                for byte in 0..=u8::MAX {
                    let mut mutated = *value;
                    mutated[at] = byte;
                    let full = TraceparentContext::parse_full(&mutated);
                    match TraceparentContext::parse_canonical(&mutated) {
                        Some(fast) => assert_eq!(Ok(fast), full, "{mutated:?}"),
                        // Only what is not canonical (an error, a later version) goes
                        // the long way.
                        None => assert!(
                            full.is_err() || mutated[..2] != *b"00",
                            "{mutated:?} is canonical: {full:?}"
                        ),
                    }
                    assert_eq!(TraceparentContext::parse(&mutated), full);
                }
            }
        }
    }

    /// Lowercase hex digits read one at a time: what the word-wise readings must agree with.
    fn plain_hex(bytes: &[u8]) -> Option<u64> {
        bytes.iter().try_fold(0u64, |acc, &b| {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            Some(acc << 4 | u64::from(digit))
        })
    }

    #[test]
    fn sixteen_digits_decode_as_the_plain_reading_for_every_byte_in_every_lane() {
        for base in [
            *b"0000000000000000",
            *b"0123456789abcdef",
            *b"ffffffffffffffff",
        ] {
            for lane in 0..16 {
                for byte in 0..=u8::MAX {
                    let mut bytes = base;
                    bytes[lane] = byte;
                    let (value, valid) = hex16(&bytes);
                    assert_eq!(valid.then_some(value), plain_hex(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn eight_digits_decode_as_the_plain_reading_for_every_byte_in_every_lane() {
        for base in [*b"00000000", *b"9fa0e1d7", *b"ffffffff"] {
            for lane in 0..8 {
                for byte in 0..=u8::MAX {
                    let mut bytes = base;
                    bytes[lane] = byte;
                    let (value, bad) = hex8(u64::from_be_bytes(bytes));
                    assert_eq!((bad == 0).then_some(value), plain_hex(&bytes), "{bytes:?}");
                }
            }
        }
    }
}
