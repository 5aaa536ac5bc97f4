#[sitq::task(queue = mail)]
async fn unquoted() {}

#[sitq::task(priority = "high")]
async fn quoted_priority() {}

#[sitq::task(max_attempts = 2.5)]
async fn fractional() {}

#[sitq::task(timeout = 30)]
async fn bare_number() {}

#[sitq::task(backoff = linear("1s"))]
async fn unknown_backoff() {}

#[sitq::task(priority = 3000000000)]
async fn out_of_range() {}

#[sitq::task(priority = 1u8)]
async fn wrong_suffix() {}

fn main() {}
