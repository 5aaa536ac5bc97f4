#[sitq::task(queue = "mail", priority = 1, queue = "other")]
async fn send(to: String) {
    let _ = to;
}

fn main() {}
