//! `sitq dashboard`: serves `sitq_web`'s router until Ctrl-C (or SIGTERM).

use sitq_web::Dashboard;

use super::Ctx;
use crate::cli::DashboardArgs;
use crate::error::{CliError, Result};
use crate::output;
use crate::parse;

/// Binds, prints where, and serves until told to stop.
pub async fn run(ctx: &Ctx, args: &DashboardArgs) -> Result<()> {
    sitq_web::check_bind(&args.bind, args.token.as_deref()).map_err(CliError::new)?;
    let token = args.token.clone().filter(|token| !token.is_empty());
    let mut dashboard = Dashboard::new(ctx.queue.clone())
        .read_only(args.read_only)
        .actor(ctx.actor.clone())
        .refresh(parse::duration(&args.refresh)?)
        // Without a token, only a loopback Host is answered, so a page on
        // another site cannot reach it through DNS rebinding.
        .loopback_hosts_only(token.is_none());
    if let Some(token) = token {
        dashboard = dashboard.token(token);
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|err| CliError::new(format!("could not listen on {}: {err}", args.bind)))?;
    let local = listener
        .local_addr()
        .map_err(|err| CliError::new(format!("could not listen on {}: {err}", args.bind)))?;
    output::print(&format!(
        "sitq dashboard on http://{local}/ ({}; Ctrl-C stops it)\n",
        if args.read_only {
            "read-only"
        } else {
            "actions allowed"
        }
    ));
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|err| CliError::new(format!("the dashboard stopped: {err}")))
}

/// Ctrl-C or, on Unix, SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
