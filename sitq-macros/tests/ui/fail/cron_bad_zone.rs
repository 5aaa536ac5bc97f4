#[sitq::task(cron = "0 0 2 * * *", tz = "Europe/Berlln")]
async fn typo() {}

#[sitq::task(cron = "0 0 2 * * *", tz = "CEST")]
async fn abbreviation() {}

fn main() {}
