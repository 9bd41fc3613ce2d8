//! `#[span_fn]`: argument parsing and expansion.

use crate::common::{Flag, crate_path_from_lit, parse_flag, parse_fn, respan};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{
    Block, Error, Expr, ExprAsync, ExprCall, ExprLit, ExprPath, Ident, ItemFn, Lit, LitStr, Path,
    Result, ReturnType, Stmt, Token, Type, parse_quote,
};

const OPTIONS: &str = "`user`, `crate_path` or `async_local`";

/// The name of the span: a literal, or the path of a constant evaluated at run time.
pub(crate) enum SpanName {
    Literal(LitStr),
    Constant(ExprPath),
}

impl ToTokens for SpanName {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            SpanName::Literal(lit) => lit.to_tokens(tokens),
            SpanName::Constant(path) => path.to_tokens(tokens),
        }
    }
}

/// Everything between the parentheses of `#[span_fn(...)]`.
pub(crate) struct SpanFnArgs {
    pub(crate) name: SpanName,
    pub(crate) user: Option<Flag>,
    pub(crate) crate_path: Option<(Ident, Path)>,
    pub(crate) async_local: Option<Flag>,
}

impl SpanFnArgs {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::new(
                Span::call_site(),
                "missing span name: write `#[span_fn(\"name\")]` or `#[span_fn(NAME_CONST)]`",
            ));
        }
        let name = parse_name(input)?;
        let mut args = SpanFnArgs {
            name,
            user: None,
            crate_path: None,
            async_local: None,
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break; // trailing comma
            }
            if !input.peek(Ident::peek_any) {
                return Err(input.error(format!("expected an option: {OPTIONS}")));
            }
            let key = input.call(Ident::parse_any)?;
            match key.to_string().as_str() {
                "user" => {
                    reject_repeat(args.user.is_some(), &key)?;
                    args.user = Some(parse_flag(input, key)?);
                }
                "async_local" => {
                    reject_repeat(args.async_local.is_some(), &key)?;
                    args.async_local = Some(parse_flag(input, key)?);
                }
                "crate_path" => {
                    reject_repeat(args.crate_path.is_some(), &key)?;
                    let path = crate_path_from_lit(input, &key)?;
                    args.crate_path = Some((key, path));
                }
                _ => {
                    return Err(Error::new(
                        key.span(),
                        format!("unknown option `{key}`: expected {OPTIONS}"),
                    ));
                }
            }
        }
        Ok(args)
    }

    fn user(&self) -> Option<&Flag> {
        self.user.as_ref().filter(|flag| flag.value)
    }
}

fn parse_name(input: ParseStream) -> Result<SpanName> {
    match input.parse::<Expr>()? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => Ok(SpanName::Literal(lit)),
        Expr::Path(path) if path.attrs.is_empty() => Ok(SpanName::Constant(path)),
        // `#[span_fn(user = true)]`: an option where the name belongs.
        Expr::Assign(assign) if matches!(*assign.left, Expr::Path(_)) => Err(Error::new_spanned(
            &assign.left,
            "missing span name: the first argument must be the name, \
             as in `#[span_fn(\"name\", ...)]`",
        )),
        other => Err(Error::new_spanned(
            other,
            "the span name must be a string literal or the path of a `&'static str` constant",
        )),
    }
}

fn reject_repeat(seen: bool, key: &Ident) -> Result<()> {
    if seen {
        return Err(Error::new(
            key.span(),
            format!("option `{key}` is given more than once"),
        ));
    }
    Ok(())
}

/// How the function's work runs, which decides what the span wraps.
enum Shape {
    /// A plain function: the span covers the call.
    Sync,
    /// An `async fn`: the span covers every poll of the returned future.
    Async,
    /// A function whose body ends with `Box::pin(async ..)` (what `#[async_trait]` produces):
    /// the span covers every poll of that future.
    BoxedAsync,
}

fn shape(func: &ItemFn) -> Shape {
    if func.sig.asyncness.is_some() {
        Shape::Async
    } else if ends_in_boxed_async(&func.block) {
        Shape::BoxedAsync
    } else {
        Shape::Sync
    }
}

/// `true` when the tail expression of `block` is `Box::pin(async ..)`.
fn ends_in_boxed_async(block: &Block) -> bool {
    let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last() else {
        return false;
    };
    is_box_pin(call) && call.args.len() == 1 && matches!(call.args[0], Expr::Async(_))
}

/// The `async` block inside the tail `Box::pin(async ..)` of `block`.
fn boxed_async_block(block: &mut Block) -> Option<&mut ExprAsync> {
    match block.stmts.last_mut() {
        Some(Stmt::Expr(Expr::Call(call), None)) => match call.args.first_mut() {
            Some(Expr::Async(future)) => Some(future),
            _ => None,
        },
        _ => None,
    }
}

/// `Box::pin`, `std::boxed::Box::pin`, `::alloc::boxed::Box::pin`, ...
fn is_box_pin(call: &ExprCall) -> bool {
    let Expr::Path(path) = &*call.func else {
        return false;
    };
    let segments: Vec<_> = path.path.segments.iter().collect();
    match segments.as_slice() {
        [.., ty, func] => ty.ident == "Box" && func.ident == "pin" && func.arguments.is_none(),
        _ => false,
    }
}

/// Expands `#[span_fn(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    crate::common::expand_or_report(attr, item, try_expand)
}

fn try_expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let args = SpanFnArgs::parse.parse2(attr)?;
    let mut func = parse_fn(item, "span_fn")?;
    if let Some(constness) = func.sig.constness {
        return Err(Error::new(
            constness.span,
            "`#[span_fn]` cannot be used on a `const fn`: opening a span is not a const operation",
        ));
    }
    let shape = shape(&func);
    let async_local = args.async_local.as_ref().filter(|flag| flag.value);
    if let (Some(flag), Shape::Sync) = (async_local, &shape) {
        return Err(Error::new(
            flag.keyword.span(),
            "`async_local` applies only to `async fn`s and to functions returning \
             `Box::pin(async ..)`",
        ));
    }
    let open = open_span(&args);
    match shape {
        Shape::Sync => {
            let scope = Ident::new("__span_fn_scope", Span::mixed_site());
            let open_stmt: Stmt = parse_quote!(let #scope = #open;);
            func.block.stmts.insert(0, open_stmt);
        }
        Shape::Async => {
            // The body moves into an `async move` block that keeps the original braces, so
            // type errors in it still point at the user's code.
            let mut body = Block {
                brace_token: func.block.brace_token,
                stmts: std::mem::take(&mut func.block.stmts),
            };
            if let Some(hint) = return_type_hint(&func.sig.output) {
                body.stmts.insert(0, hint);
            }
            let wrapped: Expr = parse_quote!(#open.into_context().apply(async move #body).await);
            func.block.stmts = vec![Stmt::Expr(wrapped, None)];
        }
        Shape::BoxedAsync => {
            let future = boxed_async_block(&mut func.block).expect("checked by shape()");
            let capture = future.capture;
            let original = future.clone();
            *future = parse_quote!(async #capture {
                #open.into_context().apply(#original).await
            });
        }
    }
    Ok(func.into_token_stream())
}

/// The expression that opens the span (and the user span, with `user = true`).
fn open_span(args: &SpanFnArgs) -> TokenStream {
    let name = &args.name;
    let krate = args
        .crate_path
        .as_ref()
        .map(|(_, path)| path.to_token_stream())
        .unwrap_or_else(|| quote!(::foundations));
    match args.user() {
        None => quote!(#krate::telemetry::tracing::span(#name)),
        Some(flag) => {
            // `dual_span!` exists in every build of foundations, but without the
            // `user-tracing` feature it is a `compile_error!`: give the whole invocation the
            // span of the `user` token so that is where the error points.
            let span = flag.keyword.span();
            let krate = respan(krate, span);
            quote_spanned!(span=> #krate::macro_support::dual_span!(#name))
        }
    }
}

/// A statement that fixes the output type of the wrapping `async` block to the function's
/// return type before the body is checked, so `?`, `return` and coercions in the body infer
/// exactly as they would in the unwrapped `async fn`. `None` where no such statement can be
/// written (no return type, `!`, or an `impl Trait` return type).
fn return_type_hint(output: &ReturnType) -> Option<Stmt> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    if matches!(**ty, Type::Never(_)) || mentions_impl(ty.to_token_stream()) {
        return None;
    }
    let ret = Ident::new("__span_fn_ret", Span::mixed_site());
    Some(parse_quote! {
        if let ::core::option::Option::Some(#ret) = ::core::option::Option::None::<#ty> {
            return #ret;
        }
    })
}

fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}
