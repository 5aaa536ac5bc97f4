//! `/workflows/{id}`: a workflow's graph as SVG (a column per depth, an
//! arrow per dependency, a box per task coloured by state and linking to
//! it) and its tasks as a table; `/workflows/find` opens one by id.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use sitq_core::{TaskId, TaskStatus};

use super::Ctx;
use super::layout::{self, Nav};
use crate::error::WebError;
use crate::filter::workflow_id;
use crate::views::{WorkflowTaskView, WorkflowView};

const NODE_W: f64 = 170.0;
const NODE_H: f64 = 38.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 14.0;
const PAD: f64 = 10.0;

/// `?id=`.
#[derive(Deserialize)]
pub struct Find {
    id: Option<String>,
}

/// The find form, or a redirect to the workflow it names.
pub async fn find(ctx: Ctx, Query(find): Query<Find>) -> Response {
    match find
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => match workflow_id(id) {
            Ok(id) => Redirect::to(&ctx.link(&format!("/workflows/{}", id.0))).into_response(),
            Err(err) => ctx.error(err),
        },
        None => {
            let body = html! {
                p.muted { "A workflow is reached from any of its tasks, or by its id." }
                form.filters method="get" action=(ctx.link("/workflows/find")) {
                    label { "Workflow id" input type="text" name="id" size="10" inputmode="numeric"; }
                    button type="submit" { "Open" }
                }
            };
            ctx.respond("Workflows", Nav::Workflows, Ok(body))
        }
    }
}

/// The workflow page.
pub async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    let body = async {
        let id = workflow_id(&id)?;
        let workflow = WorkflowView::from(ctx.state.queue.workflow(id).await?);
        Ok::<_, WebError>((
            format!("Workflow {} · {}", workflow.id.0, workflow.name),
            render(&ctx, &workflow),
        ))
    }
    .await;
    match body {
        Ok((title, body)) => ctx.respond(&title, Nav::Workflows, Ok(body)),
        Err(err) => ctx.error(err),
    }
}

fn render(ctx: &Ctx, workflow: &WorkflowView) -> Markup {
    html! {
        p {
            (layout::status(workflow.status)) " "
            @for status in TaskStatus::ALL {
                @let count = workflow.tasks.iter().filter(|task| task.status == status).count();
                @if count > 0 { span.muted { (count) " " (status.as_str()) " · " } }
            }
            "created " (layout::ago(workflow.created_at, chrono::Utc::now()))
        }
        div.chart { (graph(ctx, &workflow.tasks)) }
        h2 { "Tasks" }
        table {
            thead { tr { th.num { "Id" } th { "Task" } th { "Status" } th { "Depends on" } } }
            tbody {
                @for task in &workflow.tasks {
                    tr {
                        td.num { a href=(ctx.link(&format!("/tasks/{}", task.id))) { (task.id) } }
                        td { (task.name) @if task.id == workflow.final_task { " " span.muted { "(final)" } } }
                        td { (layout::status(task.status)) }
                        td { (task.dependencies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
    }
}

/// Each task's column (its longest chain of dependencies inside the
/// workflow) and row (its place in that column).
fn layout_nodes(tasks: &[WorkflowTaskView]) -> HashMap<TaskId, (usize, usize)> {
    let mut depth: HashMap<TaskId, usize> = HashMap::new();
    // Tasks are in id order and a task only depends on earlier ones.
    for task in tasks {
        let d = task
            .dependencies
            .iter()
            .filter_map(|dep| depth.get(dep))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(task.id, d);
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut placed = HashMap::new();
    for task in tasks {
        let column = depth.get(&task.id).copied().unwrap_or(0);
        let row = rows.entry(column).or_insert(0);
        placed.insert(task.id, (column, *row));
        *row += 1;
    }
    placed
}

fn colour(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Succeeded => "#1f8a4c",
        TaskStatus::Failed => "#c8372d",
        TaskStatus::Running => "#2b6cb0",
        TaskStatus::Pending => "#b7791f",
        _ => "#718096",
    }
}

fn graph(ctx: &Ctx, tasks: &[WorkflowTaskView]) -> Markup {
    let placed = layout_nodes(tasks);
    let columns = placed.values().map(|(c, _)| c + 1).max().unwrap_or(1);
    let rows = placed.values().map(|(_, r)| r + 1).max().unwrap_or(1);
    let width = PAD * 2.0 + columns as f64 * NODE_W + (columns - 1) as f64 * GAP_X;
    let height = PAD * 2.0 + rows as f64 * NODE_H + (rows - 1) as f64 * GAP_Y;
    let at = |id: &TaskId| {
        placed.get(id).map(|(c, r)| {
            (
                PAD + *c as f64 * (NODE_W + GAP_X),
                PAD + *r as f64 * (NODE_H + GAP_Y),
            )
        })
    };
    html! {
        svg viewBox=(format!("0 0 {width:.0} {height:.0}")) style=(format!("max-width:{width:.0}px")) role="img" aria-label="workflow graph" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#9aa5b4" {}
                }
            }
            @for task in tasks {
                @for dep in &task.dependencies {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (at(dep), at(&task.id)) {
                        @let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2.0, x2, y2 + NODE_H / 2.0);
                        path d=(format!("M {sx:.1} {sy:.1} C {:.1} {sy:.1}, {:.1} {ey:.1}, {ex:.1} {ey:.1}", sx + GAP_X / 2.0, ex - GAP_X / 2.0))
                            fill="none" stroke="#9aa5b4" stroke-width="1.4" marker-end="url(#arrow)" {}
                    }
                }
            }
            @for task in tasks {
                @if let Some((x, y)) = at(&task.id) {
                    a href=(ctx.link(&format!("/tasks/{}", task.id))) {
                        title { (task.name) " (task " (task.id) ", " (task.status.as_str()) ")" }
                        rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(NODE_W) height=(NODE_H) rx="5"
                            fill=(colour(task.status)) {}
                        text x=(format!("{:.1}", x + 8.0)) y=(format!("{:.1}", y + 15.0)) font-size="11" fill="#fff" font-weight="600" {
                            (short(&task.name, 24))
                        }
                        text x=(format!("{:.1}", x + 8.0)) y=(format!("{:.1}", y + 30.0)) font-size="10" fill="#fff" {
                            "#" (task.id) " " (task.status.as_str())
                        }
                    }
                }
            }
        }
    }
}

/// The last `max` characters of a long name (the function, not the module
/// path, is what tells tasks apart).
fn short(name: &str, max: usize) -> String {
    let count = name.chars().count();
    if count <= max {
        return name.to_owned();
    }
    let tail: String = name.chars().skip(count - (max - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: i64, dependencies: &[i64]) -> WorkflowTaskView {
        WorkflowTaskView {
            id: TaskId(id),
            name: format!("t{id}"),
            status: TaskStatus::Pending,
            dependencies: dependencies.iter().copied().map(TaskId).collect(),
        }
    }

    #[test]
    fn columns_follow_the_longest_chain() {
        // 1 -> 2 -> 4, 1 -> 3 -> 4, 5 alone.
        let tasks = [
            task(1, &[]),
            task(2, &[1]),
            task(3, &[1]),
            task(4, &[2, 3]),
            task(5, &[]),
        ];
        let placed = layout_nodes(&tasks);
        assert_eq!(placed[&TaskId(1)], (0, 0));
        assert_eq!(placed[&TaskId(2)], (1, 0));
        assert_eq!(placed[&TaskId(3)], (1, 1));
        assert_eq!(placed[&TaskId(4)], (2, 0));
        assert_eq!(placed[&TaskId(5)], (0, 1));
        assert_eq!(
            short("app::jobs::reports::monthly_digest", 10),
            "…ly_digest"
        );
    }
}
