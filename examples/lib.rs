//! Runnable sitq programs live in `examples/`: `cargo run --example quickstart`,
//! `worker` + `producer` (two processes sharing the `sitq-example-tasks` crate).
