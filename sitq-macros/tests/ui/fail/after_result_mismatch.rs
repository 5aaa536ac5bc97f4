//! `after_result` checks, at compile time, that the dependency's result is
//! the type of the task's first argument.

#[sitq::task]
async fn fetch(url: String) -> String {
    url
}

#[sitq::task]
async fn square(n: u64) -> u64 {
    n * n
}

#[sitq::task]
fn total(counts: Vec<u64>) -> u64 {
    counts.iter().sum()
}

async fn wrong(queue: &sitq::Queue) -> sitq::Result<()> {
    let text = fetch::enqueue(queue, "https://example.com".into()).await?;
    // A `String` result cannot be a `u64` argument.
    square::after_result(&text).enqueue(queue).await?;
    // A list of `String` results cannot be a `Vec<u64>`.
    total::after_result(&[text.clone()]).enqueue(queue).await?;
    // One `u64` handle cannot be a `Vec<u64>`.
    let n = square::enqueue(queue, 3).await?;
    total::after_result(&n).enqueue(queue).await?;
    Ok(())
}

fn main() {
    let _ = wrong;
}
