//! `#[sitq::task(...)]` options become the task's `DEFAULTS`.

use std::time::Duration;

use sitq::{Backoff, Task};
use sitq_core::TaskDefaults;

#[sitq::task]
async fn bare() {}

#[sitq::task(queue = "mail", max_attempts = 5, timeout = "30s")]
async fn send(to: String) {
    let _ = to;
}

#[sitq::task(priority = -3, backoff = "2s", timeout = "1m30s")]
fn low() {}

#[sitq::task(priority = 10, backoff = exponential("500ms", "10m"))]
async fn capped() {}

#[sitq::task(
    queue = "q",
    priority = 1,
    max_attempts = 1,
    timeout = "2d",
    backoff = fixed("5s")
)]
async fn everything() {}

#[test]
fn without_options_the_defaults_are_the_runtime_defaults() {
    assert_eq!(<bare as Task>::DEFAULTS, TaskDefaults::DEFAULT);
}

#[test]
fn options_set_queue_attempts_and_timeout() {
    assert_eq!(
        <send as Task>::DEFAULTS,
        TaskDefaults {
            queue: "mail",
            max_attempts: 5,
            timeout: Some(Duration::from_secs(30)),
            ..TaskDefaults::DEFAULT
        }
    );
}

#[test]
fn negative_priority_and_a_backoff_base() {
    let defaults = <low as Task>::DEFAULTS;
    assert_eq!(defaults.priority, -3);
    assert_eq!(defaults.timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        defaults.backoff,
        Backoff::Exponential {
            base: Duration::from_secs(2),
            max: Duration::from_secs(3600),
        }
    );
}

#[test]
fn exponential_backoff_with_a_cap() {
    let defaults = <capped as Task>::DEFAULTS;
    assert_eq!(defaults.priority, 10);
    assert_eq!(
        defaults.backoff,
        Backoff::Exponential {
            base: Duration::from_millis(500),
            max: Duration::from_secs(600),
        }
    );
}

#[test]
fn every_option_at_once() {
    assert_eq!(
        <everything as Task>::DEFAULTS,
        TaskDefaults {
            queue: "q",
            priority: 1,
            max_attempts: 1,
            timeout: Some(Duration::from_secs(2 * 86_400)),
            backoff: Backoff::Fixed(Duration::from_secs(5)),
            unique: false,
            unique_for: None,
        }
    );
}
