//! Fuzzes the W3C `tracestate` parser: arbitrary bytes must never panic, and
//! every accepted value must format to a header that parses back equal.
//! Splitting the input into several header values must give the same result
//! as parsing the joined value.
#![no_main]

use foundations::telemetry::tracing::TraceState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = TraceState::parse(data);

    // Several header values are joined with ',' before parsing.
    let split: Vec<&[u8]> = data.split(|&b| b == b',').collect();
    assert_eq!(TraceState::parse_header_values(split), parsed);

    let Ok(state) = parsed else {
        return;
    };
    assert!(state.len() <= TraceState::MAX_MEMBERS);

    let header = state.to_header_value();
    let reparsed = TraceState::parse(header.as_bytes()).expect("a formatted tracestate must parse");
    assert_eq!(reparsed, state);
    assert_eq!(reparsed.to_header_value(), header);

    // Truncation never exceeds the limit and keeps members in order.
    let limit = data.len() / 2;
    let truncated = state.truncated(limit);
    assert!(truncated.to_header_value().len() <= limit);
    let mut original = state.members();
    for kept in truncated.members() {
        assert!(original.any(|m| m == kept));
    }
});
