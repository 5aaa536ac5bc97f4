//! `#[sitq::task]`: turns a fn into a typed, registered sitq task.
//!
//! Use it through the `sitq` facade (`#[sitq::task]`); the generated code
//! names `::sitq::__private`, so this crate is not usable on its own.

mod cron;
mod duration;
mod expand;
mod parse;
mod position;
mod signature;

use proc_macro::TokenStream;

/// Makes a fn a sitq task.
///
/// ```ignore
/// #[sitq::task(queue = "mail", max_attempts = 5, timeout = "30s")]
/// pub async fn send(to: String, retries: u32) -> Result<(), MyError> { /* ... */ }
///
/// let handle = send::enqueue(&queue, "a@example.com".into(), 1).await?;
/// let later = send::with().delay(Duration::from_secs(5)).enqueue(&queue, to, 1).await?;
/// ```
///
/// Generates, next to the fn (which stays as written and callable):
///
/// - a struct of the same name whose fields are the fn's arguments: the
///   stored payload (`#[serde(...)]` on an argument moves to its field, e.g.
///   `#[serde(default)]` for an argument added while tasks are queued);
/// - `impl sitq::Task` for it: `NAME` (default `module_path!()::fn_name`) and
///   `DEFAULTS` from the options; `Output` is `T` for `-> T` and for `-> Result<T, E>`
///   (any path ending in `Result`), `()` without a return type;
/// - `send::enqueue(&queue, args..)` and `send::with()` (an options builder:
///   `delay`, `run_at`, `priority`, `queue`, `max_attempts`, then `enqueue`);
/// - its registration, so a worker linked with this code runs it. A plain
///   (non-async) fn runs on tokio's blocking pool.
///
/// Options: `name = "..."`, `queue = "..."`, `priority = N` (i32),
/// `max_attempts = N` (at least 1), `timeout = "30s"`, and `backoff = "1s"`
/// (exponential from that base, capped at 1 h), `backoff = exponential("1s", "10m")`
/// or `backoff = fixed("5s")`. Durations: `"500ms"`, `"30s"`, `"5m"`, `"1h"`,
/// `"2d"` and combinations from the largest unit down, like `"1m30s"`.
///
/// Schedules: `cron = "0 */5 * * * *"` (five fields, or six with seconds
/// first) enqueues the task at every tick, once across every worker that
/// runs it, on a task without arguments; `tz = "Europe/Berlin"` (an IANA
/// zone, default UTC) and `catch_up = "latest" | "none" | "all"` (missed
/// ticks: one run for the latest, none, or each of at most 100; default
/// `"latest"`) go with it. A bad expression or zone is a compile error.
///
/// Arguments and the result must be owned `Serialize + DeserializeOwned` types;
/// the error type of a `Result` must be `Display`.
///
/// The task's context: a first parameter of type `sitq::Context` (written
/// `sitq::Context`, or `Context` imported from `sitq`) is not an argument:
/// it is not stored, not a field of the struct and not a parameter of
/// `enqueue`; the worker passes each attempt its own context (the task's id,
/// name, queue, attempt and max_attempts, cancellation, and
/// `ctx.snooze(delay)` to run again later without spending an attempt):
///
/// ```ignore
/// #[sitq::task]
/// async fn sync_account(ctx: sitq::Context, account: u64) -> Result<(), MyError> {
///     if !upstream_ready().await {
///         return ctx.snooze(Duration::from_secs(30)).await;
///     }
///     // ...
/// }
///
/// sync_account::enqueue(&queue, 42).await?;
/// ```
///
/// It is taken by value, at most once, and only first. A parameter whose
/// type is named `Context` is taken for it, so a type of your own with that
/// name fails to compile, with an error saying so (rename it, or let the
/// task take `sitq::Context` first and your value second).
///
/// The attribute goes on a free fn (at module level, in a block, or in a
/// nested module), not on an associated fn in an `impl` or `trait` block:
/// what it generates beside the fn (a struct, impls, the registration)
/// cannot live there. It tells such a fn apart by reading the source file
/// at the attribute's place, and reports one error asking to move the fn.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    if let Some(block) = position::enclosing_block(proc_macro::Span::call_site()) {
        // One error, and the fn as written: it stays a valid associated fn,
        // so rustc has nothing else to report about the attribute.
        let mut tokens = associated_fn(block, &item).into_compile_error();
        tokens.extend(item);
        return tokens.into();
    }
    let options = syn::parse::<parse::Options>(attr);
    let task = signature::task_fn(item.clone());
    let expanded = match (options, task) {
        (Ok(options), Ok(task)) if options.cron.is_some() && !task.args.is_empty() => {
            Err(syn::Error::new_spanned(
                &task.item.sig.inputs,
                "a task with `cron = \"...\"` takes no arguments: each tick enqueues it as it is; \
                 for a task with arguments use `Worker::schedule(name, task { .. }, expression)`",
            ))
        }
        (Ok(options), Ok(task)) => expand::task(&options, &task),
        (Err(mut options), Err(task)) => {
            options.combine(task);
            Err(options)
        }
        (Err(err), Ok(_)) | (Ok(_), Err(err)) => Err(err),
    };
    // On error, still emit the fn as written so IDEs and the rest of the crate keep working.
    expanded
        .unwrap_or_else(|err| {
            let mut tokens = err.into_compile_error();
            tokens.extend(item);
            tokens
        })
        .into()
}

/// The error for a task fn inside an `impl` or `trait` block, on its name.
fn associated_fn(block: position::Block, item: &proc_macro2::TokenStream) -> syn::Error {
    let (ident, span) = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(item) => (format!("`{}`", item.sig.ident), item.sig.ident.span()),
        Err(_) => ("the fn".to_owned(), proc_macro2::Span::call_site()),
    };
    let block = match block {
        position::Block::Impl => "an `impl` block",
        position::Block::Trait => "a `trait`",
    };
    syn::Error::new(
        span,
        format!(
            "#[sitq::task] cannot go on a fn inside {block}: move {ident} out of it, to module \
             level (a task is a free fn, registered by name, with a struct of its arguments \
             generated beside it)"
        ),
    )
}
