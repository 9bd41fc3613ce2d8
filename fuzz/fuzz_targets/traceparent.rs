//! Fuzzes the W3C `traceparent` parser: arbitrary bytes must never panic, and
//! every accepted value must format to a canonical header that parses back to
//! the same context (with flags reduced to the outbound bits).
#![no_main]

use foundations::telemetry::tracing::TraceparentContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ctx) = TraceparentContext::parse(data) else {
        return;
    };
    assert!(ctx.trace_id.is_valid());
    assert!(ctx.parent_id.is_valid());

    let header = ctx.to_header_value();
    assert_eq!(header.len(), TraceparentContext::HEADER_LEN);
    let mut buf = [0u8; 55];
    ctx.write_header_value(&mut buf);
    assert_eq!(&buf[..], header.as_bytes());

    let reparsed =
        TraceparentContext::parse(header.as_bytes()).expect("a formatted traceparent must parse");
    let expected = TraceparentContext {
        flags: ctx.flags.outbound(),
        ..ctx
    };
    assert_eq!(reparsed, expected);
    assert_eq!(reparsed.to_header_value(), header);
});
