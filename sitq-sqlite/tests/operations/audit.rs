//! The audit log: order, paging, audited actions.

use super::*;

#[tokio::test]
async fn the_audit_log_is_newest_first_and_pages_by_id() {
    let queue = queue().await;
    let backend = backend(&queue);
    assert!(backend.audit_log(10, None).await.expect("log").is_empty());
    let before = Utc::now();
    for (action, detail) in [
        ("pause", None),
        ("retry", Some("was failed")),
        ("purge", Some("older than 7d")),
    ] {
        backend
            .record_audit(&NewAuditEntry {
                actor: "alice".into(),
                action: action.into(),
                target: format!("target of {action}"),
                detail: detail.map(str::to_owned),
            })
            .await
            .expect("record");
    }
    let log = backend.audit_log(10, None).await.expect("log");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["purge", "retry", "pause"]);
    assert!(log.windows(2).all(|w| w[0].id > w[1].id));
    assert!(
        log.iter()
            .all(|e| e.actor == "alice" && e.at >= before - chrono::Duration::seconds(1))
    );
    assert_eq!(log[2].detail, None);
    assert_eq!(log[2].target, "target of pause");
    assert_eq!(log[0].detail.as_deref(), Some("older than 7d"));

    let first_page = backend.audit_log(2, None).await.expect("page");
    assert_eq!(first_page, log[..2].to_vec());
    let next = backend
        .audit_log(2, Some(first_page[1].id))
        .await
        .expect("next page");
    assert_eq!(next, log[2..].to_vec());
    assert!(
        backend
            .audit_log(2, Some(log[2].id))
            .await
            .expect("past the end")
            .is_empty()
    );
    assert!(backend.audit_log(0, None).await.expect("none").is_empty());

    // Audited admin actions write the same log.
    queue
        .audited("bob")
        .pause("mail")
        .await
        .expect("audited pause");
    let newest = &backend.audit_log(1, None).await.expect("log")[0];
    assert_eq!(
        (newest.actor.as_str(), newest.action.as_str()),
        ("bob", "pause")
    );
}
