//! Dashboard: how long the overview page takes over a table of about a
//! million tasks (the bound: 200 ms), and the reads behind it.
//!
//! The table is made with plain SQL in sitq's own schema: copies of one
//! real finished task, then spread over four queues and the last day, 3%
//! failed and 1% pending, so the day's activity chart reads every row and
//! the counts group the whole table. The page is fetched over HTTP from
//! `sitq_web`'s router on a loopback port, as a browser would. The page
//! keeps its whole-table reads for the refresh interval and renews them in
//! the background, so the first render after start is measured apart.

use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Bench;
use super::burn_down::finished_template;
use crate::Result;
use crate::db::Raw;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};

/// Renders measured (the median is reported).
const RENDERS: usize = 7;

/// Fills the table and times the page and its reads.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let rows = bench.args.filler + 1;
    let (fresh, queue) = bench.fresh_queue("dashboard").await?;
    let template = finished_template(&queue).await?;
    let raw = bench.raw(&fresh, 1).await?;
    let progress = Progress::new(
        bench.label(&format!("dashboard: {rows} tasks")),
        usize::try_from(rows)?,
    );
    raw.clone_rows(template, rows - 1, 100_000, |done| {
        progress.set(usize::try_from(done).unwrap_or(usize::MAX));
    })
    .await?;
    spread(&raw).await?;
    raw.close().await;
    progress.finish("filled");

    let backend = bench.backend();
    let stats = best_of(3, || async { queue.stats().await.map(drop) }).await?;
    let hour = best_of(3, || async {
        queue
            .activity(Duration::from_secs(3600), Duration::from_secs(60))
            .await
            .map(drop)
    })
    .await?;
    let day = best_of(3, || async {
        queue
            .activity(Duration::from_secs(86_400), Duration::from_secs(3600))
            .await
            .map(drop)
    })
    .await?;

    let queues = best_of(3, || async { queue.queues().await.map(drop) }).await?;
    let workers = best_of(3, || async { queue.workers().await.map(drop) }).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = sitq_web::router(queue.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // The first render reads the table; later ones within the refresh
    // interval render from those reads (sitq_web's overview cache).
    let started = Instant::now();
    let first = get(addr, "/").await?;
    let cold = started.elapsed();
    if !first.starts_with("HTTP/1.1 200") {
        let head: String = first.chars().take(300).collect();
        return Err(format!("the overview did not render: {head}").into());
    }
    let mut times = Vec::with_capacity(RENDERS);
    for _ in 0..RENDERS {
        let started = Instant::now();
        let page = get(addr, "/").await?;
        times.push(started.elapsed());
        if !page.starts_with("HTTP/1.1 200") || !page.contains("Throughput and failure rate") {
            let head: String = page.chars().take(300).collect();
            return Err(format!("the overview did not render: {head}").into());
        }
    }
    server.abort();
    queue.close().await;
    times.sort();
    let median = times[times.len() / 2];
    let millis = |d: Duration| d.as_secs_f64() * 1000.0;
    bench.push(
        Row::new(
            backend,
            format!("overview page, {rows} tasks (median of {RENDERS})"),
            Unit::Millis,
            millis(median),
        )
        .target(Target::AtMost(200.0)),
    );
    bench.push(Row::new(
        backend,
        format!("  first render after start, {rows} tasks"),
        Unit::Millis,
        millis(cold),
    ));
    for (what, took) in [
        ("counts by queue, name and state", stats),
        ("activity, last hour by minute", hour),
        ("activity, last day by hour", day),
        ("queues with their depth (every render)", queues),
        ("live workers (every render)", workers),
    ] {
        bench.push(Row::new(
            backend,
            format!("  {what}, {rows} tasks (best of 3)"),
            Unit::Millis,
            millis(took),
        ));
    }
    bench.provider.drop_database(&fresh).await;
    Ok(())
}

/// Spreads the copies over four queues and the last day; 3% failed, 1%
/// pending.
async fn spread(raw: &Raw) -> Result<()> {
    match raw {
        Raw::Sqlite(pool) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_micros();
            let now = i64::try_from(now)?;
            sqlx::query(AssertSqlSafe(
                "UPDATE sitq_tasks SET queue = 'q' || (id % 4), \
                 finished_at = ?1 - (id % 86400) * 1000000, \
                 started_at = ?1 - (id % 86400) * 1000000 - 2000, \
                 run_at = ?1 - (id % 86400) * 1000000 - 9000, \
                 status = CASE WHEN id % 100 < 3 THEN 'failed' ELSE 'succeeded' END, \
                 error_kind = CASE WHEN id % 100 < 3 THEN 'error' END, \
                 error = CASE WHEN id % 100 < 3 THEN 'boom' END"
                    .to_owned(),
            ))
            .bind(now)
            .execute(pool)
            .await?;
            sqlx::query(
                "UPDATE sitq_tasks SET status = 'pending', started_at = NULL, \
                 finished_at = NULL, result = NULL WHERE id % 100 = 3",
            )
            .execute(pool)
            .await?;
        }
        Raw::Postgres(pool) => {
            sqlx::query(
                "UPDATE sitq_tasks SET queue = 'q' || (id % 4), \
                 finished_at = now() - make_interval(secs => id % 86400), \
                 started_at = now() - make_interval(secs => id % 86400) - interval '2 ms', \
                 run_at = now() - make_interval(secs => id % 86400) - interval '9 ms', \
                 status = CASE WHEN id % 100 < 3 THEN 'failed' ELSE 'succeeded' END, \
                 error_kind = CASE WHEN id % 100 < 3 THEN 'error' END, \
                 error = CASE WHEN id % 100 < 3 THEN 'boom' END",
            )
            .execute(pool)
            .await?;
            sqlx::query(
                "UPDATE sitq_tasks SET status = 'pending', started_at = NULL, \
                 finished_at = NULL, result = NULL WHERE id % 100 = 3",
            )
            .execute(pool)
            .await?;
            sqlx::query("VACUUM ANALYZE sitq_tasks")
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// The fastest of `runs` calls of `read`.
async fn best_of<F, Fut>(runs: usize, read: F) -> Result<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = sitq::Result<()>>,
{
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        read().await?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// A plain HTTP/1.1 GET of `path`; the whole response.
async fn get(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}
