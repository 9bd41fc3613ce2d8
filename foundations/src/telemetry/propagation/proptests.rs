//! Property tests of both W3C headers: round trips, and no panic on any input.

use super::ids::*;
use super::traceparent::*;
use super::tracestate::*;
use proptest::prelude::*;

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
        prop_assert_eq!(super::tracestate_tests::members(&state), members.clone());
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
