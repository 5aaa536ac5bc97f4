struct Mailer;

impl Mailer {
    /// Documented, with options and arguments.
    #[sitq::task(queue = "mail")]
    async fn send(to: String, retries: u32) -> Result<(), String> {
        let _ = (to, retries);
        Ok(())
    }
}

fn main() {}
