//! Runnable examples live in `examples/examples/`; this library is empty.
