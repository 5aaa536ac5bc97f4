#[sitq::task(timeout = "30 seconds")]
async fn spaced() {}

#[sitq::task(timeout = "1.5s")]
async fn fractional() {}

#[sitq::task(timeout = "10y")]
async fn unknown_unit() {}

#[sitq::task(timeout = "30s1m")]
async fn wrong_order() {}

#[sitq::task(backoff = fixed("5"))]
async fn no_unit() {}

#[sitq::task(backoff = exponential("1m", "1s"))]
async fn cap_below_base() {}

fn main() {}
