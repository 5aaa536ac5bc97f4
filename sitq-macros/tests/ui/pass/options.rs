//! Every option form `#[sitq::task(...)]` accepts.
#![deny(warnings)]

use std::time::Duration;

use sitq::{Backoff, Task};

#[sitq::task()]
async fn empty_parens() {}

#[sitq::task(name = "custom.name", queue = "mail",)]
async fn trailing_comma() {}

#[sitq::task(priority = -2147483648, max_attempts = 4294967295)]
async fn extremes() {}

#[sitq::task(priority = 5i32, max_attempts = 2u32)]
async fn suffixed() {}

#[sitq::task(timeout = "1d2h3m4s5ms", backoff = "2h")]
async fn long() {}

#[sitq::task(backoff = exponential("100ms", "1m"))]
async fn exponential() {}

#[sitq::task(backoff = fixed("0s"))]
async fn immediate() {}

#[sitq::task(unique)]
async fn unique_by_arguments(user: u64) {
    let _ = user;
}

#[sitq::task(queue = "q", unique, unique_for = "1h")]
async fn unique_with_window() {}

#[sitq::task(unique_for = "30m")]
async fn window_alone() {}

fn main() {
    assert_eq!(<trailing_comma as Task>::NAME, "custom.name");
    assert_eq!(<extremes as Task>::DEFAULTS.priority, i32::MIN);
    assert_eq!(<extremes as Task>::DEFAULTS.max_attempts, u32::MAX);
    assert_eq!(<suffixed as Task>::DEFAULTS.priority, 5);
    assert_eq!(
        <long as Task>::DEFAULTS.timeout,
        Some(Duration::from_millis(93_784_005))
    );
    // A base over the 1 h cap raises the cap to the base.
    assert_eq!(
        <long as Task>::DEFAULTS.backoff,
        Backoff::Exponential {
            base: Duration::from_secs(7200),
            max: Duration::from_secs(7200),
        }
    );
    assert_eq!(
        <exponential as Task>::DEFAULTS.backoff,
        Backoff::Exponential {
            base: Duration::from_millis(100),
            max: Duration::from_secs(60),
        }
    );
    assert_eq!(
        <immediate as Task>::DEFAULTS.backoff,
        Backoff::Fixed(Duration::ZERO)
    );
    let unique = <unique_by_arguments as Task>::DEFAULTS;
    assert!(unique.unique && unique.unique_for.is_none());
    let windowed = <unique_with_window as Task>::DEFAULTS;
    assert!(windowed.unique);
    assert_eq!(windowed.unique_for, Some(Duration::from_secs(3600)));
    assert_eq!(windowed.queue, "q");
    // `unique_for` implies `unique`.
    let alone = <window_alone as Task>::DEFAULTS;
    assert!(alone.unique);
    assert_eq!(alone.unique_for, Some(Duration::from_secs(1800)));
    let _ = empty_parens;
}
