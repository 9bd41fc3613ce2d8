//! Unit tests of `tracestate`: every W3C rule.

use super::traceparent_tests::*;
use super::tracestate::*;
use std::sync::Arc;

// ----- tracestate -----------------------------------------------------

pub(super) fn members(state: &TraceState) -> Vec<(String, String)> {
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
fn tracestate_duplicate_key_keeps_the_first_member_and_every_other_vendor() {
    // The W3C suite's two cases (strict level): the tracestate is inherited.
    assert_eq!(ts("foo=1,foo=1").unwrap().to_header_value(), "foo=1");
    assert_eq!(ts("foo=1,foo=2").unwrap().to_header_value(), "foo=1");
    let s = ts("a=1, b=2 ,a=3,c=4,b=5").unwrap();
    assert_eq!(s.to_header_value(), "a=1,b=2,c=4");
    assert_eq!(s.len(), 3);
    assert_eq!(s.get("a"), Some("1"));
    // Duplicates still count toward the 32-member limit of the header as received.
    let many = vec!["k=v"; TraceState::MAX_MEMBERS].join(",");
    assert_eq!(ts(&many).unwrap().len(), 1);
    let too_many = vec!["k=v"; TraceState::MAX_MEMBERS + 1].join(",");
    assert_eq!(ts(&too_many), Err(TraceStateError::TooManyMembers));
    // A duplicate does not excuse an invalid member elsewhere.
    assert_eq!(
        ts("a=1,a=2,B=3"),
        Err(TraceStateError::InvalidKey { index: 2 })
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
        TraceState::parse_header_values([&b"a=1"[..], b"b=2, a=2"])
            .unwrap()
            .to_header_value(),
        "a=1,b=2",
        "a duplicate across header values keeps the first"
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
    assert!(
        TraceStateError::InvalidKey { index: 3 }
            .to_string()
            .starts_with("tracestate member #3: invalid key")
    );
    let boxed: Box<dyn std::error::Error> = Box::new(TraceStateError::InvalidMember { index: 0 });
    assert!(boxed.to_string().contains("no '='"));
}

#[test]
fn tracestate_debug() {
    assert_eq!(
        format!("{:?}", ts("a=1,b=2").unwrap()),
        "TraceState(\"a=1,b=2\")"
    );
}
