//! `#[sitq::task]` (being written).
