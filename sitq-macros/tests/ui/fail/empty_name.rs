#[sitq::task(name = "")]
async fn unnamed() {}

#[sitq::task(queue = " ")]
async fn nowhere() {}

fn main() {}
