// A type of the user's own that happens to be called `Context`.
mod app {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Context {
        pub tenant: String,
    }
}

use app::Context;

#[sitq::task]
async fn send(ctx: Context, to: String) {
    let _ = (ctx.tenant, to);
}

fn main() {}
