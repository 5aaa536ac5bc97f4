//! Public tasks in a crate that denies missing docs: every generated public
//! item is documented.
#![deny(missing_docs, warnings)]
#![forbid(unsafe_code)]

/// Mail tasks.
pub mod mail {
    /// Sends a mail.
    #[sitq::task(queue = "mail")]
    pub async fn send(to: String, retries: u32) -> Result<(), String> {
        let _ = (to, retries);
        Ok(())
    }

    /// A blocking task.
    #[sitq::task]
    pub fn render(template: String) -> String {
        template
    }
}

fn main() {}
