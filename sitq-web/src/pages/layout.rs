//! The page shell (navigation, refresh, the inline stylesheet) and the
//! small pieces every page shows: states, instants, durations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sitq_core::TaskStatus;

use super::Ctx;

/// The navigation entry a page belongs to.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Nav {
    /// The overview.
    Overview,
    /// Task lists and tasks.
    Tasks,
    /// Queues.
    Queues,
    /// Workers.
    Workers,
    /// Schedules.
    Schedules,
    /// Workflows.
    Workflows,
    /// The audit log.
    Audit,
    /// None (errors, confirmations): no refresh either.
    None,
}

const NAV: [(Nav, &str, &str); 7] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Tasks, "/tasks", "Tasks"),
    (Nav::Queues, "/queues", "Queues"),
    (Nav::Workers, "/workers", "Workers"),
    (Nav::Schedules, "/schedules", "Schedules"),
    (Nav::Workflows, "/workflows/find", "Workflows"),
    (Nav::Audit, "/audit", "Audit"),
];

/// The stylesheet, inline in every page: nothing to download.
const STYLE: &str = r#"
:root { --fg:#1d2430; --muted:#5d6778; --line:#d9dee7; --bg:#f6f7f9; --card:#fff;
  --ok:#1f8a4c; --bad:#c8372d; --warn:#b7791f; --run:#2b6cb0; --idle:#718096; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1d2430; color:#fff; display:flex; align-items:center; gap:24px; padding:0 24px; }
header .brand { font-weight:700; font-size:17px; padding:12px 0; }
header nav a { color:#c9d1de; text-decoration:none; padding:14px 10px; display:inline-block; }
header nav a.current { color:#fff; box-shadow: inset 0 -3px 0 #63b3ed; }
header .mode { margin-left:auto; font-size:12px; color:#c9d1de; }
main { padding:20px 24px 40px; max-width:1280px; }
h1 { font-size:20px; margin:0 0 16px; }
h2 { font-size:16px; margin:24px 0 10px; }
a { color:#2b6cb0; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(150px,1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; }
.card .value.small { font-size:16px; padding-top:6px; }
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(420px,1fr)); gap:12px; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
.chart h3 { margin:0 0 6px; font-size:13px; }
.chart svg { width:100%; height:auto; display:block; }
.legend { font-size:12px; color:var(--muted); }
.legend span { display:inline-block; width:10px; height:10px; margin:0 4px 0 10px; vertical-align:middle; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.03em; background:#eef1f5; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.error { color:var(--bad); max-width:420px; overflow-wrap:anywhere; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; background:var(--idle); }
.badge.succeeded { background:var(--ok); } .badge.failed { background:var(--bad); }
.badge.running { background:var(--run); } .badge.pending { background:var(--warn); }
.badge.cancelled, .badge.blocked { background:var(--idle); }
.badge.paused { background:var(--warn); } .badge.active { background:var(--ok); }
pre { background:#0f1720; color:#e2e8f0; padding:10px 12px; border-radius:6px; overflow:auto; max-height:420px; white-space:pre-wrap; overflow-wrap:anywhere; }
form.filters { display:flex; flex-wrap:wrap; gap:8px; align-items:end; margin-bottom:12px; }
form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
input, select { font:inherit; padding:4px 6px; border:1px solid var(--line); border-radius:4px; background:#fff; }
button, .button { font:inherit; padding:4px 12px; border-radius:4px; border:1px solid #2b6cb0; background:#2b6cb0; color:#fff; cursor:pointer; text-decoration:none; display:inline-block; }
button.danger, .button.danger { background:var(--bad); border-color:var(--bad); }
button.plain, .button.plain { background:#fff; color:var(--fg); border-color:var(--line); }
form.inline { display:inline; margin:0 4px 0 0; }
.actions { margin:12px 0; }
.notice { padding:10px 14px; border-radius:6px; margin-bottom:14px; background:#e6f4ea; border:1px solid #b7dfc3; }
.notice.error { background:#fdecea; border-color:#f5c2bd; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; background:var(--card); border:1px solid var(--line); border-radius:6px; padding:12px 16px; margin:0; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; overflow-wrap:anywhere; }
.pager { margin-top:10px; display:flex; gap:12px; }
.muted { color:var(--muted); }
footer { color:var(--muted); font-size:12px; padding:0 24px 20px; }
"#;

/// The whole page around `body`.
pub fn page(ctx: &Ctx, title: &str, nav: Nav, body: Markup) -> Markup {
    let refresh = ctx.state.refresh.as_secs();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh > 0 && nav != Nav::None {
                    meta http-equiv="refresh" content=(refresh);
                }
                title { (title) " · sitq" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "sitq" }
                    nav {
                        @for (entry, path, label) in NAV {
                            a.current[entry == nav] href=(ctx.link(path)) { (label) }
                        }
                    }
                    span.mode {
                        @if ctx.state.read_only { "read-only" } @else { "actions as " (ctx.state.actor) }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer {
                    "Rendered " (Utc::now().format("%Y-%m-%d %H:%M:%S UTC"))
                    @if refresh > 0 && nav != Nav::None { ", refreshes every " (refresh) " s" }
                }
            }
        }
    }
}

/// A task state as a coloured badge.
pub fn status(status: TaskStatus) -> Markup {
    html! { span.badge.(status.as_str()) { (status.as_str()) } }
}

/// `2026-12-05 07:01:02` with how long ago (or until) as its tooltip.
pub fn instant(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! { span title=(at.to_rfc3339()) { (ago(at, now)) } }
}

/// `3m ago`, `in 20s`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = now.signed_duration_since(at);
    match delta.to_std() {
        Ok(past) => format!("{} ago", duration(past)),
        Err(_) => format!(
            "in {}",
            duration(at.signed_duration_since(now).to_std().unwrap_or_default())
        ),
    }
}

/// A duration in its largest two units: `850ms`, `12s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (d_, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d_ > 0 {
        format!("{d_}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// The notice an action's redirect asks for (`?done=…`): a fixed text per
/// known action, nothing for anything else.
pub fn done_notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("retried") => "Retried: the task is pending again.",
        Some("cancelled") => "Cancelled.",
        Some("cancel-requested") => "Cancellation requested: the worker running the task stops it.",
        Some("deleted") => "Deleted.",
        Some("paused") => "Paused: workers take nothing more from the queue.",
        Some("resumed") => "Resumed.",
        _ => return html! {},
    };
    html! { div.notice { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 4h"
        );
    }
}
