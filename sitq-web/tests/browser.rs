//! The dashboard in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver, with fantoccini). Loads the overview,
//! filters the task list, opens the failed task, presses Retry and sees the
//! task pending again in the database; the markup in the task's error is
//! shown as text. Screenshots of each page go to `$SITQ_SCREENSHOTS`, else
//! to `sitq-dashboard-screens` in the temp directory; the README's
//! `docs/dashboard.png` is such a run's `dashboard.png`.
//!
//! Without chromium and chromedriver the test says so and passes, unless
//! `CI=true`: then it fails, so CI never skips it silently.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use sitq::TaskStatus;
use sitq_web::Dashboard;

use support::{Backend, Db, Server, WAIT, XSS, seed};

/// Where a program is: `$VAR`, else the first of `names` on `PATH`.
fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|path| !path.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    /// Held so the process is killed when the test ends.
    _child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(program: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", program.display()));
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver says it is ready on /status; poll it, bounded.
        let deadline = Instant::now() + WAIT;
        let client = support::client();
        loop {
            if let Ok(response) = client.get(format!("{url}/status")).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {url} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { _child: child, url }
    }
}

async fn browser(driver: &Driver, chromium: Option<&Path>) -> Client {
    let profile = support::temp_path("chromium-profile");
    let mut options = json!({
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.display()),
        ]
    });
    if let Some(chromium) = chromium {
        options["binary"] = json!(chromium.display().to_string());
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

async fn screenshot(client: &Client, name: &str) {
    let dir = std::env::var_os("SITQ_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sitq-dashboard-screens"));
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits (bounded) for an element only the next page has: a click that
/// submits a form or follows a link returns before that page is loaded.
async fn arrived(client: &Client, css: &str) {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("the next page, with {css}, did not load: {err}"));
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no {css}: {err}"))
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_filter_and_retry() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let driver_program = find_program("CHROMEDRIVER", &["chromedriver"]);
    let chromium = find_program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let (Some(driver_program), Some(chromium)) = (driver_program, chromium) else {
        assert!(
            !ci,
            "CI=true but chromium or chromedriver is missing: .ci/run installs them (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: the browser test needs chromium and chromedriver on PATH");
        return;
    };
    let db = Db::create(Backend::Sqlite, "browser")
        .await
        .expect("sqlite");
    let seeded = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone()).actor("browser-test")).await;
    let driver = Driver::start(&driver_program).await;
    let client = browser(&driver, Some(&chromium)).await;

    let steps = async {
        // The overview: counts, the charts, the queue table.
        client
            .goto(&server.url("/"))
            .await
            .expect("open the overview");
        assert_eq!(client.title().await.expect("title"), "Overview · sitq");
        let charts = client
            .find_all(Locator::Css(".chart svg"))
            .await
            .expect("charts");
        assert_eq!(charts.len(), 3, "hour, day and wait charts");
        let cards = text(&client, ".cards").await;
        assert!(
            cards.contains("FAILED\n1") || cards.to_lowercase().contains("failed\n1"),
            "{cards}"
        );
        screenshot(&client, "dashboard").await;

        // Filter the list to failed tasks with the form.
        client
            .goto(&server.url("/tasks"))
            .await
            .expect("open tasks");
        let all_rows = client
            .find_all(Locator::Css("tbody tr"))
            .await
            .expect("rows")
            .len();
        assert_eq!(all_rows, 6, "every seeded task");
        client
            .find(Locator::Css("select[name=status]"))
            .await
            .expect("status select")
            .select_by_value("failed")
            .await
            .expect("choose failed");
        client
            .find(Locator::Css("form.filters button[type=submit]"))
            .await
            .expect("filter button")
            .click()
            .await
            .expect("filter");
        arrived(
            &client,
            "select[name=status] option[value=failed][selected]",
        )
        .await;
        let rows = client
            .find_all(Locator::Css("tbody tr"))
            .await
            .expect("rows");
        assert_eq!(rows.len(), 1, "only the failed task");
        let url = client.current_url().await.expect("url");
        assert!(url.as_str().contains("status=failed"), "{url}");
        screenshot(&client, "tasks-failed").await;

        // Open it: the error is shown as text, the markup never runs.
        client
            .find(Locator::LinkText(&seeded.failed.0.to_string()))
            .await
            .expect("the task's link")
            .click()
            .await
            .expect("open the task");
        arrived(&client, "dl.facts").await;
        let title = client.title().await.expect("title");
        assert_eq!(
            title,
            format!("Task {} · sitq", seeded.failed.0),
            "the script in the error did not run"
        );
        let error = text(&client, "pre").await;
        assert!(error.contains(XSS), "the error as text: {error}");
        assert!(
            client.find(Locator::Id("injected")).await.is_err(),
            "the <b> in the error is not an element"
        );
        screenshot(&client, "task-failed").await;

        // Retry: the page says so, and the database has it pending.
        client
            .find(Locator::XPath("//button[text()='Retry']"))
            .await
            .expect("the retry button")
            .click()
            .await
            .expect("retry");
        arrived(&client, ".notice").await;
        let notice = text(&client, ".notice").await;
        assert!(notice.contains("pending again"), "{notice}");
        assert_eq!(
            db.queue.status(seeded.failed).await.expect("status"),
            TaskStatus::Pending
        );
        let audit = db.queue.audit_log(5, None).await.expect("audit");
        assert!(
            audit
                .iter()
                .any(|e| e.action == "retry" && e.actor == "browser-test"),
            "{audit:?}"
        );

        // The workflow's graph, reached from one of its tasks.
        client
            .goto(&server.url(&format!("/tasks/{}", seeded.last.0)))
            .await
            .expect("open a workflow task");
        client
            .find(Locator::LinkText(&format!(
                "workflow {}",
                seeded.workflow.0
            )))
            .await
            .expect("the workflow link")
            .click()
            .await
            .expect("open the workflow");
        arrived(&client, "svg[aria-label='workflow graph']").await;
        let boxes = client
            .find_all(Locator::Css("svg rect"))
            .await
            .expect("nodes");
        assert_eq!(boxes.len(), 3, "a box per task");
        screenshot(&client, "workflow").await;
    };
    let outcome = tokio::time::timeout(Duration::from_secs(120), steps).await;
    client.close().await.ok();
    drop(driver);
    server.stop().await;
    db.finish().await;
    outcome.expect("the browser steps finish in time");
}
