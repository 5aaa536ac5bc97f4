//! `sitq doctor`: the database's health, and tasks no live worker runs.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;
use sitq::TaskStatus;
use sitq::admin::{Check, CheckLevel, Diagnosis, Stats, WorkerInfo};

use super::Ctx;
use crate::error::Result;
use crate::output::{self, WIDTH, wrap};

/// Tasks waiting for a name no live worker runs.
#[derive(Debug, Serialize)]
struct Unserved {
    queue: String,
    name: String,
    pending: u64,
}

/// `doctor --json`: the core [`Diagnosis`], the unserved tasks, and whether
/// every check passed (`ok` is false when the exit code is not 0).
#[derive(Serialize)]
struct DoctorJson<'a> {
    #[serde(flatten)]
    diagnosis: &'a Diagnosis,
    unserved: &'a [Unserved],
    ok: bool,
}

/// Runs the checks; exits non-zero when one fails.
pub async fn run(ctx: &Ctx) -> Result<ExitCode> {
    let diagnosis = ctx.queue.diagnose().await?;
    let stats = ctx.queue.stats().await?;
    let workers = ctx.queue.workers().await?;
    let unserved = unserved(&stats, &workers);
    let checks = checks(&diagnosis, &unserved, workers.len());
    let ok = !checks.iter().any(|check| check.level == CheckLevel::Fail);
    if ctx.json {
        output::print_json(&DoctorJson {
            diagnosis: &diagnosis,
            unserved: &unserved,
            ok,
        })?;
    } else {
        let mut text = wrap(&format!("database: {}", diagnosis.location), "", WIDTH);
        for check in &checks {
            let level = match check.level {
                CheckLevel::Ok => "ok  ",
                CheckLevel::Warn => "WARN",
                CheckLevel::Fail => "FAIL",
            };
            text.push_str(&output::hanging(
                &format!("{level}  {}: {}", check.name, check.detail),
                "",
                "      ",
                WIDTH,
            ));
        }
        let warnings = checks
            .iter()
            .filter(|check| check.level == CheckLevel::Warn)
            .count();
        let failures = checks.len()
            - checks
                .iter()
                .filter(|c| c.level != CheckLevel::Fail)
                .count();
        text.push_str(&format!("{failures} failed, {warnings} warning(s)\n"));
        output::print(&text);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Pending and blocked tasks, by queue and name, that no live worker runs.
fn unserved(stats: &Stats, workers: &[WorkerInfo]) -> Vec<Unserved> {
    let mut waiting: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for count in &stats.counts {
        if matches!(count.status, TaskStatus::Pending | TaskStatus::Blocked) && count.count > 0 {
            *waiting.entry((&count.queue, &count.name)).or_default() += count.count;
        }
    }
    waiting
        .into_iter()
        .filter(|((queue, name), _)| !workers.iter().any(|worker| worker.runs(queue, name)))
        .map(|((queue, name), pending)| Unserved {
            queue: queue.to_owned(),
            name: name.to_owned(),
            pending,
        })
        .collect()
}

/// The backend's checks with the schema, leases, row sizes and workers.
fn checks(diagnosis: &Diagnosis, unserved: &[Unserved], live_workers: usize) -> Vec<Check> {
    let mut checks = Vec::new();
    let (have, want) = (diagnosis.schema_version, diagnosis.expected_schema_version);
    checks.push(if have == want {
        Check::new("schema", CheckLevel::Ok, format!("version {have}"))
    } else if have < want {
        Check::new(
            "schema",
            CheckLevel::Fail,
            format!("version {have}, this sitq expects {want}: start a worker of this version to migrate"),
        )
    } else {
        Check::new(
            "schema",
            CheckLevel::Fail,
            format!("version {have} is newer than this sitq knows ({want}): upgrade the sitq tool"),
        )
    });
    checks.extend(diagnosis.checks.iter().cloned());
    checks.push(if diagnosis.expired_leases == 0 {
        Check::new("leases", CheckLevel::Ok, "no expired leases")
    } else {
        Check::new(
            "leases",
            CheckLevel::Warn,
            format!(
                "{} running task(s) with an expired lease (a worker died); a running worker returns them to the queue",
                diagnosis.expired_leases
            ),
        )
    });
    if diagnosis.oversized.is_empty() {
        checks.push(Check::new(
            "row sizes",
            CheckLevel::Ok,
            "no oversized payloads or results",
        ));
    }
    for row in &diagnosis.oversized {
        checks.push(Check::new(
            "row sizes",
            CheckLevel::Warn,
            format!(
                "task {} ({}) stores {} payload and {} result bytes",
                row.id, row.name, row.payload_bytes, row.result_bytes
            ),
        ));
    }
    checks.push(Check::new(
        "workers",
        CheckLevel::Ok,
        format!("{live_workers} live"),
    ));
    for task in unserved {
        checks.push(Check::new(
            "unserved",
            CheckLevel::Warn,
            format!(
                "{} task(s) of {} on queue {} wait, and no live worker runs that name",
                task.pending, task.name, task.queue
            ),
        ));
    }
    checks
}
