//! `diagnose`: oversized rows, expired leases, the file and its settings.

use super::*;

#[tokio::test]
async fn diagnose_finds_oversized_rows_and_expired_leases() {
    let queue = queue().await;
    let backend = backend(&queue);
    let big = NewTask {
        payload: vec![7; 3000],
        ..task("a")
    };
    let bigger = NewTask {
        payload: vec![7; 5000],
        ..task("b")
    };
    let ids = backend
        .enqueue(vec![task("a"), big, bigger, task("c")])
        .await
        .expect("enqueue");
    // c succeeds with a large result.
    let claimed = claim_named(&queue, "c", common::LEASE).await;
    finish(&queue, &claimed, Outcome::Succeeded(vec![1; 4000])).await;

    let diagnosis = backend.diagnose(2000).await.expect("diagnose");
    assert_eq!(diagnosis.location, "sqlite::memory:");
    assert_eq!(diagnosis.schema_version, 9);
    assert_eq!(diagnosis.expected_schema_version, 9);
    assert_eq!(diagnosis.expired_leases, 0);
    let oversized: Vec<(TaskId, u64, u64)> = diagnosis
        .oversized
        .iter()
        .map(|o| (o.id, o.payload_bytes, o.result_bytes))
        .collect();
    assert_eq!(
        oversized,
        vec![(ids[2], 5000, 0), (ids[3], 1, 4000), (ids[1], 3000, 0)],
        "largest first; the small one left out"
    );
    assert_eq!(diagnosis.oversized[0].name, "b");
    let journal = diagnosis
        .checks
        .iter()
        .find(|c| c.name == "journal mode")
        .expect("a journal mode check");
    assert_eq!(
        journal.level,
        CheckLevel::Warn,
        "memory: {}",
        journal.detail
    );

    // A lease that ran out and was not recovered yet.
    claim_named(&queue, "a", Duration::ZERO).await;
    eventually("the zero lease to be counted as expired", || async {
        backend
            .diagnose(2000)
            .await
            .expect("diagnose")
            .expired_leases
            == 1
    })
    .await;
    assert_eq!(backend.recover_expired().await.expect("recover"), 1);
    assert_eq!(
        backend
            .diagnose(2000)
            .await
            .expect("diagnose")
            .expired_leases,
        0
    );

    // At most 20 oversized rows.
    let many: Vec<NewTask> = (0..25)
        .map(|_| NewTask {
            payload: vec![1; 100],
            ..task("a")
        })
        .collect();
    backend.enqueue(many).await.expect("enqueue");
    assert_eq!(
        backend
            .diagnose(50)
            .await
            .expect("diagnose")
            .oversized
            .len(),
        20
    );
}

#[tokio::test]
async fn diagnose_checks_the_file_its_mode_and_its_settings() {
    let db = TempDb::new("doctor");
    let backend = db.connect().await;
    backend.enqueue(vec![task("a")]).await.expect("enqueue");
    let canonical = std::fs::canonicalize(&db.path).expect("canonical");
    let diagnosis = backend.diagnose(1 << 20).await.expect("diagnose");
    assert_eq!(
        diagnosis.location,
        format!("sqlite://{}", canonical.display())
    );
    let check = |name: &str| {
        diagnosis
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("a {name} check in {:?}", diagnosis.checks))
            .clone()
    };
    assert_eq!(check("journal mode").level, CheckLevel::Ok);
    assert!(check("journal mode").detail.starts_with("wal"));
    assert_eq!(check("synchronous").level, CheckLevel::Ok);
    assert!(check("synchronous").detail.starts_with("NORMAL"));
    assert_eq!(check("file permissions").level, CheckLevel::Ok);
    assert!(check("file permissions").detail.contains("0600"));
    assert_eq!(check("size").level, CheckLevel::Ok);
    assert!(check("size").detail.contains("free"));
    check("directory permissions");

    // A world-readable file is a warning that says what to do.
    std::fs::set_permissions(&db.path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let diagnosis = backend.diagnose(1 << 20).await.expect("diagnose");
    let permissions = diagnosis
        .checks
        .iter()
        .find(|c| c.name == "file permissions")
        .expect("a permissions check");
    assert_eq!(permissions.level, CheckLevel::Warn);
    assert!(
        permissions
            .detail
            .contains(&format!("chmod 600 {}", db.path.display())),
        "{}",
        permissions.detail
    );
    backend.close().await;

    // synchronous=FULL says what it buys.
    let full = SqliteBackend::connect(
        &format!("{}?synchronous=FULL", db.url()),
        ConnectOptions::new(),
    )
    .await
    .expect("connect FULL");
    let diagnosis = full.diagnose(1 << 20).await.expect("diagnose");
    let synchronous = diagnosis
        .checks
        .iter()
        .find(|c| c.name == "synchronous")
        .expect("a synchronous check");
    assert!(
        synchronous.detail.starts_with("FULL"),
        "{}",
        synchronous.detail
    );
    full.close().await;
}
