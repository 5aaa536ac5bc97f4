//! Conformance cases for keeping a queue healthy: purging finished tasks
//! by state and age, and the diagnosis the admin tool's `doctor` prints.

use std::time::Duration;

use super::operations::{LIVE, claim, complete};
use super::tasks::{Add, Fail, unique};
use super::{Harness, eventually, open};
use crate::{Error, FailureKind, Outcome, Task, TaskFailure, TaskStatus};

/// Purge deletes finished tasks by state and age, never unfinished ones.
pub async fn ops_purge_by_state_and_age(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let admin = queue.audited("ops");
    let done = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let claimed = claim(&queue, "w-purge", Add::NAME, LIVE).await;
    complete(
        &queue,
        &claimed[0],
        Outcome::Succeeded(crate::codec::encode(&2i64, "r").expect("encode")),
    )
    .await;
    let failed = queue
        .enqueue(Fail {
            message: unique("purge"),
        })
        .await
        .expect("enqueue");
    let claimed = claim(&queue, "w-purge", Fail::NAME, LIVE).await;
    complete(
        &queue,
        &claimed[0],
        Outcome::Failed(TaskFailure::new(FailureKind::Error, "no")),
    )
    .await;
    let pending = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");

    assert!(matches!(
        admin.purge(Duration::ZERO, &[TaskStatus::Pending]).await,
        Err(Error::Config(_))
    ));
    assert_eq!(
        admin
            .purge(Duration::from_secs(3600), &[])
            .await
            .expect("purge"),
        0,
        "nothing finished an hour ago"
    );
    // Finished "before now": wait until the database's clock has passed them.
    eventually("the failed task to be purgeable", || async {
        let deleted = admin
            .purge(Duration::ZERO, &[TaskStatus::Failed])
            .await
            .expect("purge");
        (deleted == 1).then_some(())
    })
    .await;
    assert!(matches!(
        queue.get(failed.id()).await,
        Err(Error::NotFound(_))
    ));
    assert!(
        queue.failures(failed.id()).await.is_err(),
        "its history went with it"
    );
    assert_eq!(
        queue.status(done.id()).await.expect("kept"),
        TaskStatus::Succeeded
    );
    eventually("the succeeded task to be purgeable", || async {
        (admin.purge(Duration::ZERO, &[]).await.expect("purge") == 1).then_some(())
    })
    .await;
    assert!(matches!(
        queue.get(done.id()).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        queue.status(pending.id()).await.expect("kept"),
        TaskStatus::Pending
    );
    let log = queue.audit_log(10, None).await.expect("audit log");
    assert!(log.iter().all(|e| e.action == "purge" && e.actor == "ops"));
}

/// Diagnosis: where the database is, its schema is current, expired leases
/// and oversized rows are found.
pub async fn ops_diagnose_finds_expired_leases_and_large_rows(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let large = queue
        .enqueue(Fail {
            message: "z".repeat(4000),
        })
        .await
        .expect("enqueue");
    queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let lapsed = claim(&queue, "w-gone", Add::NAME, Duration::from_millis(1)).await;
    assert_eq!(lapsed.len(), 1);

    let diagnosis = eventually("the claim's lease to expire", || async {
        let diagnosis = queue.backend().diagnose(1000).await.expect("diagnose");
        (diagnosis.expired_leases == 1).then_some(diagnosis)
    })
    .await;
    assert!(!diagnosis.location.is_empty());
    assert!(
        !diagnosis.location.contains("password"),
        "no secrets: {}",
        diagnosis.location
    );
    assert_eq!(
        diagnosis.schema_version, diagnosis.expected_schema_version,
        "migrated to this build"
    );
    assert_eq!(diagnosis.oversized.len(), 1, "{:?}", diagnosis.oversized);
    assert_eq!(diagnosis.oversized[0].id, large.id());
    assert!(diagnosis.oversized[0].payload_bytes > 4000);
    assert!(!diagnosis.checks.is_empty(), "the backend's own checks");
    let clean = queue.diagnose().await.expect("diagnose");
    assert!(
        clean.oversized.is_empty(),
        "nothing is over the payload limit"
    );
}
