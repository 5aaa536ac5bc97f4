#[sitq::task]
async fn shared(ctx: &sitq::Context, to: String) {
    let _ = (ctx, to);
}

#[sitq::task]
async fn exclusive(ctx: &mut sitq::Context) {
    let _ = ctx;
}

fn main() {}
