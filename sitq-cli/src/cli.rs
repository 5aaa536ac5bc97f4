//! The command line, as clap parses it. Values with a format of their own
//! (statuses, durations, JSON, ids) are kept as text here and parsed by the
//! command, so a mistake in one is a one-line error.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The sitq admin tool: inspect and operate a sitq task queue.
#[derive(Debug, Parser)]
#[command(name = "sitq", version, max_term_width = 80)]
pub struct Cli {
    /// The queue's database: sqlite:///absolute/path, sqlite://relative/path
    /// (from the working directory) or postgres://user@host/database.
    #[arg(long, env = "SITQ_DATABASE_URL", global = true, hide_env_values = true)]
    pub url: Option<String>,

    /// Who the audit log records for admin actions (default: $USER, else
    /// $LOGNAME, else "unknown").
    #[arg(long, global = true)]
    pub actor: Option<String>,

    /// Print JSON instead of a table (read commands; shapes in each
    /// command's --help).
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Task counts per queue and state, throughput, failure rate, oldest
    /// pending age, paused queues, live workers.
    ///
    /// --json: {"now", "counts": [{queue, name, status, count, oldest_due}],
    /// "finished": [{queue, status, last_minute, last_hour}],
    /// "failed_attempts_last_minute", "failed_attempts_last_hour",
    /// "paused_queues": ["queue"], "workers": [worker as in `workers --json`]}
    Stats,
    /// Lists tasks, newest first.
    ///
    /// --json: [{id, name, queue, status, priority, attempts, max_attempts,
    /// created_at, run_at, started_at, finished_at, worker_id, error_kind,
    /// error}]
    Ls(LsArgs),
    /// One task: its record, arguments and result as JSON, and every attempt.
    ///
    /// --json: {"task": {id, name, queue, status, priority, attempts,
    /// max_attempts, snoozes, created_at, run_at, started_at, finished_at,
    /// worker_id, failure: {kind, message}, cancellation: {requested_at, by,
    /// reason}}, "arguments", "result", "attempts": [{attempt, worker_id,
    /// started_at, finished_at, outcome, error: {kind, message}}]}
    Show {
        /// The task's id.
        id: String,
    },
    /// Runs a failed or cancelled task again with fresh attempts.
    Retry {
        /// The task's id.
        id: String,
    },
    /// Cancels a task (at once if it has not started; a running one is asked
    /// to stop).
    Cancel {
        /// The task's id.
        id: String,
        /// Why (recorded with the task and in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deletes finished tasks that finished more than a given time ago.
    Purge {
        /// How long ago they finished at the latest, e.g. 7d, 12h, 30m.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// Only these states (succeeded, failed, cancelled); repeat or
        /// separate with commas. Every finished state by default.
        #[arg(long, value_name = "STATUS")]
        status: Vec<String>,
    },
    /// Pauses a queue: no worker claims its tasks until it is resumed.
    Pause {
        /// The queue's name.
        queue: String,
    },
    /// Resumes a paused queue.
    Resume {
        /// The queue's name.
        queue: String,
    },
    /// Queues with settings or unfinished tasks.
    ///
    /// --json: [{name, paused, pending, running, concurrency_limit,
    /// rate_limit: {count, period_ms}}]
    Queues,
    /// Live worker processes; `workers drain ID` asks one to stop.
    ///
    /// --json: [{id, host, pid, version, queues, tasks, concurrency,
    /// running, started_at, last_seen, expires_at, draining}]
    Workers {
        /// `drain ID`.
        #[command(subcommand)]
        action: Option<WorkersAction>,
    },
    /// Cron schedules, with their last and next fire.
    ///
    /// --json: [{name, task, queue, expression, zone, catch_up, defined_at,
    /// last_fire, next_fire, last_seen}]
    Schedules,
    /// Enqueues a task by name with JSON arguments; prints its id.
    Enqueue(EnqueueArgs),
    /// Copies a live SQLite database to a new file (PostgreSQL: use pg_dump).
    Backup {
        /// Where the copy goes (must not exist).
        path: PathBuf,
    },
    /// Checks the database: schema, journal mode, permissions, expired
    /// leases, oversized rows, tasks no live worker runs. Exits non-zero
    /// when a check fails.
    ///
    /// --json: {location, schema_version, expected_schema_version,
    /// expired_leases, oversized: [{id, name, payload_bytes, result_bytes}],
    /// checks: [{name, level, detail}], unserved: [{queue, name, pending}],
    /// ok}
    Doctor,
    /// Serves the web dashboard and its JSON API (/api) until Ctrl-C.
    ///
    /// Binds to loopback by default; any other address needs a token
    /// (bearer, or basic auth with the token as the password).
    Dashboard(DashboardArgs),
    /// The audit log of admin actions, newest first.
    ///
    /// --json: [{id, at, actor, action, target, detail}]
    Audit {
        /// The most entries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only entries with an id below this one (the next page).
        #[arg(long)]
        before: Option<i64>,
    },
    /// PostgreSQL specifics: `postgres roles` prints the SQL for
    /// least-privilege roles (needs no --url).
    Postgres {
        /// `roles`.
        #[command(subcommand)]
        action: PostgresAction,
    },
}

/// `sitq postgres` actions.
#[derive(Debug, Subcommand)]
pub enum PostgresAction {
    /// Prints the SQL that creates three group roles (NOLOGIN) and grants
    /// each what it needs: the producer enqueues and reads tasks and results
    /// (no claim, complete, cancel, retry or delete); the worker runs tasks
    /// (no queue settings, drain, audit log or migrations); the admin owns
    /// sitq's tables. Run it as a superuser or the database's owner once
    /// sitq's tables exist (and again after upgrading sitq), e.g.
    /// `sitq postgres roles | psql "$OWNER_URL"`, then grant the roles to
    /// login roles (`GRANT sitq_producer TO app_web`).
    Roles(RolesArgs),
}

/// `sitq postgres roles` names.
#[derive(Debug, Args)]
pub struct RolesArgs {
    /// The producer role's name.
    #[arg(long, default_value = "sitq_producer", value_name = "NAME")]
    pub producer: String,
    /// The worker role's name.
    #[arg(long, default_value = "sitq_worker", value_name = "NAME")]
    pub worker: String,
    /// The admin role's name.
    #[arg(long, default_value = "sitq_admin", value_name = "NAME")]
    pub admin: String,
    /// The schema of sitq's tables.
    #[arg(long, default_value = "public", value_name = "NAME")]
    pub schema: String,
}

/// `sitq ls` filters.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only tasks in these states (pending, blocked, running, succeeded,
    /// failed, cancelled); repeat or separate with commas.
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Only tasks of this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only tasks of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only tasks enqueued since: a duration ago (1h, 30m, 2d) or an RFC 3339
    /// instant.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// The most tasks to list.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Only tasks with an id below this one (the next page).
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
}

/// `sitq dashboard` options.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub bind: std::net::SocketAddr,
    /// Require this token on every request (needed beyond loopback).
    #[arg(long, env = "SITQ_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Hide and refuse every action (retry, cancel, delete, pause, resume,
    /// enqueue).
    #[arg(long)]
    pub read_only: bool,
    /// How often pages reload themselves, e.g. 10s; 0 turns it off.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub refresh: String,
}

/// `sitq workers` actions.
#[derive(Debug, Subcommand)]
pub enum WorkersAction {
    /// Asks a worker to stop claiming and exit once its running tasks finish.
    Drain {
        /// The worker's id (from `sitq workers`).
        id: String,
    },
}

/// `sitq enqueue` arguments.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The task's registered name.
    pub name: String,
    /// Its arguments: a JSON object by name ({"a": 2}) or an array in order.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// The queue (default: "default").
    #[arg(long)]
    pub queue: Option<String>,
    /// Its priority (higher runs first).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Run it no earlier than this from now, e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    /// Attempts allowed before it fails.
    #[arg(long)]
    pub max_attempts: Option<u32>,
}
