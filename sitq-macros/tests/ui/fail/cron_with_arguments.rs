#[sitq::task(cron = "0 */5 * * * *")]
async fn report(day: u32) -> u32 {
    day
}

fn main() {}
