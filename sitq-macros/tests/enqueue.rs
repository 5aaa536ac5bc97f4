//! `task::enqueue` and `task::with()…enqueue` store the task with its
//! arguments and the right queue, priority, attempts and run time. A backend
//! that records what it is given stands in for a database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sitq::{ConnectOptions, Queue, TaskId, TaskRecord, TaskStatus};
use sitq_core::{
    Backend, ClaimRef, ClaimRequest, ClaimedTask, Completion, Enqueued, NewTask, Signals, UniqueKey,
};

#[sitq::task(queue = "mail", max_attempts = 5)]
async fn send(to: String, queue: u32) -> Result<(), String> {
    let _ = (to, queue);
    Ok(())
}

#[sitq::task]
fn nothing() {}

#[sitq::task(unique, unique_for = "1h")]
async fn export(user: u64) {
    let _ = user;
}

#[derive(Debug, Default)]
struct Recorder {
    tasks: Mutex<Vec<NewTask>>,
    signals: Signals,
}

fn unsupported<T>() -> sitq::Result<T> {
    Err(sitq::Error::Config(
        "the recording backend only enqueues".into(),
    ))
}

#[async_trait]
impl Backend for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn signals(&self) -> &Signals {
        &self.signals
    }
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(10)
    }
    async fn enqueue(&self, tasks: Vec<NewTask>) -> sitq::Result<Vec<TaskId>> {
        let mut stored = self
            .tasks
            .lock()
            .map_err(|_| sitq::Error::Config("poisoned".into()))?;
        let first = stored.len();
        stored.extend(tasks);
        Ok((first..stored.len())
            .map(|i| TaskId(i as i64 + 1))
            .collect())
    }
    async fn claim(&self, _: ClaimRequest<'_>) -> sitq::Result<Vec<ClaimedTask>> {
        unsupported()
    }
    async fn start(&self, _: Vec<ClaimRef>) -> sitq::Result<()> {
        unsupported()
    }
    async fn release(&self, _: Vec<ClaimRef>) -> sitq::Result<u64> {
        unsupported()
    }
    async fn next_run_at(&self, _: &[String]) -> sitq::Result<Option<DateTime<Utc>>> {
        unsupported()
    }
    async fn heartbeat(&self, _: &str, _: &[ClaimRef], _: Duration) -> sitq::Result<Vec<ClaimRef>> {
        unsupported()
    }
    async fn complete(&self, _: Vec<Completion>) -> sitq::Result<Vec<bool>> {
        unsupported()
    }
    async fn recover_expired(&self) -> sitq::Result<u64> {
        unsupported()
    }
    async fn get(&self, _: TaskId) -> sitq::Result<Option<TaskRecord>> {
        unsupported()
    }
    async fn status(&self, _: TaskId) -> sitq::Result<Option<TaskStatus>> {
        unsupported()
    }
    async fn cancel(
        &self,
        _: TaskId,
        _: &sitq_core::CancelRequest,
    ) -> sitq::Result<sitq_core::CancelOutcome> {
        unsupported()
    }
    async fn prune(&self, _: DateTime<Utc>) -> sitq::Result<u64> {
        unsupported()
    }
    async fn close(&self) {}
    async fn cancel_requested(&self, _: &[ClaimRef]) -> sitq::Result<Vec<ClaimRef>> {
        unsupported()
    }
    async fn retry(&self, _: TaskId) -> sitq::Result<()> {
        unsupported()
    }
    async fn failures(&self, _: TaskId) -> sitq::Result<Vec<sitq_core::AttemptFailure>> {
        unsupported()
    }
    async fn enqueue_unique(&self, tasks: Vec<NewTask>) -> sitq::Result<Vec<Enqueued>> {
        let ids = self.enqueue(tasks).await?;
        Ok(ids
            .into_iter()
            .map(|id| Enqueued {
                id,
                duplicate: false,
            })
            .collect())
    }

    async fn register_schedules(
        &self,
        _: Vec<sitq_core::schedule::ScheduleDefinition>,
    ) -> sitq_core::Result<Vec<sitq_core::ScheduleInfo>> {
        Err(sitq_core::Error::Config(
            "this test double has no schedules".into(),
        ))
    }

    async fn fire_tick(
        &self,
        _: sitq_core::schedule::TickFire,
    ) -> sitq_core::Result<Option<TaskId>> {
        Err(sitq_core::Error::Config(
            "this test double has no schedules".into(),
        ))
    }

    async fn schedules(&self) -> sitq_core::Result<Vec<sitq_core::ScheduleInfo>> {
        Ok(Vec::new())
    }
    async fn set_queue_paused(&self, _: &str, _: bool) -> sitq::Result<()> {
        unsupported()
    }
    async fn set_queue_limits(&self, _: &str, _: sitq_core::QueueLimits) -> sitq::Result<()> {
        unsupported()
    }
    async fn queues(&self) -> sitq::Result<Vec<sitq_core::QueueInfo>> {
        unsupported()
    }
}

fn recording_queue() -> (Queue, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let queue = Queue::from_backend(recorder.clone(), ConnectOptions::new());
    (queue, recorder)
}

fn stored(recorder: &Recorder) -> Vec<NewTask> {
    match recorder.tasks.lock() {
        Ok(tasks) => tasks.clone(),
        Err(_) => panic!("recorder lock poisoned"),
    }
}

fn arguments(task: &NewTask) -> sitq::Result<(String, u32)> {
    let args: send = sitq_core::codec::decode(&task.payload, "stored arguments")?;
    Ok((args.to, args.queue))
}

#[tokio::test]
async fn enqueue_stores_the_arguments_with_the_task_defaults() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    let before = Utc::now();
    let handle = send::enqueue(&queue, "a@example.com".into(), 7).await?;
    let after = Utc::now();

    assert_eq!(handle.id(), TaskId(1));
    let [task] = stored(&recorder)
        .try_into()
        .map_err(|tasks: Vec<NewTask>| {
            sitq::Error::Config(format!("expected one task, got {}", tasks.len()))
        })?;
    assert_eq!(task.name, "enqueue::send");
    assert_eq!(task.queue, "mail");
    assert_eq!(task.priority, 0);
    assert_eq!(task.max_attempts, 5);
    assert!(
        before <= task.run_at && task.run_at <= after,
        "{}",
        task.run_at
    );
    assert_eq!(arguments(&task)?, ("a@example.com".to_owned(), 7));
    Ok(())
}

#[tokio::test]
async fn with_overrides_priority_queue_attempts_and_delays() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    let before = Utc::now();
    send::with()
        .priority(-2)
        .queue("urgent")
        .max_attempts(1)
        .delay(Duration::from_secs(60))
        .enqueue(&queue, "b@example.com".into(), 1)
        .await?;

    let task = &stored(&recorder)[0];
    assert_eq!(task.queue, "urgent");
    assert_eq!(task.priority, -2);
    assert_eq!(task.max_attempts, 1);
    let delay = task.run_at - before;
    assert!(
        delay >= chrono::Duration::seconds(60) && delay < chrono::Duration::seconds(70),
        "run_at is {delay} from enqueue"
    );
    assert_eq!(arguments(task)?, ("b@example.com".to_owned(), 1));
    Ok(())
}

#[tokio::test]
async fn run_at_takes_an_instant_in_any_time_zone() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    let Some(at) = chrono::FixedOffset::east_opt(2 * 3600)
        .and_then(|tz| tz.with_ymd_and_hms(2040, 6, 1, 12, 0, 0).single())
    else {
        panic!("a valid instant");
    };
    send::with()
        .run_at(at)
        .enqueue(&queue, "c@example.com".into(), 0)
        .await?;
    let expected = Utc.with_ymd_and_hms(2040, 6, 1, 10, 0, 0).single();
    assert_eq!(Some(stored(&recorder)[0].run_at), expected);
    Ok(())
}

#[tokio::test]
async fn a_task_without_arguments_enqueues_too() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    nothing::enqueue(&queue).await?;
    nothing::with().enqueue(&queue).await?;
    let tasks = stored(&recorder);
    assert_eq!(tasks.len(), 2);
    assert!(
        tasks
            .iter()
            .all(|task| task.name == "enqueue::nothing" && task.queue == "default")
    );
    Ok(())
}

#[tokio::test]
async fn builder_can_be_kept_and_reused() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    let urgent = send::with().priority(9);
    urgent.clone().enqueue(&queue, "x".into(), 1).await?;
    urgent.enqueue(&queue, "y".into(), 2).await?;
    assert!(stored(&recorder).iter().all(|task| task.priority == 9));
    Ok(())
}

#[tokio::test]
async fn with_forwards_an_explicit_unique_key_and_window() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    send::with()
        .unique_key("receipt:7")
        .unique_for(Duration::from_secs(60))
        .enqueue(&queue, "d@example.com".into(), 7)
        .await?;
    send::enqueue(&queue, "e@example.com".into(), 8).await?;
    let tasks = stored(&recorder);
    assert_eq!(
        tasks[0].unique,
        Some(UniqueKey {
            key: "receipt:7".into(),
            window: Some(Duration::from_secs(60)),
        })
    );
    assert_eq!(
        tasks[1].unique, None,
        "a task not declared unique has no key"
    );
    Ok(())
}

#[tokio::test]
async fn a_unique_task_is_keyed_by_its_arguments() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    export::enqueue(&queue, 1).await?;
    export::enqueue(&queue, 1).await?;
    export::enqueue(&queue, 2).await?;
    export::with().unique_key("mine").enqueue(&queue, 2).await?;
    let tasks = stored(&recorder);
    let keys: Vec<UniqueKey> = tasks
        .iter()
        .filter_map(|task| task.unique.clone())
        .collect();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[0], keys[1], "equal arguments, equal keys");
    assert_ne!(keys[0], keys[2], "other arguments, another key");
    assert!(keys[0].key.starts_with("sha256:"), "{}", keys[0].key);
    assert_eq!(
        keys[3].key, "mine",
        "an explicit key wins over the arguments"
    );
    assert!(
        keys.iter()
            .all(|key| key.window == Some(Duration::from_secs(3600))),
        "the task's window applies to every key"
    );
    Ok(())
}

#[tokio::test]
async fn with_forwards_the_sequence_key() -> sitq::Result<()> {
    let (queue, recorder) = recording_queue();
    send::with()
        .sequence("account:42")
        .enqueue(&queue, "s@example.com".into(), 3)
        .await?;
    send::enqueue(&queue, "t@example.com".into(), 4).await?;
    let tasks = stored(&recorder);
    assert_eq!(tasks[0].sequence.as_deref(), Some("account:42"));
    assert_eq!(tasks[1].sequence, None);
    Ok(())
}
