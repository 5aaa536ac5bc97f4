//! What a run found: a table for people, one JSON object for machines.

use std::fmt::Write as _;

/// What a figure measures.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Tasks per second.
    Rate,
    /// Milliseconds.
    Millis,
    /// Mebibytes.
    MiB,
    /// Percent of one CPU core.
    Percent,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Rate => "tasks/s",
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
            Unit::Percent => "% of a core",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Rate => format!("{}/s", thousands(value)),
            Unit::Millis if value < 10.0 => format!("{value:.2} ms"),
            Unit::Millis => format!("{value:.1} ms"),
            Unit::MiB => format!("{value:.1} MiB"),
            Unit::Percent => format!("{value:.2}%"),
        }
    }
}

/// What a figure should reach, from the issue.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Target {
    /// sitq / baseline at least this.
    RatioAtLeast(f64),
    /// The figure at least this.
    AtLeast(f64),
    /// The figure at most this.
    AtMost(f64),
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// What was measured.
    pub workload: String,
    /// Its unit.
    pub unit: Unit,
    /// sitq's figure.
    pub sitq: f64,
    /// The figure sitq is compared with (the plain-SQL ceiling, or for the
    /// scale workload the small table), if any.
    pub baseline: Option<f64>,
    /// What `baseline` is: `"ceiling"` or `"10k table"`.
    pub baseline_kind: &'static str,
    /// The goal, if the issue sets one.
    pub target: Option<Target>,
}

impl Row {
    /// A row with a figure only.
    pub fn new(backend: &'static str, workload: impl Into<String>, unit: Unit, sitq: f64) -> Row {
        Row {
            backend,
            workload: workload.into(),
            unit,
            sitq,
            baseline: None,
            baseline_kind: "ceiling",
            target: None,
        }
    }

    /// Compares with the plain-SQL ceiling.
    pub fn ceiling(mut self, ceiling: f64) -> Row {
        self.baseline = Some(ceiling);
        self
    }

    /// Compares with another baseline.
    pub fn baseline(mut self, baseline: f64, kind: &'static str) -> Row {
        self.baseline = Some(baseline);
        self.baseline_kind = kind;
        self
    }

    /// Sets the goal.
    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    /// sitq / baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .filter(|baseline| *baseline > 0.0)
            .map(|baseline| self.sitq / baseline)
    }

    /// Whether the goal is met (`None` without a goal, or without a ratio to judge).
    pub fn ok(&self) -> Option<bool> {
        match self.target? {
            Target::RatioAtLeast(min) => self.ratio().map(|ratio| ratio >= min),
            Target::AtLeast(min) => Some(self.sitq >= min),
            Target::AtMost(max) => Some(self.sitq <= max),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            None => String::new(),
            Some(Target::RatioAtLeast(min)) => {
                format!("≥ {:.0}% of {}", min * 100.0, self.baseline_kind)
            }
            Some(Target::AtLeast(min)) => format!("≥ {}", self.unit.format(min)),
            Some(Target::AtMost(max)) => format!("≤ {}", self.unit.format(max)),
        }
    }
}

/// One exactly-once check.
#[derive(Clone, Debug)]
pub struct Check {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The workload checked.
    pub workload: String,
    /// Whether every task ran once and is stored as succeeded at attempt 1.
    pub ok: bool,
    /// What was counted.
    pub detail: String,
}

/// Everything one run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Run parameters, as (name, JSON value) pairs.
    pub parameters: Vec<(&'static str, String)>,
    /// The figures.
    pub rows: Vec<Row>,
    /// The exactly-once checks.
    pub checks: Vec<Check>,
    /// Remarks (skipped workloads, reduced sizes).
    pub notes: Vec<String>,
}

impl Report {
    /// Records a run parameter given as a number or a JSON literal.
    pub fn parameter(&mut self, name: &'static str, value: impl ToString) {
        self.parameters.push((name, value.to_string()));
    }

    /// Records a run parameter given as text.
    pub fn parameter_text(&mut self, name: &'static str, value: &str) {
        self.parameters.push((name, json_string(value)));
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let header = [
            "backend", "workload", "sitq", "ceiling", "ratio", "target", "ok?",
        ];
        let mut lines: Vec<[String; 7]> = vec![header.map(str::to_owned)];
        for row in &self.rows {
            let baseline = row.baseline.map_or(String::new(), |b| row.unit.format(b));
            let baseline = if row.baseline.is_some() && row.baseline_kind != "ceiling" {
                format!("{baseline} ({})", row.baseline_kind)
            } else {
                baseline
            };
            lines.push([
                row.backend.to_owned(),
                row.workload.clone(),
                row.unit.format(row.sitq),
                baseline,
                row.ratio()
                    .map_or(String::new(), |r| format!("{:.0}%", r * 100.0)),
                row.target_text(),
                match row.ok() {
                    Some(true) => "ok".to_owned(),
                    Some(false) => "MISS".to_owned(),
                    None => String::new(),
                },
            ]);
        }
        let widths: Vec<usize> = (0..7)
            .map(|col| {
                lines
                    .iter()
                    .map(|l| l[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let params: Vec<String> = self
            .parameters
            .iter()
            .map(|(name, value)| format!("{name}={}", value.trim_matches('"')))
            .collect();
        let _ = writeln!(out, "sitq benchmark: {}", params.join(" "));
        for (i, line) in lines.iter().enumerate() {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(col, (cell, width))| {
                    let pad = width - cell.chars().count();
                    // Figures right-aligned, words left-aligned.
                    if (2..=4).contains(&col) {
                        format!("{}{cell}", " ".repeat(pad))
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join(" | ").trim_end());
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                let _ = writeln!(out, "{}", rule.join("-|-"));
            }
        }
        let failed: Vec<&Check> = self.checks.iter().filter(|c| !c.ok).collect();
        let _ = writeln!(
            out,
            "\nexactly once: {} of {} checks passed",
            self.checks.len() - failed.len(),
            self.checks.len()
        );
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(
                out,
                "  {mark} {} {}: {}",
                check.backend, check.workload, check.detail
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nnotes:");
            for note in &self.notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }

    /// The whole report as one JSON object.
    pub fn json(&self) -> String {
        let parameters: Vec<String> = self
            .parameters
            .iter()
            .map(|(name, value)| format!("{}: {value}", json_string(name)))
            .collect();
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let target = match row.target {
                    None => "null".to_owned(),
                    Some(Target::RatioAtLeast(min)) => {
                        format!(r#"{{"ratio_at_least": {}}}"#, json_number(min))
                    }
                    Some(Target::AtLeast(min)) => {
                        format!(r#"{{"at_least": {}}}"#, json_number(min))
                    }
                    Some(Target::AtMost(max)) => format!(r#"{{"at_most": {}}}"#, json_number(max)),
                };
                format!(
                    r#"{{"backend": {}, "workload": {}, "unit": {}, "sitq": {}, "baseline": {}, "baseline_kind": {}, "ratio": {}, "target": {target}, "ok": {}}}"#,
                    json_string(row.backend),
                    json_string(&row.workload),
                    json_string(row.unit.as_str()),
                    json_number(row.sitq),
                    row.baseline.map_or("null".to_owned(), json_number),
                    json_string(row.baseline_kind),
                    row.ratio().map_or("null".to_owned(), json_number),
                    row.ok().map_or("null".to_owned(), |ok| ok.to_string()),
                )
            })
            .collect();
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|check| {
                format!(
                    r#"{{"backend": {}, "workload": {}, "ok": {}, "detail": {}}}"#,
                    json_string(check.backend),
                    json_string(&check.workload),
                    check.ok,
                    json_string(&check.detail)
                )
            })
            .collect();
        let notes: Vec<String> = self.notes.iter().map(|n| json_string(n)).collect();
        format!(
            "{{\"parameters\": {{{}}},\n \"results\": [\n  {}\n ],\n \"exactly_once\": [\n  {}\n ],\n \"all_exactly_once\": {},\n \"notes\": [{}]}}",
            parameters.join(", "),
            rows.join(",\n  "),
            checks.join(",\n  "),
            self.checks.iter().all(|c| c.ok),
            notes.join(", ")
        )
    }
}

/// `value` with thousands separators, rounded to a whole number.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        // Enough digits for any figure here, without float noise.
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        "null".to_owned()
    }
}

/// `text` as a JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(json_number(0.5), "0.5");
        assert_eq!(json_number(100.0), "100");
        assert_eq!(json_number(f64::NAN), "null");
        assert_eq!(json_string("a\"b\n"), r#""a\"b\n""#);
    }

    #[test]
    fn targets_judge_ratios_and_bounds() {
        let row = Row::new("sqlite", "x", Unit::Rate, 60.0)
            .ceiling(100.0)
            .target(Target::RatioAtLeast(0.5));
        assert_eq!(row.ok(), Some(true));
        let row = Row::new("sqlite", "x", Unit::Millis, 2.0).target(Target::AtMost(1.0));
        assert_eq!(row.ok(), Some(false));
    }
}
