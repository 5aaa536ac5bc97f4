//! Every call is one statement in one round trip: its `NOTIFY` travels
//! inside the statement, and a busy pooled connection is not pinged first.

mod support;

use std::time::Duration;

use sitq_core::{Backend, ClaimRequest, Completion, ConnectOptions, Outcome};
use sitq_postgres::PostgresBackend;
use support::wire::{CountingProxy, Counts};
use support::{TestDb, request, task};

/// Calls measured per operation, after one that prepares its statement.
const CALLS: u64 = 5;

/// Runs `$call` once to warm up (sqlx prepares a statement on its first use
/// on a connection), then [`CALLS`] times, and checks what those cost.
macro_rules! costs {
    ($proxy:expr, $what:literal, $call:expr) => {{
        $call;
        let before = $proxy.counts();
        for _ in 0..CALLS {
            $call;
        }
        let cost: Counts = $proxy.counts() - before;
        eprintln!("{:>16}: {cost:?} for {CALLS} calls", $what);
        assert_eq!(
            (cost.statements, cost.statement_round_trips, cost.prepares),
            (CALLS, CALLS, 0),
            "{}: one statement in one round trip per call: {cost:?}",
            $what
        );
        // sqlx pings a connection when it goes back to the pool, after the
        // call returned; a ping before each call as well would make 2 per call.
        assert!(
            cost.pings <= CALLS + 1,
            "{}: no ping before the call: {cost:?}",
            $what
        );
    }};
}

#[tokio::test]
async fn each_call_is_one_statement_in_one_round_trip() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let proxy = CountingProxy::to(&db.url).await;
    // One pooled connection, so each statement is prepared once.
    let backend = PostgresBackend::connect(&proxy.url(), ConnectOptions::new().max_connections(1))
        .await
        .expect("connect through the proxy");

    costs!(proxy, "enqueue 1", {
        backend.enqueue(vec![task("t")]).await.expect("enqueue");
    });
    costs!(proxy, "enqueue 100", {
        backend
            .enqueue(vec![task("t"); 100])
            .await
            .expect("enqueue");
    });
    let mut claimed = Vec::new();
    costs!(proxy, "claim", {
        let batch = backend
            .claim(ClaimRequest {
                start: 1,
                ..request("w", 4)
            })
            .await
            .expect("claim");
        claimed.extend(batch);
    });
    let claims: Vec<_> = claimed.iter().map(|claimed| claimed.claim_ref()).collect();
    costs!(proxy, "start", {
        backend.start(claims[..4].to_vec()).await.expect("start");
    });
    costs!(proxy, "release", {
        backend
            .release(claims[4..8].to_vec())
            .await
            .expect("release");
    });
    costs!(proxy, "heartbeat", {
        backend
            .heartbeat("w", &claims, Duration::from_secs(60))
            .await
            .expect("heartbeat");
    });
    let mut completions = claims[8..].iter().map(|claim| Completion {
        claim: *claim,
        outcome: Outcome::Succeeded(Vec::new()),
    });
    costs!(proxy, "complete", {
        let completion = completions.next().expect("claims enough");
        backend.complete(vec![completion]).await.expect("complete");
    });
    costs!(proxy, "recover_expired", {
        backend.recover_expired().await.expect("recover");
    });
    let ids: Vec<_> = claimed.iter().map(|claimed| claimed.id).collect();
    costs!(proxy, "finished", {
        backend.finished(&ids).await.expect("finished");
    });
    costs!(proxy, "cancel", {
        backend
            .cancel(ids[0], &sitq_core::CancelRequest::new())
            .await
            .expect("cancel");
    });
    costs!(proxy, "status", {
        backend.status(ids[0]).await.expect("status");
    });
    costs!(proxy, "next_run_at", {
        backend.next_run_at(&[]).await.expect("next_run_at");
    });
    costs!(proxy, "prune", {
        backend
            .prune(chrono::Utc::now() - chrono::Duration::days(1))
            .await
            .expect("prune");
    });

    backend.close().await;
    db.drop().await;
}
