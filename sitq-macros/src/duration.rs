//! Duration strings in options: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`,
//! and combinations from the largest unit down, like `"1m30s"` or `"1h30m"`.

use std::time::Duration;

/// What the error messages show as the accepted forms.
pub(crate) const ACCEPTED: &str = "write a duration such as \"500ms\", \"30s\", \"5m\", \"1h\", \"2d\" \
     or a combination from the largest unit down such as \"1m30s\"";

/// Units, largest first; each is in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration string; the error says what is wrong and what is accepted.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err(format!("empty duration; {ACCEPTED}"));
    }
    if text.contains(char::is_whitespace) {
        return Err(format!("`{text}` contains spaces; {ACCEPTED}"));
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen: each next one must be smaller.
    let mut last_unit: Option<usize> = None;
    while let Some(first) = rest.chars().next() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(if first.is_ascii_alphabetic() {
                format!("expected a number before `{first}` in `{text}`; {ACCEPTED}")
            } else {
                format!("unexpected `{first}` in `{text}`; {ACCEPTED}")
            });
        }
        let (number, after) = rest.split_at(digits);
        let letters = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(letters);
        if unit.is_empty() {
            return Err(match after.chars().next() {
                None => format!("`{number}` in `{text}` has no unit; {ACCEPTED}"),
                Some(c) => format!("unexpected `{c}` in `{text}`; {ACCEPTED}"),
            });
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use ms, s, m, h or d); {ACCEPTED}"
            ));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(format!(
                "units in `{text}` must each appear once, from the largest down; {ACCEPTED}"
            ));
        }
        last_unit = Some(index);
        let millis = number
            .parse::<u64>()
            .ok()
            .and_then(|number| number.checked_mul(UNITS[index].1))
            .and_then(|millis| total.checked_add(millis));
        total = millis.ok_or_else(|| format!("`{text}` is too long a duration"))?;
        rest = after;
    }
    Ok(Duration::from_millis(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn combinations_from_the_largest_unit_down() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1d2h3m4s5ms"), Ok(Duration::from_millis(93_784_005)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_is_accepted() {
        for (text, reason) in [
            ("", "empty"),
            ("30", "has no unit"),
            ("1m30", "has no unit"),
            ("30 s", "contains spaces"),
            ("s", "expected a number before `s`"),
            ("1.5s", "unexpected `.`"),
            ("-1s", "unexpected `-`"),
            ("10y", "unknown unit `y`"),
            ("10sec", "unknown unit `sec`"),
            ("30s1m", "from the largest down"),
            ("1m1m", "from the largest down"),
            ("99999999999999999999s", "too long"),
            ("999999999999999d", "too long"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
            if reason != "too long" {
                assert!(err.contains(ACCEPTED), "{text}: {err}");
            }
        }
    }
}
