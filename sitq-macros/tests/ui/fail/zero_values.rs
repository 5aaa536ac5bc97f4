#[sitq::task(max_attempts = 0)]
async fn never() {}

#[sitq::task(timeout = "0s")]
async fn instant() {}

#[sitq::task(backoff = "0ms")]
async fn no_base() {}

fn main() {}
