//! Procedural macros for `foundations`.
//!
//! This crate is re-exported by `foundations`; depend on `foundations` rather than on this
//! crate directly, and use the macros as `foundations::span_fn` and
//! `foundations::with_test_telemetry`.
//!
//! - [`macro@span_fn`] wraps a function (sync, `async`, or `async_trait`-shaped) in a span.
//! - [`macro@with_test_telemetry`] runs a test inside a fresh in-memory test context.
#![warn(missing_docs)]

mod common;
mod span_fn;
mod with_test_telemetry;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Wraps a function in a span of the internal pipeline (and, with `user = true`, a user span
/// of the same name): the span is a child of the span current where the function runs, or
/// starts a trace when none is.
///
/// ```text
/// #[span_fn("name")]
/// #[span_fn(NAME_CONST)]              // any path to a `&'static str` constant, `Self::X` too
/// #[span_fn("name", user = true, crate_path = "my_platform::foundations", async_local = true)]
/// ```
///
/// # What the span covers
///
/// - **A plain function**: the call. The span opens on entry and closes when the function
///   returns, by any path (`return`, `?`, a panic unwinding).
/// - **An `async fn`**: every poll of the returned future. The span opens when the future
///   is *first polled*, not when the function is called (so a future built in one place and
///   awaited in another is parented where it runs, and one never polled records nothing),
///   and the body then runs in the span's `TelemetryContext` on every poll, whichever
///   thread polls it. The future is **not boxed**: it is the hand-written
///   `span(name).into_context().apply(async move { body }).await`, inside the original
///   `async fn`.
/// - **An `async_trait`-shaped function**: a function that is not `async` but whose body
///   ends with `Box::pin(async ..)`, which is what `#[async_trait]` makes of an `async fn`.
///   The span wraps the boxed future as above, not the call that builds it. Put
///   `#[span_fn]` on the method inside the `#[async_trait]` impl (or trait).
///
/// The signature, attributes, visibility, generics and where-clause are kept exactly as
/// written: only the body changes.
///
/// # Options
///
/// - `user = true`: also opens a user span (same name) as a child of the current user span,
///   current for as long as the internal one. Without an active user trace the user side is
///   a no-op; the internal span is recorded as usual. Needs the `user-tracing` feature of
///   `foundations`: without it, `user = true` is a compile error at the `user` token.
///   `user = false` is the default.
/// - `crate_path = "path::to::foundations"`: where the generated code finds `foundations`,
///   for crates that use it through a re-export. Default `::foundations`.
/// - `async_local = true`: marks an `async` (or `async_trait`-shaped) function whose future
///   is not `Send`, for example one that holds an `Rc` across an `.await` and runs on a
///   `LocalSet`. The wrapping adds no `Send` bound of its own (the wrapped future is `Send`
///   exactly when the original is), so such functions also compile without it: the option
///   documents the intent and changes no generated code. On a plain function it is an
///   error.
///
/// # Errors
///
/// A compile error at the offending token when the attribute is not on a function with a
/// body (or is on a `const fn`), when the name is missing or is neither a string literal nor
/// a path, for an unknown or repeated option, or a value of the wrong kind.
///
/// # Examples
///
/// ```
/// use foundations::span_fn;
/// use foundations::telemetry::TelemetryContext;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
///
/// const LOAD_USER: &str = "load_user";
///
/// #[span_fn("parse_id")]
/// fn parse_id(input: &str) -> Result<u32, std::num::ParseIntError> {
///     input.trim().parse()
/// }
///
/// #[span_fn(LOAD_USER)]
/// async fn load_user(id: u32) -> String {
///     tokio::task::yield_now().await; // still inside `load_user` after every await
///     let _query = tracing::span("query");
///     format!("user-{id}")
/// }
///
/// struct Handler;
///
/// impl Handler {
///     #[span_fn("Handler::handle")]
///     async fn handle(&self, raw: &str) -> Option<String> {
///         let id = parse_id(raw).ok()?;
///         Some(load_user(id).await)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = TelemetryContext::test();
/// let request = async {
///     let root = tracing::start_trace("request", StartTraceOptions::default());
///     root.into_context().apply(Handler.handle("7")).await
/// };
/// assert_eq!(ctx.apply(request).await.as_deref(), Some("user-7"));
///
/// let trace = &ctx.traces(Default::default())[0];
/// let handle = &trace.children[0];
/// assert_eq!(handle.name, "Handler::handle");
/// assert_eq!(handle.children[0].name, "parse_id");
/// assert_eq!(handle.children[1].name, "load_user");
/// assert_eq!(handle.children[1].children[0].name, "query");
/// # }
/// ```
///
/// An `async_trait`-shaped function: the span covers the polls of the boxed future.
///
/// ```
/// use foundations::span_fn;
/// use std::future::Future;
/// use std::pin::Pin;
///
/// trait Store {
///     fn get(&self, key: u32) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>;
/// }
///
/// struct Memory(Vec<String>);
///
/// impl Store for Memory {
///     #[span_fn("Memory::get")]
///     fn get(&self, key: u32) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
///         Box::pin(async move { self.0.get(key as usize).cloned() })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = foundations::telemetry::TelemetryContext::test();
/// let store = Memory(vec!["a".into()]);
/// let future = store.get(0); // no span yet
/// assert_eq!(ctx.apply(future).await.as_deref(), Some("a"));
/// assert_eq!(ctx.traces(Default::default())[0].name, "Memory::get");
/// # }
/// ```
///
/// With `foundations` re-exported by another crate:
///
/// ```
/// mod platform {
///     pub use foundations;
/// }
///
/// #[platform::foundations::span_fn("work", crate_path = "platform::foundations")]
/// fn work() {}
/// # work();
/// ```
#[proc_macro_attribute]
pub fn span_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    span_fn::expand(attr.into(), item.into()).into()
}

/// Runs a test inside a fresh test context that it receives as its argument, so it can read
/// back the spans it recorded with `ctx.traces(..)` and `ctx.user_traces(..)` without any
/// setup code.
///
/// ```text
/// #[with_test_telemetry(test)]           fn my_test(ctx: TestTelemetryContext) { .. }
/// #[with_test_telemetry(tokio::test)]    async fn my_test(ctx: TestTelemetryContext) { .. }
/// #[with_test_telemetry(tokio::test(flavor = "multi_thread"), crate_path = "my::foundations")]
/// ```
///
/// The argument names the test attribute to apply (with its own arguments, if any). The
/// test takes exactly one argument, of type `TestTelemetryContext` (feature `testing` of
/// `foundations`), bound with whatever pattern it is written with; the test itself is
/// generated without arguments. Its body runs with a new
/// `TelemetryContext::test()` current:
///
/// - a sync test, inside `ctx.scope()` for the whole body;
/// - an `async` test, as a future under `ctx.apply(..)`, so the context is current on
///   every poll, on whichever worker thread, and is inherited by `telemetry::spawn`.
///
/// The return type (`()` or a `Result`), other attributes such as `#[should_panic]`, and
/// the body are kept as written. Each test gets its own in-memory sinks, so tests running
/// in parallel never see each other's spans. `crate_path` works as for
/// [`macro@span_fn`].
///
/// Misuse is a compile error at the offending token: a missing test attribute, no argument
/// or more than one, an argument of another type, or an `async fn` under plain `test`.
///
/// # Examples
///
/// ```
/// use foundations::span_fn;
/// use foundations::telemetry::TestTelemetryContext;
/// use foundations::telemetry::tracing::{self, StartTraceOptions};
/// use foundations::with_test_telemetry;
///
/// #[span_fn("fetch")]
/// async fn fetch() -> u32 {
///     tokio::task::yield_now().await;
///     7
/// }
///
/// #[with_test_telemetry(test)]
/// fn records_a_child_span(ctx: TestTelemetryContext) {
///     {
///         let _root = tracing::start_trace("root", StartTraceOptions::default());
///         let _child = tracing::span("child");
///     }
///     assert_eq!(ctx.traces(Default::default())[0].children[0].name, "child");
/// }
///
/// #[with_test_telemetry(tokio::test)]
/// async fn records_across_awaits(ctx: TestTelemetryContext) -> Result<(), String> {
///     assert_eq!(fetch().await, 7);
///     assert_eq!(ctx.traces(Default::default())[0].name, "fetch");
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// (Like any `#[test]`, these functions are compiled only by `cargo test`.)
#[proc_macro_attribute]
pub fn with_test_telemetry(attr: TokenStream, item: TokenStream) -> TokenStream {
    with_test_telemetry::expand(attr.into(), item.into()).into()
}
