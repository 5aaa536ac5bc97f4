#[sitq::task(unique_for = "an hour")]
async fn bad_window() {}

#[sitq::task(unique_for = "0s")]
async fn zero_window() {}

#[sitq::task(unique_for = 3600)]
async fn not_a_string() {}

#[sitq::task(unique = true)]
async fn flag_with_value() {}

#[sitq::task(unique, unique)]
async fn twice() {}

fn main() {}
