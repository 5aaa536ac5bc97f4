use sitq::Context;

#[sitq::task]
async fn send(ctx: Context, to: String, again: Context) {
    let _ = (ctx, to, again);
}

fn main() {}
