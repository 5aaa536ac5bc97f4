//! The JSON API under `/api`: the pages' reads and actions, and
//! `POST /api/tasks` to enqueue a task by name from any language.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sitq_core::inspect::parse_duration;
use sitq_core::{
    ActivityBucket, AuditEntry, CancelOutcome, EnqueueOptions, Stats, TaskDetail, TaskId,
    TaskSummary, WorkerInfo,
};

use crate::Shared;
use crate::error::{ApiError, WebError};
use crate::filter::{TaskQuery, task_id, workflow_id};
use crate::views::{QueueView, ScheduleView, TaskPage, WorkflowView};

type Reply<T> = Result<Json<T>, ApiError>;

/// `GET /api/stats`: counts by queue, name and status, finishes over the
/// last minute and hour, failed attempts.
pub async fn stats(state: Shared) -> Reply<Stats> {
    Ok(Json(state.queue.stats().await?))
}

/// `?window=1h&bucket=1m` (the defaults).
#[derive(Deserialize)]
pub struct ActivityQuery {
    window: Option<String>,
    bucket: Option<String>,
}

/// `GET /api/activity`: finishes, failed attempts and mean wait per bucket.
pub async fn activity(
    state: Shared,
    Query(query): Query<ActivityQuery>,
) -> Reply<Vec<ActivityBucket>> {
    let duration = |value: Option<&str>, default: u64, what: &str| match value {
        None => Ok(std::time::Duration::from_secs(default)),
        Some(text) => parse_duration(text)
            .ok_or_else(|| WebError::bad_request(format!("bad {what} {text:?}: e.g. 1h, 30m, 1d"))),
    };
    let window = duration(query.window.as_deref(), 3600, "window")?;
    let bucket = duration(query.bucket.as_deref(), 60, "bucket")?;
    Ok(Json(state.queue.activity(window, bucket).await?))
}

/// A page of the task list.
#[derive(Serialize)]
pub struct TaskList {
    /// The tasks, newest first.
    tasks: Vec<TaskSummary>,
    /// The `before` of the next page, when this one is full.
    next_before: Option<TaskId>,
}

/// `GET /api/tasks?status=&queue=&name=&since=&before=&limit=`.
pub async fn tasks(state: Shared, Query(query): Query<TaskQuery>) -> Reply<TaskList> {
    let filter = query.filter()?;
    let tasks = state.queue.tasks(&filter).await?;
    let next_before = (tasks.len() == filter.limit)
        .then(|| tasks.last().map(|task| task.id))
        .flatten();
    Ok(Json(TaskList { tasks, next_before }))
}

/// `GET /api/tasks/{id}`: the record, arguments and result as JSON, every
/// attempt, the workflow, dependencies and dependents.
pub async fn task(state: Shared, Path(id): Path<String>) -> Reply<TaskPage> {
    let id = task_id(&id)?;
    let record = state.queue.get(id).await?;
    let attempts = state.queue.attempts(id).await?;
    let links = state.queue.links(id).await?;
    Ok(Json(TaskPage {
        detail: TaskDetail::new(&record, attempts),
        links,
    }))
}

/// `POST /api/tasks`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    name: String,
    /// An object (by argument name) or an array (in order); `{}` by default.
    #[serde(default)]
    args: Option<Value>,
    queue: Option<String>,
    priority: Option<i32>,
    /// Seconds, or a duration like `"30s"`, `"5m"`.
    delay: Option<Value>,
    max_attempts: Option<u32>,
}

/// `POST /api/tasks`: enqueues a task by name; 201 with its id, and a
/// warning when no live worker runs that name on that queue.
pub async fn enqueue(
    state: Shared,
    body: Result<Json<EnqueueRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    writable(&state)?;
    let Json(request) = body.map_err(|rejection| WebError::bad_request(rejection.body_text()))?;
    if request.name.trim().is_empty() {
        return Err(WebError::bad_request("the task name is empty").into());
    }
    let mut options = EnqueueOptions::new();
    if let Some(queue) = &request.queue {
        options = options.queue(queue.clone());
    }
    if let Some(priority) = request.priority {
        options = options.priority(priority);
    }
    if let Some(delay) = &request.delay {
        let parsed = match delay {
            Value::Number(seconds) => seconds.as_u64().map(std::time::Duration::from_secs),
            Value::String(text) => parse_duration(text),
            _ => None,
        };
        options = options.delay(parsed.ok_or_else(|| {
            WebError::bad_request(format!(
                "bad delay {delay}: whole seconds (30) or a duration (\"30s\", \"5m\", \"1h\")"
            ))
        })?);
    }
    if let Some(max_attempts) = request.max_attempts {
        options = options.max_attempts(max_attempts);
    }
    let args = request.args.unwrap_or_else(|| json!({}));
    let id = state
        .queue
        .audited(&state.actor)
        .enqueue_json(&request.name, &args, options)
        .await?;
    let queue = request.queue.as_deref().unwrap_or("default");
    let mut body = json!({ "id": id });
    if let Ok(workers) = state.queue.workers().await
        && !workers
            .iter()
            .any(|worker| worker.runs(queue, &request.name))
    {
        body["warning"] = json!(format!(
            "no live worker runs {} on queue {queue}: the task waits until one does",
            request.name
        ));
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// `POST /api/tasks/{id}/retry`: a failed or cancelled task runs again.
pub async fn retry(state: Shared, Path(id): Path<String>) -> Reply<Value> {
    writable(&state)?;
    let id = task_id(&id)?;
    state.queue.audited(&state.actor).retry(id).await?;
    Ok(Json(json!({ "id": id, "status": "pending" })))
}

/// `POST /api/tasks/{id}/cancel`'s optional body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    reason: Option<String>,
}

/// `POST /api/tasks/{id}/cancel` with an optional `{"reason": "…"}`.
pub async fn cancel(
    state: Shared,
    Path(id): Path<String>,
    body: Option<Json<CancelRequest>>,
) -> Reply<Value> {
    writable(&state)?;
    let id = task_id(&id)?;
    let reason = body.and_then(|Json(body)| body.reason);
    let outcome = state.queue.audited(&state.actor).cancel(id, reason).await?;
    Ok(Json(json!({ "id": id, "outcome": outcome_text(outcome) })))
}

/// What a cancel did, as the API and the pages say it.
pub fn outcome_text(outcome: CancelOutcome) -> String {
    match outcome {
        CancelOutcome::Cancelled => "cancelled".to_owned(),
        CancelOutcome::Requested => "requested".to_owned(),
        CancelOutcome::AlreadyFinished(status) => format!("already {status}"),
        _ => "unknown".to_owned(),
    }
}

/// `DELETE /api/tasks/{id}`: a finished task nothing waits for.
pub async fn delete(state: Shared, Path(id): Path<String>) -> Reply<Value> {
    writable(&state)?;
    let id = task_id(&id)?;
    state.queue.audited(&state.actor).delete(id).await?;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// `GET /api/queues`.
pub async fn queues(state: Shared) -> Reply<Vec<QueueView>> {
    let queues = state.queue.queues().await?;
    Ok(Json(queues.into_iter().map(QueueView::from).collect()))
}

/// `POST /api/queues/{name}/pause`.
pub async fn pause(state: Shared, Path(name): Path<String>) -> Reply<Value> {
    writable(&state)?;
    state.queue.audited(&state.actor).pause(&name).await?;
    Ok(Json(json!({ "queue": name, "paused": true })))
}

/// `POST /api/queues/{name}/resume`.
pub async fn resume(state: Shared, Path(name): Path<String>) -> Reply<Value> {
    writable(&state)?;
    state.queue.audited(&state.actor).resume(&name).await?;
    Ok(Json(json!({ "queue": name, "paused": false })))
}

/// `GET /api/workers`: live workers.
pub async fn workers(state: Shared) -> Reply<Vec<WorkerInfo>> {
    Ok(Json(state.queue.workers().await?))
}

/// `GET /api/schedules`.
pub async fn schedules(state: Shared) -> Reply<Vec<ScheduleView>> {
    let schedules = state.queue.schedules().await?;
    Ok(Json(
        schedules.into_iter().map(ScheduleView::from).collect(),
    ))
}

/// `GET /api/workflows/{id}`.
pub async fn workflow(state: Shared, Path(id): Path<String>) -> Reply<WorkflowView> {
    let id = workflow_id(&id)?;
    Ok(Json(WorkflowView::from(state.queue.workflow(id).await?)))
}

/// `?limit=&before=` for the audit log.
#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
    before: Option<i64>,
}

/// `GET /api/audit`: admin actions, newest first.
pub async fn audit(state: Shared, Query(query): Query<AuditQuery>) -> Reply<Vec<AuditEntry>> {
    let limit = query.limit.unwrap_or(100).min(1000);
    Ok(Json(state.queue.audit_log(limit, query.before).await?))
}

/// Anything else under `/api`.
pub async fn not_found() -> ApiError {
    ApiError(WebError::not_found(
        "no such API endpoint (see the README's HTTP API section)",
    ))
}

fn writable(state: &Shared) -> Result<(), WebError> {
    if state.read_only {
        Err(WebError::read_only())
    } else {
        Ok(())
    }
}
