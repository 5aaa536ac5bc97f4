//! Arbitrary input into what reads outside data: the payload decoder, the
//! cron parser and evaluator, the URL's scheme, and what operators type
//! (durations, times, states, ids). Each returns an error or a value; none
//! panics.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use sitq_core::codec;
use sitq_core::inspect::{parse_duration, parse_since, parse_statuses};
use sitq_core::schedule::CronSchedule;
use sitq_core::{FailureKind, Queue, TaskId, TaskStatus};

/// A task's arguments as a struct with named fields (how they are stored).
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // only decoded
struct Args {
    name: String,
    count: u64,
    tags: Vec<String>,
    extra: Option<BTreeMap<String, f64>>,
}

/// Instants from 1970 to 2100.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800).prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap_or_default())
}

/// Cron expressions (seconds first, as sitq's are): each field a token
/// that fits its place, or now and then any text in cron's alphabet, so
/// the evaluator runs on many of them, not only the parser's first check.
fn cron_text() -> impl Strategy<Value = String> {
    fn field(tokens: &'static [&'static str]) -> BoxedStrategy<String> {
        prop_oneof![
            6 => prop::sample::select(tokens).prop_map(str::to_owned),
            1 => "[0-9*/,LW#?A-Z-]{1,6}",
        ]
        .boxed()
    }
    (
        field(&["0", "*/5", "30", "0,30", "*", "59"]),
        field(&["*", "0", "*/15", "5-10", "59"]),
        field(&["*", "3", "0-23/2", "12", "23"]),
        field(&["*", "1", "15W", "L", "29", "31", "?", "1-15", "LW"]),
        field(&["*", "JAN", "2", "*/3", "FEB", "1-6", "DEC"]),
        field(&["*", "MON-FRI", "SUN", "6L", "3#2", "?", "1-5", "5#5"]),
    )
        .prop_map(|(s, m, h, dom, mon, dow)| format!("{s} {m} {h} {dom} {mon} {dow}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<Args>(&bytes, "arguments");
        let _ = codec::decode::<(u64, String, Vec<i32>)>(&bytes, "arguments");
        let _ = codec::decode::<serde_json::Value>(&bytes, "arguments");
        let _ = codec::to_json(&bytes, "arguments");
        let (left, right) = bytes.split_at(bytes.len() / 2);
        let _ = codec::decode_sequence::<(Vec<u8>, Vec<u8>)>(&[left, right], "inputs");
    }

    #[test]
    fn the_cron_parser_takes_any_text(expression in any::<String>(), zone in any::<String>()) {
        let _ = CronSchedule::parse(&expression, &zone);
        let _ = CronSchedule::parse(&expression, "UTC");
    }

    #[test]
    fn parsed_schedules_evaluate_anywhere(
        expression in cron_text(),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
        at in instant(),
    ) {
        if let Ok(schedule) = CronSchedule::parse(&expression, zone) {
            let next = schedule.next_after(at);
            prop_assert!(next.is_none_or(|next| next > at), "{expression}: {next:?} after {at}");
            let last = schedule.last_at_or_before(at);
            prop_assert!(last.is_none_or(|last| last <= at), "{expression}: {last:?} at or before {at}");
        }
    }

    #[test]
    fn typed_values_take_any_text(text in any::<String>(), now in instant()) {
        let _ = parse_duration(&text);
        let _ = parse_since(&text, now);
        let _ = parse_statuses([text.as_str()]);
        let _ = text.parse::<TaskStatus>();
        let _ = text.parse::<TaskId>();
        let _ = FailureKind::parse(&text);
    }
}

#[test]
fn urls_without_a_backend_are_errors() {
    // No backend is linked into this test: every URL is refused, whatever
    // its shape, by the scheme check alone.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    proptest!(ProptestConfig::with_cases(256), |(url in any::<String>())| {
        let outcome = runtime.block_on(Queue::connect(&url));
        prop_assert!(outcome.is_err());
    });
}
