#[sitq::task]
async fn send(to: &str) {
    let _ = to;
}

#[sitq::task]
async fn sum(values: Option<&[i64]>) {
    let _ = values;
}

fn main() {}
