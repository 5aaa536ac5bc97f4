//! Server-rendered SVG charts of activity buckets: throughput as stacked
//! bars (successes, failed attempts) with the failure rate as a line, and
//! queue wait as a line. Each bucket has a tooltip (`<title>`) with its
//! figures, so nothing needs a script.

use maud::{Markup, html};
use sitq_core::ActivityBucket;

use super::layout;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// Throughput and failure rate over `buckets`; `time` formats a bucket's
/// start for the axis (`%H:%M`).
pub fn throughput(buckets: &[ActivityBucket], time: &str) -> Markup {
    let max = buckets
        .iter()
        .map(|b| b.succeeded + b.failed_attempts)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = plot_width() / buckets.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |count: u64| TOP + plot_height() * (1.0 - count as f64 / max as f64);
    let rate_points: Vec<String> = buckets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            b.failure_rate().map(|rate| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot * (i as f64 + 0.5),
                    TOP + plot_height() * (1.0 - rate)
                )
            })
        })
        .collect();
    html! {
        svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label="throughput and failure rate" {
            (axes(buckets, time, &max.to_string(), "100%"))
            @for (i, b) in buckets.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                g {
                    title { (tooltip(b, time)) }
                    rect x=(fmt(x)) y=(fmt(TOP)) width=(fmt(slot)) height=(fmt(plot_height())) fill="transparent" {}
                    @if b.succeeded > 0 {
                        rect x=(fmt(x)) y=(fmt(y(b.succeeded))) width=(fmt(bar))
                            height=(fmt(TOP + plot_height() - y(b.succeeded))) fill="#1f8a4c" {}
                    }
                    @if b.failed_attempts > 0 {
                        @let top = y(b.succeeded + b.failed_attempts);
                        rect x=(fmt(x)) y=(fmt(top)) width=(fmt(bar))
                            height=(fmt(y(b.succeeded) - top)) fill="#c8372d" {}
                    }
                }
            }
            @if rate_points.len() > 1 {
                polyline points=(rate_points.join(" ")) fill="none" stroke="#b7791f" stroke-width="1.5" {}
            }
            @for point in &rate_points {
                @if let Some((cx, cy)) = point.split_once(',') {
                    circle cx=(cx) cy=(cy) r="1.8" fill="#b7791f" {}
                }
            }
        }
        div.legend {
            span style="background:#1f8a4c" {} "succeeded"
            span style="background:#c8372d" {} "failed attempts"
            span style="background:#b7791f" {} "failure rate (right axis)"
        }
    }
}

/// Mean queue wait (due to start) per bucket as a line.
pub fn wait(buckets: &[ActivityBucket], time: &str) -> Markup {
    let max = buckets
        .iter()
        .filter_map(|b| b.mean_wait_micros)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = plot_width() / buckets.len().max(1) as f64;
    let points: Vec<(f64, f64, &ActivityBucket)> = buckets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            b.mean_wait_micros.map(|wait| {
                (
                    LEFT + slot * (i as f64 + 0.5),
                    TOP + plot_height() * (1.0 - wait as f64 / max as f64),
                    b,
                )
            })
        })
        .collect();
    let line: Vec<String> = points
        .iter()
        .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
        .collect();
    let top_label = layout::duration(std::time::Duration::from_micros(max));
    html! {
        svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label="queue wait" {
            (axes(buckets, time, &top_label, ""))
            @if line.len() > 1 {
                polyline points=(line.join(" ")) fill="none" stroke="#2b6cb0" stroke-width="1.5" {}
            }
            @for (x, y, b) in &points {
                circle cx=(fmt(*x)) cy=(fmt(*y)) r="2.2" fill="#2b6cb0" {
                    title { (tooltip(b, time)) }
                }
            }
        }
        div.legend { span style="background:#2b6cb0" {} "mean wait from due to start" }
    }
}

fn axes(buckets: &[ActivityBucket], time: &str, left_max: &str, right_max: &str) -> Markup {
    let bottom = TOP + plot_height();
    let labels: Vec<(f64, String)> = match buckets.len() {
        0 => Vec::new(),
        n => {
            let slot = plot_width() / n as f64;
            [0, n / 2, n - 1]
                .into_iter()
                .map(|i| {
                    (
                        LEFT + slot * (i as f64 + 0.5),
                        buckets[i].start.format(time).to_string(),
                    )
                })
                .collect()
        }
    };
    html! {
        line x1=(fmt(LEFT)) y1=(fmt(bottom)) x2=(fmt(WIDTH - RIGHT)) y2=(fmt(bottom)) stroke="#9aa5b4" {}
        line x1=(fmt(LEFT)) y1=(fmt(TOP)) x2=(fmt(WIDTH - RIGHT)) y2=(fmt(TOP)) stroke="#e2e6ec" stroke-dasharray="3 3" {}
        text x=(fmt(LEFT - 6.0)) y=(fmt(TOP + 9.0)) font-size="10" text-anchor="end" fill="#5d6778" { (left_max) }
        text x=(fmt(LEFT - 6.0)) y=(fmt(bottom)) font-size="10" text-anchor="end" fill="#5d6778" { "0" }
        @if !right_max.is_empty() {
            text x=(fmt(WIDTH - RIGHT + 6.0)) y=(fmt(TOP + 9.0)) font-size="10" fill="#b7791f" { (right_max) }
            text x=(fmt(WIDTH - RIGHT + 6.0)) y=(fmt(bottom)) font-size="10" fill="#b7791f" { "0%" }
        }
        @for (x, label) in labels {
            text x=(fmt(x)) y=(fmt(HEIGHT - 6.0)) font-size="10" text-anchor="middle" fill="#5d6778" { (label) }
        }
    }
}

fn tooltip(b: &ActivityBucket, time: &str) -> String {
    let mut text = format!(
        "{}: {} succeeded, {} failed attempts ({} failed for good), {} cancelled",
        b.start.format(time),
        b.succeeded,
        b.failed_attempts,
        b.failed,
        b.cancelled
    );
    if let Some(rate) = b.failure_rate() {
        text.push_str(&format!(", failure rate {:.1}%", rate * 100.0));
    }
    if let Some(wait) = b.mean_wait() {
        text.push_str(&format!(", mean wait {}", layout::duration(wait)));
    }
    text
}

fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_bucket() {
        let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let buckets = vec![
            ActivityBucket {
                start,
                succeeded: 4,
                failed_attempts: 0,
                ..ActivityBucket::default()
            },
            ActivityBucket {
                start: start + chrono::Duration::minutes(1),
                succeeded: 2,
                failed_attempts: 2,
                mean_wait_micros: Some(1_500_000),
                ..ActivityBucket::default()
            },
        ];
        let svg = throughput(&buckets, "%H:%M").into_string();
        // The busiest bucket (4) fills the plot: its bar starts at the top.
        assert!(svg.contains(&format!("y=\"{}\"", fmt(TOP))), "{svg}");
        assert!(svg.contains("failure rate 50.0%"), "{svg}");
        let svg = wait(&buckets, "%H:%M").into_string();
        assert!(svg.contains("mean wait 1s"), "{svg}");
    }
}
