//! `#[span_fn(user = true)]` against a `foundations` built without its `user-tracing`
//! feature (this crate's dev-dependency leaves it off) is one clear compile error at the
//! `user` token, not a missing-method error from the expansion.

#[test]
fn user_true_needs_the_user_tracing_feature() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/user_without_feature.rs");
}
