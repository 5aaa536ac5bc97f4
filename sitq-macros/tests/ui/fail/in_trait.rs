trait Mailer {
    #[sitq::task]
    fn send(to: String) {
        let _ = to;
    }
}

fn main() {}
