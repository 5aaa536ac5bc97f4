//! Names that the generated code must neither capture nor shadow.
#![deny(warnings)]

use sitq::Task;

#[sitq::task]
async fn task(queue: String, options: u32, args: i64, output: bool, payload: Vec<u8>) -> String {
    let _ = (options, args, output, payload);
    queue
}

#[sitq::task]
async fn payload(task: String, value: u8, error: u8) {
    let _ = (task, value, error);
}

#[sitq::task]
async fn args(send: u8) {
    let _ = send;
}

#[sitq::task]
async fn send(send: u8) -> u8 {
    send
}

// A local `Result` with the same shape as std's.
mod local {
    pub type Result<T, E = String> = std::result::Result<T, E>;

    #[sitq::task]
    pub async fn fallible(x: u8) -> Result<u8> {
        Ok(x)
    }
}

fn main() {
    assert_eq!(<task as Task>::NAME, concat!(module_path!(), "::task"));
    assert_eq!(
        <local::fallible as Task>::NAME,
        concat!(module_path!(), "::local::fallible")
    );
    let _ = (payload, args, send);
}
