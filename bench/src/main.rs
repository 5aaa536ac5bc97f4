//! sitq's benchmark harness: sitq's enqueue, burn-down, end-to-end, latency,
//! scale and memory figures, each beside the same work done in plain SQL on
//! the same database settings. Run it with `cargo xtask bench`; see `--help`.

mod ceiling;
mod child;
mod db;
mod progress;
mod report;
mod tasks;
mod workloads;

use std::io::Write;
use std::process::ExitCode;

use db::{Kind, Provider};
use report::Report;
use workloads::Workload;

/// The benchmark's error: anything, with a message that says what failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The benchmark's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The environment variable holding an admin URL of a PostgreSQL server
/// on which the benchmark may create and drop databases.
pub const POSTGRES_URL_ENV: &str = "SITQ_BENCH_POSTGRES_URL";

const HELP: &str = "\
sitq-bench: sitq's throughput, latency, scale and memory, beside plain SQL.

usage: sitq-bench [options]

  --n N                 tasks per workload (default 100000; 10000 with --quick)
  --concurrency C       worker concurrency (default 16)
  --batch B             rows per batch enqueue, sitq and ceiling alike (default 100)
  --backend B           sqlite | postgres | all (default all: postgres only when
                        SITQ_BENCH_POSTGRES_URL names a server)
  --synchronous S       SQLite synchronous: normal | full (default normal)
  --samples S           latency samples per series (default 2000; 200 with --quick)
  --filler F            finished rows in the large scale table and the dashboard's
                        (default 990000; 90000 with --quick)
  --only W,W            run only these workloads: enqueue, burn-down, e2e,
                        user, latency, idle, workflow, scale, dashboard
  --pg-fsync on|off     the fsync the PostgreSQL server was started with
                        (`cargo xtask bench` starts its throw-away server so;
                        default on); the run reports the server's own setting
  --quick               small sizes: finishes in under a minute
  --json                print one JSON object on stdout instead of the table
  -h, --help            this text
";

/// The command line.
#[derive(Clone, Debug)]
pub struct Args {
    /// Tasks per workload.
    pub n: usize,
    /// Worker concurrency.
    pub concurrency: usize,
    /// Rows per batch enqueue.
    pub batch: usize,
    /// The backends to measure.
    pub backends: Vec<Kind>,
    /// Whether `--backend` was given explicitly (then a missing server is an error).
    pub backend_explicit: bool,
    /// SQLite's `synchronous`.
    pub synchronous: String,
    /// Latency samples per series.
    pub samples: usize,
    /// Finished rows in the large scale table.
    pub filler: u64,
    /// Workloads to run.
    pub only: Vec<Workload>,
    /// The `--pg-fsync` asked for (checked against the server's setting).
    pub pg_fsync: Option<String>,
    /// Small sizes.
    pub quick: bool,
    /// JSON output.
    pub json: bool,
}

impl Args {
    fn parse(args: &[String]) -> Result<Option<Args>> {
        let quick = args.iter().any(|arg| arg == "--quick");
        let mut parsed = Args {
            n: if quick { 10_000 } else { 100_000 },
            concurrency: 16,
            batch: 100,
            backends: vec![Kind::Sqlite, Kind::Postgres],
            backend_explicit: false,
            synchronous: "normal".to_owned(),
            samples: if quick { 200 } else { 2_000 },
            filler: if quick { 90_000 } else { 990_000 },
            only: Workload::ALL.to_vec(),
            pg_fsync: None,
            quick,
            json: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .map(String::as_str)
                    .ok_or_else(|| format!("{arg} needs a value (see --help)"))
            };
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => {}
                "--json" => parsed.json = true,
                "--n" => parsed.n = positive(arg, value()?)?,
                "--concurrency" => parsed.concurrency = positive(arg, value()?)?,
                "--batch" => parsed.batch = positive(arg, value()?)?,
                "--samples" => parsed.samples = positive(arg, value()?)?,
                "--filler" => {
                    parsed.filler = value()?
                        .parse()
                        .map_err(|_| "--filler expects a whole number")?;
                }
                "--synchronous" => {
                    let sync = value()?.to_ascii_lowercase();
                    if !["normal", "full"].contains(&sync.as_str()) {
                        return Err(
                            format!("--synchronous expects normal or full, not {sync}").into()
                        );
                    }
                    parsed.synchronous = sync;
                }
                "--pg-fsync" => {
                    let fsync = value()?.to_ascii_lowercase();
                    if !["on", "off"].contains(&fsync.as_str()) {
                        return Err(format!("--pg-fsync expects on or off, not {fsync}").into());
                    }
                    parsed.pg_fsync = Some(fsync);
                }
                "--backend" => {
                    parsed.backend_explicit = true;
                    parsed.backends = match value()? {
                        "sqlite" => vec![Kind::Sqlite],
                        "postgres" => vec![Kind::Postgres],
                        "all" => vec![Kind::Sqlite, Kind::Postgres],
                        other => {
                            return Err(format!(
                                "--backend expects sqlite, postgres or all, not {other}"
                            )
                            .into());
                        }
                    };
                }
                "--only" => {
                    parsed.only = value()?
                        .split(',')
                        .map(Workload::parse)
                        .collect::<Result<_>>()?;
                }
                other => return Err(format!("unknown argument {other:?} (see --help)").into()),
            }
        }
        Ok(Some(parsed))
    }

    /// Whether `workload` is to run.
    pub fn wants(&self, workload: Workload) -> bool {
        self.only.contains(&workload)
    }
}

fn positive(flag: &str, value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} expects a positive whole number, not {value:?}").into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        return match child::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("sitq-bench worker: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match Args::parse(&args) {
        Ok(Some(args)) => args,
        Ok(None) => {
            eprint!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("sitq-bench: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sitq-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(err) => {
            eprintln!("sitq-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every requested workload on every requested backend and prints the
/// report; false when a task did not run exactly once.
async fn run(args: Args) -> Result<bool> {
    let mut report = Report::default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    report.parameter("n", args.n);
    report.parameter("concurrency", args.concurrency);
    report.parameter("batch", args.batch);
    report.parameter("ceiling_claim_batch", workloads::CEILING_CLAIM);
    report.parameter_text("ceiling_clients", ceiling::CLIENTS);
    report.parameter_text("sqlite_synchronous", &args.synchronous);
    report.parameter("latency_samples", args.samples);
    report.parameter("scale_filler_rows", args.filler);
    report.parameter("quick", args.quick);
    report.parameter("cores", cores);
    if args.n < 100_000 {
        report.notes.push(format!(
            "N = {} < 100000: the issue's targets are set for N ≥ 100k, so these verdicts are indicative",
            args.n
        ));
    }

    let mut providers = Vec::new();
    for kind in &args.backends {
        match kind {
            Kind::Sqlite => providers.push(Provider::sqlite(&args.synchronous)?),
            Kind::Postgres => match std::env::var(POSTGRES_URL_ENV) {
                Ok(admin_url) if !admin_url.is_empty() => {
                    let durability = db::postgres_durability(&admin_url).await?;
                    report.parameter_text("postgres", &durability);
                    if let Some(asked) = &args.pg_fsync
                        && !durability.contains(&format!("fsync={asked} "))
                    {
                        report.notes.push(format!(
                            "--pg-fsync {asked} was asked, but the server runs with {durability}"
                        ));
                    }
                    providers.push(Provider::Postgres { admin_url });
                }
                _ if args.backend_explicit => {
                    return Err(format!(
                        "--backend postgres needs {POSTGRES_URL_ENV} (an admin URL; `cargo xtask bench` starts a server and sets it)"
                    )
                    .into());
                }
                _ => report.notes.push(format!(
                    "postgres skipped: {POSTGRES_URL_ENV} is not set (`cargo xtask bench` starts a throw-away server when PostgreSQL is installed)"
                )),
            },
        }
    }
    let backends: Vec<&str> = providers.iter().map(|p| p.kind().as_str()).collect();
    report.parameter_text("backends", &backends.join(","));
    progress::enable(true);

    for provider in &providers {
        let mut bench = workloads::Bench {
            args: &args,
            provider,
            report: &mut report,
        };
        bench.run_all().await;
        provider.cleanup();
    }

    let all_once = report.checks.iter().all(|check| check.ok);
    let text = if args.json {
        report.json()
    } else {
        report.table()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(all_once)
}
