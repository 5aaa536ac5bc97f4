//! Dependencies, typed result passing and workflows through the generated API.
#![deny(warnings)]

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Page {
    pub url: String,
    pub body: String,
}

#[sitq::task]
async fn fetch(url: String) -> Page {
    Page { body: String::new(), url }
}

#[sitq::task]
async fn parse(page: Page, lang: String) -> usize {
    page.body.len() + lang.len()
}

#[sitq::task]
fn total(counts: Vec<usize>) -> usize {
    counts.iter().sum()
}

#[sitq::task]
async fn notify(ctx: sitq::Context, count: usize, who: String) -> Result<(), String> {
    let _ = (ctx.id(), count, who);
    Ok(())
}

#[sitq::task]
async fn cleanup() {}

async fn chained(queue: &sitq::Queue) -> sitq::Result<usize> {
    let page = fetch::enqueue(queue, "https://example.com".into()).await?;
    let parsed = parse::after_result(&page).enqueue(queue, "en".into()).await?;
    let parsed_later = parse::after_result(&page)
        .priority(3)
        .after(&parsed)
        .enqueue(queue, "de".into())
        .await?;
    let sum = total::after_result(&[parsed.clone(), parsed_later]).enqueue(queue).await?;
    notify::after_result(&sum).enqueue(queue, "ops".into()).await?;
    cleanup::with().after_all([&page]).after(&sum).after_finished().enqueue(queue).await?;
    sum.wait().await
}

async fn workflow(queue: &sitq::Queue, urls: Vec<String>) -> sitq::Result<usize> {
    let mut flow = sitq::Workflow::new("etl");
    let pages: Vec<sitq::Node<Page>> = urls.into_iter().map(|url| fetch::add(&mut flow, url)).collect();
    let counts: Vec<sitq::Node<usize>> = pages
        .iter()
        .map(|page| parse::after_result(page).add(&mut flow, "en".into()))
        .collect();
    let sum = total::after_result(&counts).add(&mut flow);
    cleanup::with().after(&sum).after_finished().add(&mut flow);
    let run = flow.enqueue(queue).await?;
    run.wait().await?;
    run.handle(&sum)?.wait().await
}

fn main() {
    let _ = (chained, workflow);
}
