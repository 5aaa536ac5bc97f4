#[sitq::task(tz = "Europe/Berlin")]
async fn zone_without_cron() {}

#[sitq::task(catch_up = "all")]
async fn catch_up_without_cron() {}

#[sitq::task(cron = "0 * * * * *", catch_up = "everything")]
async fn unknown_policy() {}

fn main() {}
