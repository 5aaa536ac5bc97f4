//! `sitq dashboard`: refuses a non-loopback address without a token,
//! serves on loopback, takes its token from the environment, and stops
//! cleanly on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::{Backend, Db, run};

/// The binary serving the dashboard, killed if the test fails.
struct Serving {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    url: String,
}

impl Serving {
    fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sitq"))
            .env_remove("SITQ_DATABASE_URL")
            .env_remove("SITQ_DASHBOARD_TOKEN")
            .envs(env.iter().copied())
            .args(["dashboard", "--url", url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sitq dashboard");
        let stdout = child.stdout.take().expect("stdout");
        // The first line names the address; reading it blocks until then
        // (or until the process exits, which fails the test).
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Serving { child, url }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(support::WAIT)
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_public_address_without_a_token() {
    let db = Db::create(Backend::Sqlite, "dash-refuse")
        .await
        .expect("sqlite");
    let output = run(
        vec![
            "dashboard".into(),
            "--bind".into(),
            "0.0.0.0:0".into(),
            "--url".into(),
            db.url.clone(),
        ],
        &[],
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: refusing to serve the dashboard on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let output = run(
        vec![
            "dashboard".into(),
            "--refresh".into(),
            "often".into(),
            "--url".into(),
            db.url.clone(),
        ],
        &[],
    )
    .await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad duration \"often\""));
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_loopback_and_stops_on_sigterm() {
    let db = Db::create(Backend::Sqlite, "dash-serve")
        .await
        .expect("sqlite");
    let url = db.url.clone();
    let serving = tokio::task::spawn_blocking(move || {
        Serving::start(&url, &["--bind", "127.0.0.1:0", "--read-only"], &[])
    })
    .await
    .expect("start");
    let response = client()
        .get(format!("{}api/stats", serving.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let page = client()
        .get(&serving.url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("Overview") && page.contains("read-only"),
        "{page}"
    );
    let refused = client()
        .post(format!("{}api/tasks", serving.url))
        .json(&serde_json::json!({"name": "add", "args": {"a": 1, "b": 2}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        refused.status(),
        reqwest::StatusCode::FORBIDDEN,
        "--read-only"
    );
    let status = tokio::task::spawn_blocking(move || serving.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{status}");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_the_token_from_the_environment() {
    let db = Db::create(Backend::Sqlite, "dash-token")
        .await
        .expect("sqlite");
    let url = db.url.clone();
    let serving = tokio::task::spawn_blocking(move || {
        Serving::start(
            &url,
            &["--bind", "0.0.0.0:0"],
            &[("SITQ_DASHBOARD_TOKEN", "from-env")],
        )
    })
    .await
    .expect("start");
    let port = serving
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let base = format!("http://127.0.0.1:{port}/api/stats");
    let anonymous = client().get(&base).send().await.expect("GET");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let with_token = client()
        .get(&base)
        .bearer_auth("from-env")
        .send()
        .await
        .expect("GET");
    assert_eq!(with_token.status(), reqwest::StatusCode::OK);
    let status = tokio::task::spawn_blocking(move || serving.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{status}");
    db.finish().await;
}
