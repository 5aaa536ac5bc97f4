#[sitq::task(cron = "0 */5 * * *  * *")]
async fn too_many_fields() {}

#[sitq::task(cron = "0 61 * * * *")]
async fn minute_out_of_range() {}

#[sitq::task(cron = "every day")]
async fn not_cron() {}

#[sitq::task(cron = "0 0 0 30 2 *")]
async fn thirtieth_of_february() {}

#[sitq::task(cron = 5)]
async fn not_a_string() {}

fn main() {}
