//! Procedural macros for `foundations`.
//!
//! This crate is re-exported by `foundations`; depend on `foundations` rather than on this
//! crate directly. The attribute macros (`#[span_fn]`, `#[with_test_telemetry]`) land here.
