//! Parsing helpers shared by the attribute macros. This module depends on no other module
//! of the crate: the macros use it, never the other way round.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use syn::parse::ParseStream;
use syn::{Error, Ident, Item, ItemFn, LitBool, LitStr, Path, Result, Token};

/// A `name = true|false` option and the token that named it (for error spans).
pub(crate) struct Flag {
    pub(crate) keyword: Ident,
    pub(crate) value: bool,
}

/// Parses `= true` / `= false` after the option `key`.
pub(crate) fn parse_flag(input: ParseStream, key: Ident) -> Result<Flag> {
    if !input.peek(Token![=]) {
        return Err(Error::new(
            key.span(),
            format!("expected `{key} = true` or `{key} = false`"),
        ));
    }
    input.parse::<Token![=]>()?;
    if !input.peek(LitBool) {
        return Err(input.error(format!("expected `true` or `false` for `{key}`")));
    }
    let value = input.parse::<LitBool>()?.value;
    Ok(Flag {
        keyword: key,
        value,
    })
}

/// Parses `= "some::path"` after the option `key` (`crate_path`).
pub(crate) fn crate_path_from_lit(input: ParseStream, key: &Ident) -> Result<Path> {
    if !input.peek(Token![=]) {
        return Err(Error::new(
            key.span(),
            format!("expected `{key} = \"path::to::foundations\"`"),
        ));
    }
    input.parse::<Token![=]>()?;
    if !input.peek(LitStr) {
        return Err(input.error(format!(
            "expected a string for `{key}`, such as \"my_crate::foundations\""
        )));
    }
    let lit: LitStr = input.parse()?;
    lit.parse::<Path>().map_err(|_| {
        Error::new(
            lit.span(),
            format!("`{key}` must be a path, such as \"my_crate::foundations\""),
        )
    })
}

/// The keyword that names the kind of `item` (`struct`, `mod`, ...), for errors about it.
pub(crate) fn item_keyword_span(item: &Item) -> Span {
    match item {
        Item::Const(item) => item.const_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::ExternCrate(item) => item.extern_token.span,
        Item::ForeignMod(item) => item.abi.extern_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Macro(item) => item.mac.bang_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Struct(item) => item.struct_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::TraitAlias(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Union(item) => item.union_token.span,
        Item::Use(item) => item.use_token.span,
        _ => Span::call_site(),
    }
}

/// `tokens` with every span (nested ones included) replaced by `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// Parses the annotated item as a function with a body, or says why it is not one.
pub(crate) fn parse_fn(item: TokenStream, macro_name: &str) -> Result<ItemFn> {
    if let Ok(func) = syn::parse2::<ItemFn>(item.clone()) {
        return Ok(func);
    }
    if let Ok(func) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        return Err(Error::new_spanned(
            &func.sig,
            format!("`#[{macro_name}]` needs a function body: it cannot wrap a declaration"),
        ));
    }
    if let Ok(func) = syn::parse2::<syn::ImplItemFn>(item.clone()) {
        if let Some(default) = func.defaultness {
            return Err(Error::new(
                default.span,
                format!("`#[{macro_name}]` does not support `default fn`"),
            ));
        }
    }
    let span = syn::parse2::<syn::Item>(item)
        .map(|item| item_keyword_span(&item))
        .unwrap_or_else(|_| Span::call_site());
    Err(Error::new(
        span,
        format!("`#[{macro_name}]` can only be applied to functions and methods"),
    ))
}

/// Runs `expand`; on error, emits the error followed by the untouched item, so the rest of
/// the crate still sees the function and reports nothing more about it.
pub(crate) fn expand_or_report(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
    expand: fn(
        proc_macro2::TokenStream,
        proc_macro2::TokenStream,
    ) -> syn::Result<proc_macro2::TokenStream>,
) -> proc_macro2::TokenStream {
    match expand(attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(item);
            tokens
        }
    }
}
