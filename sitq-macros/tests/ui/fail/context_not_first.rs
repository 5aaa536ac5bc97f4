#[sitq::task]
async fn send(to: String, ctx: sitq::Context) {
    let _ = (to, ctx);
}

fn main() {}
