#[sitq::task]
unsafe fn dangerous(x: u32) -> u32 {
    x
}

#[sitq::task]
extern "C" fn foreign(x: u32) -> u32 {
    x
}

fn main() {}
