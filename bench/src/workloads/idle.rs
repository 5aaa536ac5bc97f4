//! Idle: a worker process on an empty queue, after a settling second, for
//! five seconds; its CPU time (user + system, from `/proc/<pid>/stat`) as
//! a share of one core. On SQLite it should stay within 1%.

use std::process::Command;
use std::time::{Duration, Instant};

use super::Bench;
use crate::Result;
use crate::child::ChildWorker;
use crate::db::Kind;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};

/// How long the worker settles before the measurement.
const SETTLE: Duration = Duration::from_secs(1);
/// How long the worker is watched.
const WATCH: Duration = Duration::from_secs(5);

/// Measures an idle worker process's CPU use.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let c = bench.args.concurrency;
    let (fresh, queue) = bench.fresh_queue("idle").await?;
    queue.close().await;
    let worker = ChildWorker::start(&fresh.url, c, 0).await?;
    let pid = worker.pid().ok_or("the worker process has no pid")?;
    let progress = Progress::new(bench.label("idle: worker process on an empty queue"), 2);
    tokio::time::sleep(SETTLE).await;
    progress.set(1);
    let ticks_before = cpu_ticks(pid)?;
    let clock = Instant::now();
    tokio::time::sleep(WATCH).await;
    let ticks_after = cpu_ticks(pid)?;
    let watched = clock.elapsed();
    worker.finish(&Progress::hidden()).await?;
    let ticks = ticks_after.saturating_sub(ticks_before);
    let cpu = ticks as f64 / clock_ticks_per_second() as f64;
    let percent = 100.0 * cpu / watched.as_secs_f64();
    progress.finish(&format!("{percent:.2}% of a core ({ticks} ticks)"));
    bench.provider.drop_database(&fresh).await;

    let mut row = Row::new(
        bench.backend(),
        format!("idle worker CPU, C={c}, {} s", WATCH.as_secs()),
        Unit::Percent,
        percent,
    );
    if bench.provider.kind() == Kind::Sqlite {
        row = row.target(Target::AtMost(1.0));
    }
    bench.push(row);
    Ok(())
}

/// The process's user + system time so far, in clock ticks (fields 14 and
/// 15 of `/proc/<pid>/stat`, all threads included).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|err| format!("reading {path}: {err}"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| format!("unexpected {path}: {stat:?}").into())
}

/// utime + stime from the text of a `/proc/<pid>/stat`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100, Linux's
/// usual value, if that cannot be asked).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_ticks;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "4242 (sitq bench) S 1 2 3 4 5 6 7 8 9 10 120 35 0 0 20 0 9 0 100 0";
        assert_eq!(parse_cpu_ticks(stat), Some(155));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }
}
