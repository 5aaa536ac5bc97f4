//! `sitq postgres roles` prints the roles script without a database, and
//! refuses a name that is not a plain SQL identifier. (What the script
//! grants is tested against a server in `sitq-postgres/tests/roles.rs`.)

mod support;

use support::run;

#[tokio::test]
async fn prints_the_script_with_the_names_given_and_no_url() {
    let args = ["postgres", "roles", "--producer", "web", "--schema", "jobs"];
    let output = run(args.map(String::from).to_vec(), &[]).await;
    assert!(output.status.success(), "{output:?}");
    let sql = String::from_utf8_lossy(&output.stdout);
    assert!(sql.contains("CREATE ROLE \"web\" NOLOGIN;"), "{sql}");
    assert!(
        sql.contains("CREATE ROLE \"sitq_worker\" NOLOGIN;"),
        "{sql}"
    );
    assert!(sql.contains("ON \"jobs\".sitq_tasks TO \"web\""), "{sql}");
    assert!(sql.trim_end().ends_with("COMMIT;"), "{sql}");
}

#[tokio::test]
async fn refuses_a_name_that_is_not_an_identifier() {
    let args = ["postgres", "roles", "--admin", "Ops; DROP"];
    let output = run(args.map(String::from).to_vec(), &[]).await;
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lowercase SQL identifier"), "{stderr}");
    assert!(output.stdout.is_empty(), "prints nothing: {output:?}");
}
