//! The commands, one module per group, and what they share: the connection
//! and the global options.

mod actions;
mod audit;
mod backup;
mod dashboard;
mod doctor;
mod enqueue;
mod postgres;
mod queues;
mod show;
mod stats;
mod tasks;
mod workers;

use std::process::ExitCode;

use sitq::{ConnectOptions, Queue};

use crate::cli::{Cli, Command, PostgresAction, WorkersAction};
use crate::error::{CliError, Result};

/// What every command gets: the connected queue and the global options.
pub struct Ctx {
    /// The connected queue.
    pub queue: Queue,
    /// `--json`.
    pub json: bool,
    /// Who admin actions are recorded for.
    pub actor: String,
}

/// Runs the command line's command; the exit code when it ran (a `doctor`
/// with a failed check exits non-zero without an error).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    // SQL to print: no database involved.
    if let Command::Postgres {
        action: PostgresAction::Roles(args),
    } = &cli.command
    {
        return postgres::roles(args).map(|()| ExitCode::SUCCESS);
    }
    let url = cli.url.filter(|url| !url.trim().is_empty()).ok_or_else(|| {
        CliError::new("no database given: pass --url or set SITQ_DATABASE_URL (e.g. sqlite:///var/lib/app/tasks.db)")
    })?;
    let actor = crate::parse::actor(cli.actor);
    // A backup opens the file itself (SQLite) or is not ours to make
    // (PostgreSQL): no queue connection.
    if let Command::Backup { path } = &cli.command {
        return backup::run(&url, path).await.map(|()| ExitCode::SUCCESS);
    }
    validate(&cli.command)?;
    let queue = connect(&url).await?;
    let ctx = Ctx {
        queue,
        json: cli.json,
        actor,
    };
    let result = dispatch(&ctx, cli.command).await;
    ctx.queue.close().await;
    result
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<ExitCode> {
    match command {
        Command::Stats => stats::run(ctx).await?,
        Command::Ls(args) => tasks::ls(ctx, &args).await?,
        Command::Show { id } => show::run(ctx, &id).await?,
        Command::Retry { id } => actions::retry(ctx, &id).await?,
        Command::Cancel { id, reason } => actions::cancel(ctx, &id, reason).await?,
        Command::Purge { older_than, status } => actions::purge(ctx, &older_than, &status).await?,
        Command::Pause { queue } => actions::pause(ctx, &queue).await?,
        Command::Resume { queue } => actions::resume(ctx, &queue).await?,
        Command::Queues => queues::queues(ctx).await?,
        Command::Schedules => queues::schedules(ctx).await?,
        Command::Workers { action: None } => workers::list(ctx).await?,
        Command::Workers {
            action: Some(WorkersAction::Drain { id }),
        } => workers::drain(ctx, &id).await?,
        Command::Enqueue(args) => enqueue::run(ctx, &args).await?,
        Command::Doctor => return doctor::run(ctx).await,
        Command::Audit { limit, before } => audit::run(ctx, limit, before).await?,
        Command::Dashboard(args) => dashboard::run(ctx, &args).await?,
        Command::Backup { .. } => {
            return Err(CliError::new("backup runs without a queue connection"));
        }
        Command::Postgres { .. } => {
            return Err(CliError::new(
                "postgres roles runs without a queue connection",
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks what can be checked without the database (ids, states,
/// durations, JSON), so a typo is named even when the database is also
/// wrong, and nothing is touched.
fn validate(command: &Command) -> Result<()> {
    use crate::parse;
    match command {
        Command::Show { id } | Command::Retry { id } | Command::Cancel { id, .. } => {
            parse::task_id(id).map(drop)
        }
        Command::Ls(args) => {
            parse::statuses(&args.status)?;
            if let Some(since) = &args.since {
                parse::since(since, chrono::Utc::now())?;
            }
            if let Some(before) = &args.before {
                parse::task_id(before)?;
            }
            Ok(())
        }
        Command::Purge { older_than, status } => {
            parse::duration(older_than)?;
            parse::statuses(status).map(drop)
        }
        Command::Dashboard(args) => {
            parse::duration(&args.refresh)?;
            sitq_web::check_bind(&args.bind, args.token.as_deref()).map_err(CliError::new)
        }
        Command::Enqueue(args) => {
            if let Some(delay) = &args.delay {
                parse::duration(delay)?;
            }
            enqueue::arguments(&args.args).map(drop)
        }
        _ => Ok(()),
    }
}

/// Connects without creating a database: a mistyped SQLite path is an
/// error naming the file, not a new empty database. Keys in
/// `SITQ_ENCRYPTION_KEYS` (or the file `SITQ_ENCRYPTION_KEYS_FILE` names)
/// open encrypted arguments and results; without them those show as
/// `<encrypted>`, and tasks enqueued here are stored plain.
async fn connect(url: &str) -> Result<Queue> {
    let mut options = ConnectOptions::new().create_missing(false);
    if let Some(keyring) = sitq::Keyring::from_env()? {
        options = options.encryption(keyring);
    }
    Ok(Queue::connect_with(url, options).await?)
}
