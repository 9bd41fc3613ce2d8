//! Support for the code that `#[span_fn]` generates. Not a public API: it may change in any
//! release.

/// Opens an internal span and, in parallel, a user span of the same name:
/// `span(name).with_user_span()`. The expansion of `#[span_fn(.., user = true)]`.
#[cfg(feature = "user-tracing")]
#[doc(hidden)]
#[macro_export]
macro_rules! __foundations_span_fn_dual_span {
    ($name:expr) => {
        $crate::telemetry::tracing::span($name).with_user_span()
    };
}

/// Without the user pipeline, `user = true` is an error: say so at the `user` token (the
/// macro sees the span the invocation was given) rather than as a missing method.
#[cfg(not(feature = "user-tracing"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __foundations_span_fn_dual_span {
    ($name:expr) => {
        ::core::compile_error!(
            "`#[span_fn(user = true)]` needs the `user-tracing` feature of `foundations`"
        )
    };
}

#[doc(hidden)]
pub use crate::__foundations_span_fn_dual_span as dual_span;
