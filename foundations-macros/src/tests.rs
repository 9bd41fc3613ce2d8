//! Expansion tests: what the macros generate, token for token, and what they keep.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemFn;

fn span_fn(attr: TokenStream, item: TokenStream) -> String {
    crate::span_fn::expand(attr, item).to_string()
}

fn with_test_telemetry(attr: TokenStream, item: TokenStream) -> String {
    crate::with_test_telemetry::expand(attr, item).to_string()
}

/// Compares token streams after a round trip through syn, which prints tokens one way
/// (`> >` and `>>` alike).
#[track_caller]
fn assert_expands(actual: String, expected: TokenStream) {
    let normalize = |tokens: &str| {
        let file: syn::File = syn::parse_str(tokens).expect("expansion parses as items");
        file.to_token_stream().to_string()
    };
    assert_eq!(normalize(&actual), normalize(&expected.to_string()));
}

/// The `compile_error!` message of a failed expansion.
#[track_caller]
fn error_message(expansion: String) -> String {
    let start = expansion
        .find("compile_error !")
        .unwrap_or_else(|| panic!("no compile_error! in {expansion}"));
    let rest = &expansion[start..];
    let open = rest.find('"').unwrap();
    let close = rest[open + 1..].find("\" }").unwrap();
    rest[open + 1..open + 1 + close].replace("\\\"", "\"")
}

#[test]
fn sync_fn_opens_the_span_first() {
    assert_expands(
        span_fn(
            quote!("parse"),
            quote! {
                pub fn parse(input: &str) -> u32 {
                    input.len() as u32
                }
            },
        ),
        quote! {
            pub fn parse(input: &str) -> u32 {
                let __span_fn_scope = ::foundations::telemetry::tracing::span("parse");
                input.len() as u32
            }
        },
    );
}

#[test]
fn constant_names_are_passed_through() {
    assert_expands(
        span_fn(
            quote!(Self::NAME),
            quote!(
                fn f(&self) {}
            ),
        ),
        quote! {
            fn f(&self) {
                let __span_fn_scope = ::foundations::telemetry::tracing::span(Self::NAME);
            }
        },
    );
}

#[test]
fn async_fn_opens_the_span_inside_the_future_and_applies_it() {
    assert_expands(
        span_fn(
            quote!("load"),
            quote! {
                async fn load(id: u64) -> Result<String, Error> {
                    let row = query(id).await?;
                    Ok(row)
                }
            },
        ),
        quote! {
            async fn load(id: u64) -> Result<String, Error> {
                ::foundations::telemetry::tracing::span("load")
                    .into_context()
                    .apply(async move {
                        if let ::core::option::Option::Some(__span_fn_ret) =
                            ::core::option::Option::None::<Result<String, Error>>
                        {
                            return __span_fn_ret;
                        }
                        let row = query(id).await?;
                        Ok(row)
                    })
                    .await
            }
        },
    );
}

#[test]
fn async_fn_without_a_nameable_return_type_gets_no_hint() {
    for output in [
        quote!(),
        quote!(-> impl Display),
        quote!(-> Vec<impl Display>),
    ] {
        assert_expands(
            span_fn(quote!("x"), quote!(async fn f() #output { body() })),
            quote! {
                async fn f() #output {
                    ::foundations::telemetry::tracing::span("x")
                        .into_context()
                        .apply(async move { body() })
                        .await
                }
            },
        );
    }
}

#[test]
fn user_true_opens_both_spans_through_the_support_macro() {
    assert_expands(
        span_fn(
            quote!("both", user = true),
            quote!(
                fn f() {}
            ),
        ),
        quote! {
            fn f() {
                let __span_fn_scope = ::foundations::macro_support::dual_span!("both");
            }
        },
    );
    assert_expands(
        span_fn(
            quote!("both", user = true),
            quote!(
                async fn f() {}
            ),
        ),
        quote! {
            async fn f() {
                ::foundations::macro_support::dual_span!("both")
                    .into_context()
                    .apply(async move {})
                    .await
            }
        },
    );
    // `user = false` is the same as leaving it out.
    assert_eq!(
        span_fn(
            quote!("one", user = false),
            quote!(
                fn f() {}
            )
        ),
        span_fn(
            quote!("one"),
            quote!(
                fn f() {}
            )
        ),
    );
}

#[test]
fn crate_path_replaces_the_foundations_root() {
    assert_expands(
        span_fn(
            quote!("x", crate_path = "my_platform::foundations", user = true,),
            quote!(
                fn f() {}
            ),
        ),
        quote! {
            fn f() {
                let __span_fn_scope = my_platform::foundations::macro_support::dual_span!("x");
            }
        },
    );
}

#[test]
fn async_trait_shaped_fn_wraps_the_boxed_future() {
    assert_expands(
        span_fn(
            quote!("Store::load", async_local = true),
            quote! {
                fn load<'a>(&'a self, key: u32) -> Pin<Box<dyn Future<Output = String> + 'a>> {
                    Box::pin(async move {
                        let __self = self;
                        let __ret: String = { __self.get(key).await };
                        __ret
                    })
                }
            },
        ),
        quote! {
            fn load<'a>(&'a self, key: u32) -> Pin<Box<dyn Future<Output = String> + 'a>> {
                Box::pin(async move {
                    ::foundations::telemetry::tracing::span("Store::load")
                        .into_context()
                        .apply(async move {
                            let __self = self;
                            let __ret: String = { __self.get(key).await };
                            __ret
                        })
                        .await
                })
            }
        },
    );
}

#[test]
fn other_tail_calls_are_plain_sync_fns() {
    for body in [
        quote!(Box::pin(ready(1))),
        quote!(Box::new(async move { 1 })),
        quote!(Rc::pin(async move { 1 })),
    ] {
        assert_expands(
            span_fn(quote!("x"), quote!(fn f() -> T { #body })),
            quote! {
                fn f() -> T {
                    let __span_fn_scope = ::foundations::telemetry::tracing::span("x");
                    #body
                }
            },
        );
    }
}

#[test]
fn signature_attributes_visibility_and_generics_are_kept() {
    let cases = [
        quote! {
            /// Docs.
            #[inline]
            #[must_use = "use it"]
            pub(crate) unsafe extern "C" fn raw<'a, T: Copy + 'a, const N: usize>(
                values: &'a [T; N],
            ) -> Option<&'a T>
            where
                T: Default,
            {
                values.first()
            }
        },
        quote! {
            #[allow(clippy::needless_lifetimes)]
            pub async fn method<'a, S>(&'a mut self, mut sink: S, (a, b): (u8, u8)) -> &'a str
            where
                S: Sink + Send,
            {
                sink.push(a + b).await;
                &self.name
            }
        },
        quote! {
            fn boxed(&self) -> BoxFuture<'_, ()> {
                let prepared = self.prepare();
                Box::pin(async move { prepared.await })
            }
        },
    ];
    for input in cases {
        let original: ItemFn = syn::parse2(input.clone()).unwrap();
        let expanded: ItemFn = syn::parse2(crate::span_fn::expand(quote!("n"), input)).unwrap();
        let tokens = |item: &ItemFn| {
            let attrs = &item.attrs;
            (
                quote!(#(#attrs)*).to_string(),
                item.vis.to_token_stream().to_string(),
            )
        };
        assert_eq!(tokens(&expanded), tokens(&original));
        assert_eq!(
            expanded.sig.to_token_stream().to_string(),
            original.sig.to_token_stream().to_string()
        );
    }
}

#[test]
fn inner_attributes_stay_at_the_top_of_the_body() {
    assert_expands(
        span_fn(
            quote!("x"),
            quote! {
                fn f() {
                    #![allow(unused_variables)]
                    let unused = 1;
                }
            },
        ),
        quote! {
            fn f() {
                #![allow(unused_variables)]
                let __span_fn_scope = ::foundations::telemetry::tracing::span("x");
                let unused = 1;
            }
        },
    );
}

#[test]
fn misuse_is_reported_with_the_item_left_intact() {
    let cases = [
        (
            quote!(),
            quote!(
                fn f() {}
            ),
            "missing span name",
        ),
        (
            quote!(user = true),
            quote!(
                fn f() {}
            ),
            "missing span name: the first argument must be the name",
        ),
        (
            quote!(42),
            quote!(
                fn f() {}
            ),
            "the span name must be a string literal",
        ),
        (
            quote!("x", sampled = true),
            quote!(
                fn f() {}
            ),
            "unknown option `sampled`: expected `user`, `crate_path` or `async_local`",
        ),
        (
            quote!("x", "y"),
            quote!(
                fn f() {}
            ),
            "expected an option: `user`, `crate_path` or `async_local`",
        ),
        (
            quote!("x", user = true, user = true),
            quote!(
                fn f() {}
            ),
            "option `user` is given more than once",
        ),
        (
            quote!("x", async_local = true, async_local = false),
            quote!(
                async fn f() {}
            ),
            "option `async_local` is given more than once",
        ),
        (
            quote!("x", user = 1),
            quote!(
                fn f() {}
            ),
            "expected `true` or `false` for `user`",
        ),
        (
            quote!("x", crate_path = "a b"),
            quote!(
                fn f() {}
            ),
            "`crate_path` must be a path",
        ),
        (
            quote!("x", async_local = true),
            quote!(
                fn f() {}
            ),
            "`async_local` applies only to `async fn`s",
        ),
        (
            quote!("x"),
            quote!(
                struct S;
            ),
            "`#[span_fn]` can only be applied to functions and methods",
        ),
        (
            quote!("x"),
            quote!(
                fn declared(&self);
            ),
            "`#[span_fn]` needs a function body",
        ),
        (
            quote!("x"),
            quote!(default fn special() {}),
            "`#[span_fn]` does not support `default fn`",
        ),
        (
            quote!("x"),
            quote!(
                const fn f() {}
            ),
            "`#[span_fn]` cannot be used on a `const fn`",
        ),
    ];
    for (attr, item, message) in cases {
        let expansion = span_fn(attr.clone(), item.clone());
        let error = error_message(expansion.clone());
        assert!(
            error.starts_with(message),
            "#[span_fn({attr})]: {error:?} does not start with {message:?}"
        );
        assert!(
            expansion.ends_with(&item.to_string()),
            "the item is emitted unchanged after the error: {expansion}"
        );
    }
}

#[test]
fn with_test_telemetry_runs_a_sync_test_inside_a_test_context() {
    assert_expands(
        with_test_telemetry(
            quote!(test),
            quote! {
                #[should_panic]
                fn records(ctx: TestTelemetryContext) {
                    #![allow(unused_variables)]
                    check(&ctx);
                }
            },
        ),
        quote! {
            #[test]
            #[should_panic]
            fn records() {
                fn __with_test_telemetry_body(ctx: TestTelemetryContext) {
                    #![allow(unused_variables)]
                    check(&ctx);
                }
                let __with_test_telemetry_ctx = ::foundations::telemetry::TelemetryContext::test();
                let __with_test_telemetry_scope = __with_test_telemetry_ctx.scope();
                __with_test_telemetry_body(__with_test_telemetry_ctx)
            }
        },
    );
}

#[test]
fn with_test_telemetry_applies_the_context_to_an_async_test() {
    assert_expands(
        with_test_telemetry(
            quote!(
                tokio::test(flavor = "multi_thread"),
                crate_path = "platform::foundations"
            ),
            quote! {
                async fn records(mut ctx: foundations::telemetry::TestTelemetryContext)
                    -> Result<(), Error>
                {
                    work().await?;
                    Ok(())
                }
            },
        ),
        quote! {
            #[tokio::test(flavor = "multi_thread")]
            async fn records() -> Result<(), Error> {
                async fn __with_test_telemetry_body(
                    mut ctx: foundations::telemetry::TestTelemetryContext
                ) -> Result<(), Error> {
                    work().await?;
                    Ok(())
                }
                let __with_test_telemetry_ctx =
                    platform::foundations::telemetry::TelemetryContext::test();
                let __with_test_telemetry_context: platform::foundations::telemetry::TelemetryContext =
                    ::core::clone::Clone::clone(&*__with_test_telemetry_ctx);
                __with_test_telemetry_context
                    .apply(__with_test_telemetry_body(__with_test_telemetry_ctx))
                    .await
            }
        },
    );
}

#[test]
fn with_test_telemetry_misuse_is_reported() {
    let cases = [
        (
            quote!(),
            quote!(
                fn t(ctx: TestTelemetryContext) {}
            ),
            "expected the test attribute",
        ),
        (
            quote!(test),
            quote!(
                fn t() {}
            ),
            "takes exactly one argument",
        ),
        (
            quote!(test),
            quote!(
                fn t(a: TestTelemetryContext, b: u8) {}
            ),
            "takes exactly one",
        ),
        (
            quote!(test),
            quote!(
                fn t(&self) {}
            ),
            "takes exactly one argument",
        ),
        (
            quote!(test),
            quote!(
                fn t(ctx: u8) {}
            ),
            "must be a `TestTelemetryContext`",
        ),
        (
            quote!(test),
            quote!(
                fn t(ctx: &TestTelemetryContext) {}
            ),
            "must be a",
        ),
        (
            quote!(test),
            quote!(
                async fn t(ctx: TestTelemetryContext) {}
            ),
            "an `async fn` test needs an async test attribute",
        ),
        (
            quote!(test, flavor = 1),
            quote!(
                fn t(ctx: TestTelemetryContext) {}
            ),
            "unknown option `flavor`",
        ),
        (
            quote!(test),
            quote!(
                mod m {}
            ),
            "can only be applied to functions",
        ),
    ];
    for (attr, item, message) in cases {
        let error = error_message(with_test_telemetry(attr.clone(), item));
        assert!(
            error.contains(message),
            "#[with_test_telemetry({attr})]: {error:?} lacks {message:?}"
        );
    }
}
