//! Expansion: the task struct, its `Task` impl, `enqueue` / `with()`, and the
//! registration the worker dispatches on.
//!
//! Generated code names only `::sitq::…` (mostly `::sitq::__private::…`),
//! `::core` and `::std`, so users never depend on serde, inventory or chrono
//! themselves. Locals use mixed-site hygiene so they cannot capture or shadow
//! the user's names (a task may well be called `task` or take a `queue`).

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident};

use crate::parse::{Backoff, Cron, Options};
use crate::signature::{Arg, Output, TaskFn};

/// Expands a parsed task into the user's fn plus the generated items.
pub(crate) fn task(options: &Options, task: &TaskFn) -> syn::Result<TokenStream> {
    let item = &task.item;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let fn_name = ident.unraw().to_string();
    // A `#[cfg]` on the fn applies to everything generated from it.
    let cfgs: Vec<&Attribute> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    let fn_docs: Vec<&Attribute> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .collect();

    let name = match &options.name {
        Some(name) => quote!(#name),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let output = task.output.value_type();
    let defaults = defaults(options);
    let fields = task.args.iter().map(|arg| field(vis, arg));
    let struct_doc = format!(
        "The task `{fn_name}`: its arguments, as stored when it is enqueued.\n\n\
         Enqueue it with [`{fn_name}::enqueue`](Self::enqueue), or with options through \
         [`{fn_name}::with`](Self::with); a worker runs the fn `{fn_name}`."
    );
    let struct_docs_tail = if fn_docs.is_empty() {
        quote!()
    } else {
        quote!(#[doc = ""] #(#fn_docs)*)
    };

    let queue = Ident::new("queue", Span::mixed_site());
    let builder = Ident::new("SitqEnqueueBuilder", Span::call_site());
    let params: Vec<TokenStream> = task
        .args
        .iter()
        .map(|Arg { ident, ty, .. }| quote!(#ident: #ty))
        .collect();
    let idents: Vec<&Ident> = task.args.iter().map(|arg| &arg.ident).collect();
    let handle = quote!(::sitq::Result<::sitq::TaskHandle<#output>>);
    let enqueue_doc = format!(
        "Enqueues the task `{fn_name}` with these arguments and its default options; \
         the handle waits for its result."
    );
    let with_doc = format!(
        "Options for one enqueue of the task `{fn_name}`: `{fn_name}::with().delay(..).priority(..).enqueue(&queue, ..)`."
    );

    let add_doc = format!(
        "Adds the task `{fn_name}` with these arguments and its default options to a \
         workflow; its node is a dependency for tasks added later."
    );
    let workflow = Ident::new("workflow", Span::mixed_site());
    let option_methods = option_methods();
    let after_result = after_result(task, &name, &output);

    let run = run_fn(task, &name);
    let checks = type_checks(task);
    let schedule = schedule(options, ident, &name);

    Ok(quote! {
        #item

        #(#cfgs)*
        #[doc = #struct_doc]
        #struct_docs_tail
        #[allow(non_camel_case_types)]
        #[derive(::sitq::__private::serde::Serialize, ::sitq::__private::serde::Deserialize)]
        #[serde(crate = "::sitq::__private::serde")]
        #vis struct #ident {
            #(#fields,)*
        }

        #(#cfgs)*
        const _: () = {
            impl ::sitq::__private::Task for #ident {
                const NAME: &'static str = #name;
                #defaults
                type Output = #output;
            }

            // A program may define tasks it only runs, or only enqueues.
            #[allow(dead_code)]
            impl #ident {
                #[doc = #enqueue_doc]
                pub async fn enqueue(#queue: &::sitq::Queue, #(#params),*) -> #handle {
                    #queue.enqueue(Self { #(#idents),* }).await
                }

                #[doc = #add_doc]
                pub fn add(
                    #workflow: &mut ::sitq::__private::Workflow,
                    #(#params),*
                ) -> ::sitq::__private::Node<#output> {
                    #workflow.add(Self { #(#idents),* })
                }

                #[doc = #with_doc]
                pub fn with() -> #builder {
                    #builder {
                        options: ::sitq::__private::EnqueueOptions::new(),
                    }
                }
            }

            /// Options for one enqueue of a task; finish with `.enqueue(&queue, ..)`
            /// (or `.add(&mut workflow, ..)`).
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            #[must_use = "nothing is enqueued until `.enqueue(&queue, ..)` is awaited"]
            pub struct #builder {
                options: ::sitq::__private::EnqueueOptions,
            }

            #[allow(dead_code)]
            impl #builder {
                #option_methods

                /// Runs the task once all its dependencies have finished, whatever
                /// their outcome, instead of being cancelled when one fails or is
                /// cancelled: for clean-up steps.
                pub fn after_finished(self) -> Self {
                    Self { options: self.options.after_finished() }
                }

                /// Enqueues the task with these arguments and options.
                pub async fn enqueue(self, #queue: &::sitq::Queue, #(#params),*) -> #handle {
                    #queue.enqueue_with(#ident { #(#idents),* }, self.options).await
                }

                /// Adds the task with these arguments and options to `workflow`; its
                /// node is a dependency for tasks added later.
                pub fn add(
                    self,
                    #workflow: &mut ::sitq::__private::Workflow,
                    #(#params),*
                ) -> ::sitq::__private::Node<#output> {
                    #workflow.add_with(#ident { #(#idents),* }, self.options)
                }
            }

            #after_result

            #run
            #checks
            #schedule

            ::sitq::__private::inventory::submit! {
                ::sitq::__private::TaskRegistration {
                    name: <#ident as ::sitq::__private::Task>::NAME,
                    file: ::core::file!(),
                    line: ::core::line!(),
                    defaults: <#ident as ::sitq::__private::Task>::DEFAULTS,
                    run: sitq_run,
                }
            }
        };
    })
}

/// The schedule `cron = "..."` declares: a registration the worker collects
/// with the task's.
fn schedule(options: &Options, ident: &Ident, name: &TokenStream) -> TokenStream {
    let Some(Cron {
        expression,
        zone,
        catch_up,
    }) = &options.cron
    else {
        return quote!();
    };
    let task = quote!(<#ident as ::sitq::__private::Task>);
    quote! {
        fn sitq_schedule_payload() -> ::sitq::__private::Result<::std::vec::Vec<u8>> {
            ::sitq::__private::codec::encode(
                &#ident {},
                ::core::concat!("arguments of task ", #name),
            )
        }

        ::sitq::__private::inventory::submit! {
            ::sitq::__private::ScheduleRegistration {
                name: #task::NAME,
                task: #task::NAME,
                defaults: #task::DEFAULTS,
                expression: #expression,
                zone: #zone,
                catch_up: ::sitq::__private::CatchUp::#catch_up,
                payload: sitq_schedule_payload,
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    }
}

/// The option methods both builders have (the plain one and `after_result`'s).
fn option_methods() -> TokenStream {
    quote! {
        /// Run no earlier than `delay` from the moment of enqueueing.
        pub fn delay(self, delay: ::core::time::Duration) -> Self {
            Self { options: self.options.delay(delay) }
        }

        /// Run no earlier than `at`, an instant in any time zone.
        pub fn run_at<Tz: ::sitq::__private::chrono::TimeZone>(
            self,
            at: ::sitq::__private::chrono::DateTime<Tz>,
        ) -> Self {
            Self { options: self.options.run_at(at) }
        }

        /// Priority: higher runs first (overrides the task's default).
        pub fn priority(self, priority: i32) -> Self {
            Self { options: self.options.priority(priority) }
        }

        /// The queue to put the task on (overrides the task's default).
        pub fn queue(self, queue: impl ::core::convert::Into<::std::string::String>) -> Self {
            Self { options: self.options.queue(queue) }
        }

        /// Attempts allowed before the task fails for good (at least 1).
        pub fn max_attempts(self, max_attempts: u32) -> Self {
            Self { options: self.options.max_attempts(max_attempts) }
        }

        /// Makes this enqueue unique under `key` (scoped by task name): while a
        /// task holding it is pending, blocked or running (or succeeded within
        /// its window), the enqueue returns that task's handle, marked
        /// [`is_duplicate`](::sitq::TaskHandle::is_duplicate), and stores nothing.
        pub fn unique_key(self, key: impl ::core::convert::Into<::std::string::String>) -> Self {
            Self { options: self.options.unique_key(key) }
        }

        /// Makes this enqueue unique (by its arguments unless a `unique_key` is
        /// given) and keeps the key blocked for `window` after the task succeeded.
        pub fn unique_for(self, window: ::core::time::Duration) -> Self {
            Self { options: self.options.unique_for(window) }
        }

        /// Runs the task in the sequence `key`: tasks sharing a key run one
        /// at a time, in enqueue order, across every worker.
        pub fn sequence(self, key: impl ::core::convert::Into<::std::string::String>) -> Self {
            Self { options: self.options.sequence(key) }
        }

        /// Runs the task only after `dependency` (a `TaskHandle` or a workflow
        /// `Node`) succeeded: `blocked` until then. If it fails for good or is
        /// cancelled, this task is cancelled with a reason naming it.
        pub fn after<D: ::sitq::__private::Dependency>(self, dependency: &D) -> Self {
            Self { options: self.options.after(dependency) }
        }

        /// Runs the task only after every one of `dependencies` succeeded.
        pub fn after_all<'a, D: ::sitq::__private::Dependency + 'a>(
            self,
            dependencies: impl ::core::iter::IntoIterator<Item = &'a D>,
        ) -> Self {
            Self { options: self.options.after_all(dependencies) }
        }
    }
}

/// `after_result(..)`, for a task with at least one argument: its builder
/// takes every argument but the first, which a dependency's result (or a
/// list of them) provides when the task is claimed.
fn after_result(task: &TaskFn, name: &TokenStream, output: &TokenStream) -> TokenStream {
    let Some((first, rest)) = task.args.split_first() else {
        return quote!();
    };
    let ident = &task.item.sig.ident;
    let first_ty = &first.ty;
    let queue = Ident::new("queue", Span::mixed_site());
    let workflow = Ident::new("workflow", Span::mixed_site());
    let source = Ident::new("source", Span::mixed_site());
    let builder = Ident::new("SitqAfterResultBuilder", Span::call_site());
    let rest_struct = Ident::new("SitqRest", Span::call_site());
    let option_methods = option_methods();
    let params: Vec<TokenStream> = rest
        .iter()
        .map(|Arg { ident, ty, .. }| quote!(#ident: #ty))
        .collect();
    let idents: Vec<&Ident> = rest.iter().map(|arg| &arg.ident).collect();
    let fields = rest.iter().map(
        |Arg {
             ident,
             ty,
             serde_attrs,
         }| quote!(#(#serde_attrs)* #ident: #ty),
    );
    let first_name = first.ident.unraw().to_string();
    let doc = format!(
        "Options for an enqueue of this task whose first argument, `{first_name}`, is the \
         result of `source`: a `TaskHandle` (or workflow `Node`) whose result has its type, \
         or a list of them when it is a `Vec` of their result type (their results in order). \
         The task is blocked until they succeed, cancelled if one fails or is cancelled, and \
         the result is read when the task is claimed. Finish with `.enqueue(&queue, ..)` or \
         `.add(&mut workflow, ..)`, giving the other arguments."
    );
    let encode = quote! {
        ::sitq::__private::codec::encode(
            &#rest_struct { #(#idents),* },
            ::core::concat!("arguments of task ", #name),
        )
    };
    // The struct's type is spanned on the user's first argument, so a
    // mismatch points at the type the result must have.
    let bound = quote_spanned!(first_ty.span()=> ::sitq::__private::ResultOf<#first_ty>);
    quote! {
        /// The arguments but the first, stored for an `after_result` enqueue.
        #[derive(::sitq::__private::serde::Serialize, ::sitq::__private::serde::Deserialize)]
        #[serde(crate = "::sitq::__private::serde")]
        struct #rest_struct {
            #(#fields,)*
        }

        #[allow(dead_code)]
        impl #ident {
            #[doc = #doc]
            pub fn after_result<S: #bound>(#source: S) -> #builder {
                let (mode, inputs) = #source.inputs();
                #builder {
                    options: ::sitq::__private::EnqueueOptions::new().result_inputs(mode, inputs),
                }
            }
        }

        /// Options for an enqueue that passes a dependency's result as the first
        /// argument; finish with `.enqueue(&queue, ..)` or `.add(&mut workflow, ..)`.
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #[must_use = "nothing is enqueued until `.enqueue(&queue, ..)` is awaited"]
        pub struct #builder {
            options: ::sitq::__private::EnqueueOptions,
        }

        #[allow(dead_code)]
        impl #builder {
            #option_methods

            /// Enqueues the task with the other arguments; the first comes from
            /// the dependency's result when it is claimed.
            pub async fn enqueue(
                self,
                #queue: &::sitq::Queue,
                #(#params),*
            ) -> ::sitq::Result<::sitq::TaskHandle<#output>> {
                #queue.enqueue_payload::<#ident, #output>(#encode, self.options).await
            }

            /// Adds the task with the other arguments to `workflow`.
            pub fn add(
                self,
                #workflow: &mut ::sitq::__private::Workflow,
                #(#params),*
            ) -> ::sitq::__private::Node<#output> {
                #workflow.push::<#ident, #output>(#encode, self.options)
            }
        }
    }
}

fn field(vis: &syn::Visibility, arg: &Arg) -> TokenStream {
    let Arg {
        ident,
        ty,
        serde_attrs,
    } = arg;
    let doc = format!("The argument `{}`.", ident.unraw());
    quote!(#[doc = #doc] #(#serde_attrs)* #vis #ident: #ty)
}

/// `const DEFAULTS` when an option changes one; the trait's default otherwise.
fn defaults(options: &Options) -> TokenStream {
    let mut fields = Vec::new();
    if let Some(queue) = &options.queue {
        fields.push(quote!(queue: #queue));
    }
    if let Some(priority) = options.priority {
        fields.push(quote!(priority: #priority));
    }
    if let Some(max_attempts) = options.max_attempts {
        fields.push(quote!(max_attempts: #max_attempts));
    }
    if let Some(timeout) = options.timeout {
        let timeout = duration(timeout);
        fields.push(quote!(timeout: ::core::option::Option::Some(#timeout)));
    }
    if let Some(backoff) = &options.backoff {
        let backoff = match backoff {
            Backoff::Exponential { base, max } => {
                let (base, max) = (duration(*base), duration(*max));
                quote!(::sitq::__private::Backoff::Exponential { base: #base, max: #max })
            }
            Backoff::Fixed(delay) => {
                let delay = duration(*delay);
                quote!(::sitq::__private::Backoff::Fixed(#delay))
            }
        };
        fields.push(quote!(backoff: #backoff));
    }
    // `unique_for` implies `unique`.
    if options.unique || options.unique_for.is_some() {
        fields.push(quote!(unique: true));
    }
    if let Some(window) = options.unique_for {
        let window = duration(window);
        fields.push(quote!(unique_for: ::core::option::Option::Some(#window)));
    }
    if fields.is_empty() {
        return quote!();
    }
    // Every field set: no `..DEFAULT` (it would be a needless update).
    let rest = (fields.len() < DEFAULTS_FIELDS)
        .then(|| quote!(..::sitq::__private::TaskDefaults::DEFAULT));
    quote! {
        const DEFAULTS: ::sitq::__private::TaskDefaults = ::sitq::__private::TaskDefaults {
            #(#fields,)*
            #rest
        };
    }
}

/// How many fields `TaskDefaults` has.
const DEFAULTS_FIELDS: usize = 7;

fn duration(duration: Duration) -> TokenStream {
    let (secs, nanos) = (duration.as_secs(), duration.subsec_nanos());
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// `sitq_run`: decodes a payload and starts an attempt.
fn run_fn(task: &TaskFn, name: &TokenStream) -> TokenStream {
    let ident = &task.item.sig.ident;
    let payload = Ident::new("payload", Span::mixed_site());
    let args = Ident::new("args", Span::mixed_site());
    let output = Ident::new("output", Span::mixed_site());
    let value = Ident::new("value", Span::mixed_site());
    let error = Ident::new("error", Span::mixed_site());
    let fields = task.args.iter().map(|arg| {
        let field = &arg.ident;
        quote!(#args.#field)
    });
    let inputs = Ident::new("inputs", Span::mixed_site());
    let rest = Ident::new("rest", Span::mixed_site());
    let task_name_expr = quote!(<#ident as ::sitq::__private::Task>::NAME);
    // With inputs, the payload holds the other arguments (`SitqRest`).
    let decode_args = match task.args.split_first() {
        Some((first, others)) => {
            let first_ident = &first.ident;
            let first_ty = &first.ty;
            let others = others.iter().map(|arg| &arg.ident);
            quote! {
                match #inputs {
                    ::core::option::Option::None => ::sitq::__private::codec::decode(
                        #payload,
                        ::core::concat!("arguments of task ", #name),
                    )?,
                    ::core::option::Option::Some(#inputs) => {
                        let #rest: SitqRest = ::sitq::__private::codec::decode(
                            #payload,
                            ::core::concat!("arguments of task ", #name),
                        )?;
                        #ident {
                            #first_ident: #inputs.decode::<#first_ty>(#task_name_expr)?,
                            #(#others: #rest.#others,)*
                        }
                    }
                }
            }
        }
        None => quote! {{
            if #inputs.is_some() {
                return ::core::result::Result::Err(::sitq::__private::unexpected_inputs(#task_name_expr));
            }
            ::sitq::__private::codec::decode(
                #payload,
                ::core::concat!("arguments of task ", #name),
            )?
        }},
    };
    let context = Ident::new("context", Span::mixed_site());
    // A task without a context parameter never sees it.
    let unused = task
        .context
        .is_none()
        .then(|| quote!(::core::mem::drop(#context);));
    let call = match &task.context {
        // Spanned on the user's type: one that is merely named `Context`
        // fails here, with a message that says so.
        Some(ty) => {
            let context = quote_spanned!(ty.span()=>
                <#ty as ::sitq::__private::TaskContext>::from_context(#context)
            );
            quote!(#ident(#context, #(#fields),*))
        }
        None => quote!(#ident(#(#fields),*)),
    };
    let call = if task.item.sig.asyncness.is_some() {
        quote!(#call.await)
    } else {
        quote!(::sitq::__private::run_blocking(move || #call).await)
    };
    let task_name = quote!(<#ident as ::sitq::__private::Task>::NAME);
    // Spanned on the user's types, so a missing bound points at them rather
    // than at the attribute.
    let encode = |ty: Option<&syn::Type>, value: &Ident| match ty {
        Some(ty) => {
            quote_spanned!(ty.span()=> ::sitq::__private::encode_output::<#ty>(&#value, #task_name))
        }
        None => quote!(::sitq::__private::encode_output(&#value, #task_name)),
    };
    let finish = match &task.output {
        Output::Unit => encode(None, &output),
        Output::Plain(ty) => encode(Some(ty), &output),
        Output::Result { ok, err } => {
            let encode = encode(Some(ok), &value);
            let message = match err {
                Some(err) => {
                    quote_spanned!(err.span()=> ::sitq::__private::error_message::<#err>(&#error))
                }
                None => quote!(::sitq::__private::error_message(&#error)),
            };
            quote! {
                match #output {
                    ::core::result::Result::Ok(#value) => #encode,
                    ::core::result::Result::Err(#error) => ::core::result::Result::Err(#message),
                }
            }
        }
    };
    quote! {
        fn sitq_run(
            #payload: &[u8],
            #inputs: ::core::option::Option<&::sitq::__private::TaskInputs>,
            #context: ::sitq::__private::Context,
        ) -> ::sitq::__private::Result<::sitq::__private::TaskFuture> {
            #unused
            let #args: #ident = #decode_args;
            ::core::result::Result::Ok(::sitq::__private::boxed(async move {
                let #output = #call;
                #finish
            }))
        }
    }
}

/// Bounds checked where the user wrote the type, so an error points at it.
fn type_checks(task: &TaskFn) -> TokenStream {
    let serde = quote!(::sitq::__private::serde);
    let mut items = Vec::new();
    let mut checks = Vec::new();
    if !task.args.is_empty() {
        let check = format_ident!("task_argument_must_be_serde");
        items.push(quote! {
            fn #check<T>()
            where
                T: #serde::Serialize
                    + #serde::de::DeserializeOwned
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static,
            {
            }
        });
        for Arg { ty, .. } in &task.args {
            checks.push(quote_spanned!(ty.span()=> let _ = #check::<#ty>;));
        }
    }
    // The error type of a `Result` is checked by the call to `error_message`,
    // spanned on it (see `run_fn`).
    let ok = match &task.output {
        Output::Unit => None,
        Output::Plain(ty) | Output::Result { ok: ty, .. } => Some(ty),
    };
    if let Some(ty) = ok {
        let check = format_ident!("task_result_must_be_serde");
        items.push(quote! {
            fn #check<T>()
            where
                T: #serde::Serialize + #serde::de::DeserializeOwned + ::core::marker::Send + 'static,
            {
            }
        });
        checks.push(quote_spanned!(ty.span()=> let _ = #check::<#ty>;));
    }
    quote! {
        #(#items)*
        const _: () = {
            #(#checks)*
        };
    }
}
