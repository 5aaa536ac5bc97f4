//! Compile-time checks of `cron = "..."` and `tz = "..."`, with the crates
//! and the parser settings `sitq_core::schedule::cron` uses at run time (keep
//! the two in step), so that what compiles also runs.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// Checks a cron expression; the message says what is wrong.
pub(crate) fn check_expression(expression: &str) -> Result<(), String> {
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|err| {
            format!(
                "bad cron expression {expression:?}: {err}; write five fields (minute hour \
                 day-of-month month day-of-week) or six with seconds first, e.g. \"0 */5 * * * *\""
            )
        })?;
    if cron
        .find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false)
        .is_err()
    {
        return Err(format!(
            "cron expression {expression:?} never matches a date"
        ));
    }
    Ok(())
}

/// Checks an IANA time zone name.
pub(crate) fn check_zone(zone: &str) -> Result<(), String> {
    chrono_tz::Tz::from_str(zone).map(drop).map_err(|_| {
        format!("unknown time zone {zone:?}; use an IANA name such as \"UTC\" or \"Europe/Berlin\"")
    })
}
