//! Misuse of `#[span_fn]` and `#[with_test_telemetry]` fails to compile with a clear error
//! at the offending token. The expected diagnostics are the `.stderr` files beside each case
//! in `tests/ui/`; regenerate them with `TRYBUILD=overwrite` after reviewing a change.
//!
//! `user = true` without the `user-tracing` feature is checked in `foundations-macros`'
//! own tests: this crate enables that feature.

#[test]
fn span_fn_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/span_fn_*.rs");
}

#[test]
fn with_test_telemetry_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/with_test_telemetry_*.rs");
}
