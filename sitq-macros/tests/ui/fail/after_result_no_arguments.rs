//! A task without arguments has nothing to receive a result in.

#[sitq::task]
async fn tick() -> u64 {
    1
}

async fn wrong(queue: &sitq::Queue) -> sitq::Result<()> {
    let one = tick::enqueue(queue).await?;
    tick::after_result(&one).enqueue(queue).await?;
    Ok(())
}

fn main() {
    let _ = wrong;
}
