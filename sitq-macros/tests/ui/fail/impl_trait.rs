#[sitq::task]
async fn greet(name: impl Into<String>) {
    let _ = name.into();
}

#[sitq::task]
async fn numbers() -> impl Iterator<Item = u32> {
    0..3
}

fn main() {}
