//! The worker-injected `sitq::Context` as the first parameter.
#![deny(warnings)]

use std::time::Duration;

use sitq::Context;

#[sitq::task]
async fn qualified(ctx: sitq::Context, to: String, retries: u32) -> Result<u32, String> {
    if ctx.is_cancelled() {
        return Err(format!("{to}: cancelled"));
    }
    Ok(retries + ctx.attempt())
}

#[sitq::task]
async fn imported(ctx: Context) -> u32 {
    if ctx.attempt() < 2 {
        return ctx.snooze(Duration::from_secs(1)).await;
    }
    ctx.attempt()
}

#[sitq::task]
fn blocking(ctx: Context, n: u64) -> u64 {
    ctx.id().0 as u64 + n
}

// Indented, so the macro reads this file to tell it is not in an `impl`.
mod nested {
    /// In a module, with a parameter named `context`.
    #[sitq::task]
    pub async fn in_module(context: sitq::Context, ids: Vec<i64>) -> usize {
        ids.len() + context.name().len()
    }

    struct Helper;

    impl Helper {
        // An ordinary associated fn next to a task is left alone.
        #[allow(dead_code)]
        fn help() {}
    }
}

async fn enqueue_all(queue: &sitq::Queue) -> sitq::Result<()> {
    // The context is not an argument of `enqueue`.
    qualified::enqueue(queue, "a@example.com".into(), 3).await?;
    imported::enqueue(queue).await?;
    blocking::with().priority(1).enqueue(queue, 7).await?;
    nested::in_module::enqueue(queue, vec![1, 2]).await?;
    Ok(())
}

fn main() {
    let _ = enqueue_all;
}
