struct Mailer;

impl Mailer {
    #[sitq::task]
    async fn send(&self, to: String) {
        let _ = to;
    }
}

fn main() {}
