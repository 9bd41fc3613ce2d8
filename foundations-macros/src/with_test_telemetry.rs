//! `#[with_test_telemetry]`: argument parsing and expansion.

use crate::common::{crate_path_from_lit, parse_fn};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{AttrStyle, Error, FnArg, Ident, ItemFn, Meta, Path, Result, Token, Type, Visibility};

const USAGE: &str = "expected the test attribute to use: `#[with_test_telemetry(test)]` or \
                     `#[with_test_telemetry(tokio::test)]`";
const ARG_USAGE: &str =
    "a `#[with_test_telemetry]` test takes exactly one argument: `ctx: TestTelemetryContext`";

struct Args {
    test_attr: Meta,
    crate_path: Option<Path>,
}

impl Args {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::new(Span::call_site(), USAGE));
        }
        let test_attr: Meta = input
            .parse()
            .map_err(|error| Error::new(error.span(), USAGE))?;
        let mut crate_path = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            if !input.peek(Ident::peek_any) {
                return Err(input.error("expected an option: `crate_path`"));
            }
            let key = input.call(Ident::parse_any)?;
            if key != "crate_path" {
                return Err(Error::new(
                    key.span(),
                    format!("unknown option `{key}`: expected `crate_path`"),
                ));
            }
            if crate_path.is_some() {
                return Err(Error::new(
                    key.span(),
                    "option `crate_path` is given more than once",
                ));
            }
            crate_path = Some(crate_path_from_lit(input, &key)?);
        }
        Ok(Args {
            test_attr,
            crate_path,
        })
    }
}

/// Expands `#[with_test_telemetry(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    crate::common::expand_or_report(attr, item, try_expand)
}

fn try_expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let args = Args::parse.parse2(attr)?;
    let func = parse_fn(item, "with_test_telemetry")?;
    check_argument(&func)?;
    if let (Some(asyncness), Meta::Path(path)) = (&func.sig.asyncness, &args.test_attr) {
        if path.is_ident("test") {
            return Err(Error::new(
                asyncness.span,
                "an `async fn` test needs an async test attribute: use \
                 `#[with_test_telemetry(tokio::test)]`",
            ));
        }
    }

    let krate = args
        .crate_path
        .map(Path::into_token_stream)
        .unwrap_or_else(|| quote!(::foundations));
    let test_attr = &args.test_attr;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let (inner_attrs, outer_attrs): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Inner(_)));

    // The test's own body becomes a nested function with the original signature (renamed),
    // so its argument pattern, `?`, `return` and return type behave exactly as written.
    let body_fn = Ident::new("__with_test_telemetry_body", Span::mixed_site());
    let mut body_sig = sig.clone();
    body_sig.ident = body_fn.clone();
    let body_item = ItemFn {
        attrs: inner_attrs,
        vis: Visibility::Inherited,
        sig: body_sig,
        block,
    };
    let mut test_sig = sig;
    test_sig.inputs = Punctuated::new();

    let ctx = Ident::new("__with_test_telemetry_ctx", Span::mixed_site());
    let run = if test_sig.asyncness.is_some() {
        let context = Ident::new("__with_test_telemetry_context", Span::mixed_site());
        quote! {
            let #context: #krate::telemetry::TelemetryContext =
                ::core::clone::Clone::clone(&*#ctx);
            #context.apply(#body_fn(#ctx)).await
        }
    } else {
        let scope = Ident::new("__with_test_telemetry_scope", Span::mixed_site());
        quote! {
            let #scope = #ctx.scope();
            #body_fn(#ctx)
        }
    };
    Ok(quote! {
        #[#test_attr]
        #(#outer_attrs)*
        #vis #test_sig {
            #body_item
            let #ctx = #krate::telemetry::TelemetryContext::test();
            #run
        }
    })
}

/// The test must take exactly one argument, of type `TestTelemetryContext`.
fn check_argument(func: &ItemFn) -> Result<()> {
    let mut inputs = func.sig.inputs.iter();
    let Some(first) = inputs.next() else {
        return Err(Error::new(func.sig.paren_token.span.join(), ARG_USAGE));
    };
    if let Some(extra) = inputs.next() {
        return Err(Error::new_spanned(extra, ARG_USAGE));
    }
    let FnArg::Typed(arg) = first else {
        return Err(Error::new_spanned(first, ARG_USAGE));
    };
    let is_test_context = match &*arg.ty {
        Type::Path(ty) => ty
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "TestTelemetryContext"),
        _ => false,
    };
    if !is_test_context {
        return Err(Error::new_spanned(
            &arg.ty,
            "the argument of a `#[with_test_telemetry]` test must be a `TestTelemetryContext`",
        ));
    }
    Ok(())
}
