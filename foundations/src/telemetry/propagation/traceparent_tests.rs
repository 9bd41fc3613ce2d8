//! Unit tests of ids and `traceparent`: every W3C rule.

use super::ids::*;
use super::traceparent::*;
use super::tracestate::*;

pub(super) const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub(super) const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
pub(super) const PARENT: u64 = 0x00f067aa0ba902b7;

pub(super) fn tp(s: &str) -> Result<TraceparentContext, TraceparentError> {
    TraceparentContext::parse(s.as_bytes())
}

pub(super) fn ts(s: &str) -> Result<TraceState, TraceStateError> {
    TraceState::parse(s.as_bytes())
}

pub(super) fn expected() -> TraceparentContext {
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
