//! Signatures `#[sitq::task]` accepts.
#![deny(warnings)]
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

mod errors {
    // An alias is recognised by its last segment being `Result`.
    pub type Result<T> = std::result::Result<T, super::MyError>;
}

#[sitq::task]
async fn no_arguments() {}

#[sitq::task]
async fn unit_result() -> Result<(), MyError> {
    Ok(())
}

#[sitq::task]
async fn many(a: i64, b: String, c: Vec<Point>, d: Option<(u8, bool)>) -> Point {
    let _ = (a, b, c, d);
    Point { x: 0.0, y: 1.0 }
}

#[sitq::task]
async fn mutable(mut n: u32) -> u32 {
    n += 1;
    n
}

#[sitq::task]
fn plain(text: String) -> std::io::Result<usize> {
    Ok(text.len())
}

#[sitq::task]
fn aliased() -> errors::Result<String> {
    Ok(String::new())
}

#[sitq::task]
async fn explicit_unit() -> () {}

/// Documented: the docs go to the struct too.
#[sitq::task]
pub(crate) async fn documented(#[serde(default)] added_later: u32) {
    let _ = added_later;
}

#[sitq::task]
async fn r#type(r#match: String) {
    let _ = r#match;
}

#[cfg(any())]
#[sitq::task]
async fn compiled_out(x: NotEvenAType) {}

fn main() {
    let _ = many {
        a: 1,
        b: String::new(),
        c: Vec::new(),
        d: None,
    };
    let _ = r#type {
        r#match: String::new(),
    };
    let _ = documented { added_later: 0 };
    let _ = (no_arguments(), unit_result(), mutable(1), plain, aliased, explicit_unit());
}
