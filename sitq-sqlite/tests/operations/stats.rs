//! Statistics: counts, oldest due task, time windows.

use super::*;

#[tokio::test]
async fn stats_count_by_queue_name_and_status_with_time_windows() {
    let queue = queue().await;
    let backend = backend(&queue);
    let now = Utc::now();
    let due_early = now - chrono::Duration::seconds(30);
    let ids = backend
        .enqueue(vec![
            common::task_at("a", 0, due_early),
            common::task_at("a", 0, now - chrono::Duration::seconds(5)),
            common::task_at("a", 0, now + chrono::Duration::hours(1)),
            NewTask {
                run_at: now + chrono::Duration::hours(1),
                ..on("later", "c")
            },
            on("mail", "b"),
            on("mail", "b"),
            on("mail", "b"),
            on("mail", "d"),
        ])
        .await
        .expect("enqueue");
    // Three successes of b: now, ten minutes ago, two hours ago.
    for _ in 0..3 {
        let claimed = claim_named(&queue, "b", common::LEASE).await;
        finish(&queue, &claimed, Outcome::Succeeded(vec![0xc0])).await;
    }
    sql(
        &queue,
        "UPDATE sitq_tasks SET finished_at = finished_at - ?1 WHERE id = ?2",
        vec![10 * MINUTE, ids[5].0],
    )
    .await;
    sql(
        &queue,
        "UPDATE sitq_tasks SET finished_at = finished_at - ?1 WHERE id = ?2",
        vec![120 * MINUTE, ids[6].0],
    )
    .await;
    // d fails twice (retried, then for good); one failure was 30 minutes ago.
    let claimed = claim_named(&queue, "d", common::LEASE).await;
    finish(
        &queue,
        &claimed,
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "first"),
            delay: Duration::ZERO,
        },
    )
    .await;
    sql(
        &queue,
        "UPDATE sitq_failures SET failed_at = failed_at - ?1",
        vec![30 * MINUTE],
    )
    .await;
    let claimed = claim_named(&queue, "d", common::LEASE).await;
    finish(&queue, &claimed, failed("second")).await;
    // An old failure outside the hour counts nowhere.
    sql(
        &queue,
        "INSERT INTO sitq_failures (task_id, attempt, kind, message, failed_at) \
         VALUES (?1, 9, 'error', 'old', ?2)",
        vec![ids[7].0, now.timestamp_micros() - 90 * MINUTE],
    )
    .await;

    let stats = backend.stats().await.expect("stats");
    assert!(stats.now >= now);
    let count = |queue_name: &str, name: &str, status: TaskStatus| {
        stats
            .counts
            .iter()
            .find(|c| c.queue == queue_name && c.name == name && c.status == status)
            .unwrap_or_else(|| panic!("a count for {queue_name}/{name}/{status}"))
    };
    let a = count("default", "a", TaskStatus::Pending);
    assert_eq!(a.count, 3);
    assert_eq!(
        micros(a.oldest_due),
        Some(due_early.timestamp_micros()),
        "the earliest due run_at; the future one does not count"
    );
    let c = count("later", "c", TaskStatus::Pending);
    assert_eq!((c.count, c.oldest_due), (1, None), "nothing due yet");
    let b = count("mail", "b", TaskStatus::Succeeded);
    assert_eq!((b.count, b.oldest_due), (3, None));
    assert_eq!(count("mail", "d", TaskStatus::Failed).count, 1);
    assert_eq!(stats.counts.len(), 4, "{:?}", stats.counts);

    let finished: Vec<_> = stats
        .finished
        .iter()
        .map(|f| (f.queue.as_str(), f.status, f.last_minute, f.last_hour))
        .collect();
    assert_eq!(
        finished,
        vec![
            ("mail", TaskStatus::Failed, 1, 1),
            ("mail", TaskStatus::Succeeded, 1, 2),
        ]
    );
    assert_eq!(stats.failed_attempts_last_minute, 1);
    assert_eq!(stats.failed_attempts_last_hour, 2);

    // An empty database has nothing to count.
    let empty = self::queue().await;
    let stats = backend_stats(&empty).await;
    assert!(stats.counts.is_empty() && stats.finished.is_empty());
    assert_eq!(
        (
            stats.failed_attempts_last_minute,
            stats.failed_attempts_last_hour
        ),
        (0, 0)
    );
}

async fn backend_stats(queue: &Queue) -> sitq_core::Stats {
    queue.stats().await.expect("stats")
}
