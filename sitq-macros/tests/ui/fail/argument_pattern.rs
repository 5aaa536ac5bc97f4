#[sitq::task]
async fn tuple((a, b): (i64, i64)) -> i64 {
    a + b
}

#[sitq::task]
async fn wildcard(_: u32) {}

#[sitq::task]
async fn by_ref(ref name: String) {
    let _ = name;
}

fn main() {}
