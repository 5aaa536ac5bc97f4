#[sitq::task]
async fn typed<T: Clone>(value: T) {
    let _ = value;
}

#[sitq::task]
async fn borrowed<'a>(value: Vec<u8>) {
    let _ = value;
}

#[sitq::task]
async fn sized<const N: usize>(value: Vec<u8>) {
    let _ = value;
}

fn main() {}
