//! A workflow: `cargo run --example etl` (or pass a `postgres://` URL with
//! `--features postgres`).
//!
//! Fetches several pages in parallel, parses each one as soon as its page is
//! in, then aggregates every parsed result in one fan-in task and prints the
//! typed report. The whole graph is enqueued in one transaction; each task
//! receives its dependency's stored result as its first argument, checked
//! at compile time. A second, smaller run shows a fetch that fails for good:
//! the steps after it are cancelled with a reason naming it, and a clean-up
//! step that opted in with `after_finished` runs anyway.

#![allow(clippy::print_stdout)] // an example prints its results

use serde::{Deserialize, Serialize};
use sitq::{Queue, TaskStatus, Worker, Workflow};

/// A fetched page.
#[derive(Serialize, Deserialize, Debug)]
pub struct Page {
    url: String,
    body: String,
}

/// What parsing a page found.
#[derive(Serialize, Deserialize, Debug)]
pub struct Parsed {
    url: String,
    words: usize,
    links: usize,
}

/// The aggregate of every parsed page.
#[derive(Serialize, Deserialize, Debug)]
pub struct Report {
    pages: usize,
    words: usize,
    links: usize,
    largest: String,
}

/// Fetches a page (made up here, so the example needs no network). A URL
/// containing `missing` fails, once: one attempt.
#[sitq::task(max_attempts = 1)]
async fn fetch(url: String) -> Result<Page, String> {
    if url.contains("missing") {
        return Err(format!("GET {url}: 404 Not Found"));
    }
    let n = url.len();
    let body = (0..n)
        .map(|i| {
            if i % 7 == 0 {
                format!("<a href=\"/{i}\">link</a>")
            } else {
                format!("word{i}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Page { url, body })
}

/// Parses one page: its first argument is the `fetch` result.
#[sitq::task]
fn parse(page: Page, min_len: usize) -> Parsed {
    let words = page
        .body
        .split_whitespace()
        .filter(|w| w.len() >= min_len)
        .count();
    let links = page.body.matches("<a ").count();
    Parsed {
        url: page.url,
        words,
        links,
    }
}

/// The fan-in: receives every `parse` result, in the order they were listed.
#[sitq::task]
async fn aggregate(parsed: Vec<Parsed>) -> Report {
    let largest = parsed
        .iter()
        .max_by_key(|p| p.words)
        .map(|p| p.url.clone())
        .unwrap_or_default();
    Report {
        pages: parsed.len(),
        words: parsed.iter().map(|p| p.words).sum(),
        links: parsed.iter().map(|p| p.links).sum(),
        largest,
    }
}

/// A clean-up step: runs once its dependencies finished, whatever happened.
#[sitq::task]
async fn cleanup(run: String) -> String {
    format!("cleaned up after {run}")
}

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let path = std::env::temp_dir().join("sitq-etl-example.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    let queue = Queue::connect(&url).await?;
    let worker = Worker::new(queue.clone()).concurrency(4);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    // fetch ×5 → parse ×5 → aggregate, as one workflow.
    let urls = [
        "/",
        "/about",
        "/blog/2026/workflows",
        "/docs/getting-started",
        "/pricing",
    ];
    let mut flow = Workflow::new("etl");
    let pages: Vec<_> = urls
        .iter()
        .map(|path| fetch::add(&mut flow, format!("https://example.com{path}")))
        .collect();
    let parsed: Vec<_> = pages
        .iter()
        .map(|page| parse::after_result(page).add(&mut flow, 4))
        .collect();
    let report = aggregate::after_result(&parsed).add(&mut flow);
    let run = flow.enqueue(&queue).await?;
    println!(
        "enqueued workflow {} with {} tasks",
        run.id(),
        run.task_ids().len()
    );

    let report: Report = run.handle(&report)?.wait().await?;
    println!("report: {report:?}");
    let info = run.info().await?;
    println!(
        "workflow {} ({}) is {}: {} tasks succeeded",
        info.id,
        info.name,
        info.status(),
        info.count(TaskStatus::Succeeded)
    );

    // A fetch that fails for good: the rest of its branch is cancelled,
    // the clean-up runs anyway.
    let mut flow = Workflow::new("etl-with-a-broken-page");
    let page = fetch::add(&mut flow, "https://example.com/missing".into());
    let parsed = parse::after_result(&page).add(&mut flow, 4);
    let report = aggregate::after_result(&[parsed]).add(&mut flow);
    let done = cleanup::with()
        .after(&report)
        .after_finished()
        .add(&mut flow, "etl-with-a-broken-page".into());
    let run = flow.enqueue(&queue).await?;
    println!("{}", run.handle(&done)?.wait().await?);
    match run.handle(&report)?.wait().await {
        Err(err) => println!("aggregate did not run: {err}"),
        Ok(report) => println!("unexpected report: {report:?}"),
    }
    for task in run.info().await?.tasks {
        println!("  task {} {:<40} {}", task.id, task.name, task.status);
    }

    stop.shutdown().await;
    running
        .await
        .map_err(|err| sitq::Error::Config(format!("worker task: {err}")))??;
    Ok(())
}
