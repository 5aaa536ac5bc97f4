//! Tasks with schedules: they register with the task and keep its API.

#[sitq::task(cron = "0 */5 * * * *", tz = "Europe/Berlin")]
async fn every_five_minutes() -> Result<(), String> {
    Ok(())
}

#[sitq::task(cron = "15 2 * * *", catch_up = "none", queue = "reports")]
fn nightly() {}

#[sitq::task(cron = "@hourly", catch_up = "all", name = "hourly")]
async fn hourly() -> u32 {
    1
}

#[sitq::task(cron = "* * * * * *", catch_up = "latest")]
pub async fn every_second() {}

fn main() {
    let _ = every_five_minutes::with();
    let _ = nightly();
    let _ = hourly::with();
    let _ = every_second::with();
    let declared = sitq::__private::inventory::iter::<sitq::__private::ScheduleRegistration>()
        .filter(|schedule| schedule.name == "hourly")
        .count();
    assert_eq!(declared, 1);
}
