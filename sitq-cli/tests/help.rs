//! `--help` for every command fits 80 columns and exits 0.

mod support;

use support::{assert_fits, run};

#[tokio::test]
async fn every_help_fits_80_columns() {
    let commands: &[&[&str]] = &[
        &[],
        &["stats"],
        &["ls"],
        &["show"],
        &["retry"],
        &["cancel"],
        &["purge"],
        &["pause"],
        &["resume"],
        &["queues"],
        &["workers"],
        &["workers", "drain"],
        &["schedules"],
        &["enqueue"],
        &["backup"],
        &["doctor"],
        &["audit"],
        &["postgres"],
        &["postgres", "roles"],
    ];
    for command in commands {
        let mut args: Vec<String> = command.iter().map(|arg| (*arg).to_owned()).collect();
        args.push("--help".to_owned());
        let output = run(args, &[]).await;
        assert!(
            output.status.success(),
            "sitq {command:?} --help: {output:?}"
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage: sitq"), "{text}");
        assert_fits(&text);
    }
}
