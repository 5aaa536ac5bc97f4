#[sitq::task]
#[derive(Debug)]
pub struct Send {
    to: String,
}

fn main() {}
