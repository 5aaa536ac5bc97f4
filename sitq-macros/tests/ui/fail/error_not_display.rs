#[derive(Debug)]
struct Opaque;

#[sitq::task]
async fn fails() -> Result<u32, Opaque> {
    Err(Opaque)
}

fn main() {}
