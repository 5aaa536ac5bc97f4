//! The checks on the annotated fn's signature: what becomes the task's
//! arguments, its optional context parameter, and its result type.
//!
//! Every error points at the offending token. Independent errors are combined
//! so one build shows them all.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, Item, ItemFn, Pat, PathArguments, ReturnType, Type,
};

use crate::parse::Errors;

/// The annotated fn, checked.
pub(crate) struct TaskFn {
    /// The fn as it is emitted: the user's, minus the `#[serde]` attributes
    /// moved from its arguments to the struct's fields.
    pub item: ItemFn,
    pub args: Vec<Arg>,
    /// The type of the first parameter when it is the worker-injected
    /// `sitq::Context` (as written: checked to be sitq's at compile time).
    pub context: Option<Type>,
    pub output: Output,
}

/// One argument: a field of the task struct.
pub(crate) struct Arg {
    pub ident: Ident,
    pub ty: Type,
    /// `#[serde(...)]` attributes written on the argument, e.g. `#[serde(default)]`.
    pub serde_attrs: Vec<Attribute>,
}

/// What the fn returns, and so what the task's result is.
pub(crate) enum Output {
    /// No return type: the result is `()`.
    Unit,
    /// `-> T`.
    Plain(Type),
    /// `-> Result<T, E>` (or any path ending in `Result`): `ok` is `T`, `err`
    /// is `E` when it is written out.
    Result { ok: Type, err: Option<Box<Type>> },
}

impl Output {
    /// The task's result type.
    pub fn value_type(&self) -> TokenStream {
        match self {
            Output::Unit => quote::quote!(()),
            Output::Plain(ty) => quote::ToTokens::to_token_stream(ty),
            Output::Result { ok, .. } => quote::ToTokens::to_token_stream(ok),
        }
    }
}

/// Parses and checks the annotated item.
pub(crate) fn task_fn(tokens: TokenStream) -> syn::Result<TaskFn> {
    let mut item = match syn::parse2::<Item>(tokens.clone())? {
        Item::Fn(item) => item,
        _ => {
            return Err(syn::Error::new(
                span_after_attributes(tokens),
                "#[sitq::task] goes on an `async fn` or a `fn`",
            ));
        }
    };
    let mut errors = Errors::default();
    let sig = &mut item.sig;
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span(),
            "a task cannot be an `unsafe fn`: the worker calls it with no way to uphold its safety contract",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a task cannot be an `extern` fn; call it from an ordinary fn",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a task cannot be variadic: its arguments are stored as a struct",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a task cannot have type, const or lifetime parameters: its arguments are stored, \
             so their types must be concrete and owned",
        ));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "a task cannot have a `where` clause",
        ));
    }

    let mut args = Vec::new();
    let mut context = None;
    for (index, input) in sig.inputs.iter_mut().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "a task cannot take `self`: #[sitq::task] goes on a free fn; \
                     pass what the task needs as arguments",
                ));
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        if let Type::Reference(reference) = ungroup_type(&typed.ty)
            && is_context(&reference.elem)
        {
            errors.push(syn::Error::new_spanned(
                reference,
                "take the `sitq::Context` by value (`ctx: sitq::Context`), not by reference: \
                 the worker passes the task its own context (cheap to clone)",
            ));
            continue;
        }
        if is_context(&typed.ty) {
            if index == 0 {
                context = Some((*typed.ty).clone());
            } else {
                errors.push(syn::Error::new_spanned(
                    &typed.ty,
                    if context.is_some() {
                        "a task takes at most one `sitq::Context`"
                    } else {
                        "the `sitq::Context` parameter must come first, before the task's arguments"
                    },
                ));
            }
            continue;
        }
        let ident = match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => pat.ident.clone(),
            pat => {
                errors.push(syn::Error::new_spanned(
                    pat,
                    "a task's arguments must be plain names (they become the fields of the task struct); \
                     destructure inside the body",
                ));
                continue;
            }
        };
        let mut serde_attrs = Vec::new();
        let mut kept = Vec::new();
        for attr in typed.attrs.drain(..) {
            if attr.path().is_ident("serde") {
                serde_attrs.push(attr);
            } else if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                errors.push(syn::Error::new_spanned(
                    &attr,
                    "a task's arguments cannot be conditional: they are its stored payload",
                ));
            } else {
                kept.push(attr);
            }
        }
        typed.attrs = kept;
        let mut check = TypeCheck::default();
        check.visit_type(&typed.ty);
        errors.extend(check.errors);
        args.push(Arg {
            ident,
            ty: (*typed.ty).clone(),
            serde_attrs,
        });
    }

    let output = match &sig.output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) => {
            let mut check = TypeCheck::default();
            check.visit_type(ty);
            errors.extend(check.errors);
            output(ty).unwrap_or_else(|err| {
                errors.push(err);
                Output::Unit
            })
        }
    };
    errors.finish()?;
    Ok(TaskFn {
        item,
        args,
        context,
        output,
    })
}

/// Whether `ty` names sitq's task context: a path ending in `Context`
/// (`Context`, `sitq::Context`), which the worker passes instead of a stored
/// argument. Another type of that name is caught when the generated code
/// passes it sitq's context (`__private::TaskContext`).
fn is_context(ty: &Type) -> bool {
    match ungroup_type(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Context" && segment.arguments.is_none()),
        _ => false,
    }
}

fn output(ty: &Type) -> syn::Result<Output> {
    let Type::Path(path) = ungroup_type(ty) else {
        return Ok(Output::Plain(ty.clone()));
    };
    let Some(last) = path.path.segments.last() else {
        return Ok(Output::Plain(ty.clone()));
    };
    if last.ident != "Result" {
        return Ok(Output::Plain(ty.clone()));
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Err(syn::Error::new_spanned(
            ty,
            "cannot tell the task's result type from a `Result` without arguments; \
             write `Result<T, E>` (or `io::Result<T>`, `anyhow::Result<T>`)",
        ));
    };
    let mut types = generics.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let Some(ok) = types.next() else {
        return Err(syn::Error::new_spanned(
            generics,
            "expected the result type as the first argument of `Result<T, E>`",
        ));
    };
    Ok(Output::Result {
        ok,
        err: types.next().map(Box::new),
    })
}

fn ungroup_type(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup_type(&group.elem),
        Type::Paren(paren) => ungroup_type(&paren.elem),
        ty => ty,
    }
}

/// Finds what can never be stored: `impl Trait` and borrowed types.
#[derive(Default)]
struct TypeCheck {
    errors: Vec<syn::Error>,
}

impl<'ast> Visit<'ast> for TypeCheck {
    fn visit_type_impl_trait(&mut self, ty: &'ast syn::TypeImplTrait) {
        self.errors.push(syn::Error::new_spanned(
            ty,
            "a task cannot take or return `impl Trait`: its arguments and result are stored, \
             so their types must be named; use a concrete type",
        ));
    }

    fn visit_type_reference(&mut self, ty: &'ast syn::TypeReference) {
        self.errors.push(syn::Error::new_spanned(
            ty,
            "a task's arguments and result are stored, so they cannot borrow; \
             use an owned type (`String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T`)",
        ));
    }

    // A fn pointer's own arguments are not stored data; the serde checks report it.
    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
}

/// The span of an item's first token after its attributes (its visibility or keyword).
fn span_after_attributes(tokens: TokenStream) -> Span {
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(punct) if punct.as_char() == '#' => {
                // `#[...]`, or `#![...]`: skip the `!` and the brackets.
                tokens.next_if(|token| matches!(token, TokenTree::Punct(p) if p.as_char() == '!'));
                tokens.next_if(|token| matches!(token, TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket));
            }
            token => return token.span(),
        }
    }
    Span::call_site()
}
