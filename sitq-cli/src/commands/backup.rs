//! `sitq backup PATH`: a consistent copy of a live SQLite database, with a
//! progress bar; PostgreSQL databases are copied with `pg_dump`.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{CliError, Result};
use crate::output;

/// Copies the database at `url` to `dest`.
pub async fn run(url: &str, dest: &Path) -> Result<()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(CliError::new(format!(
            "sitq backup copies SQLite databases; for PostgreSQL run: pg_dump --format=custom --file={} {}",
            dest.display(),
            redacted(url)
        )));
    }
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} pages {msg}") {
        bar.set_style(style);
    }
    let url_owned = url.to_owned();
    let dest_owned = dest.to_owned();
    let progress_bar = bar.clone();
    let copied = tokio::task::spawn_blocking(move || {
        sitq::sqlite::backup(&url_owned, &dest_owned, |progress| {
            progress_bar.set_length(progress.total_pages);
            progress_bar.set_position(progress.copied_pages);
        })
    })
    .await
    .map_err(|err| CliError::new(format!("the backup stopped: {err}")))?;
    bar.finish_and_clear();
    copied?;
    output::print(&format!("copied the database to {}\n", dest.display()));
    Ok(())
}

/// `url` without its password: a command line to copy, never a secret.
fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme_end + 3], &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_left_out() {
        assert_eq!(
            redacted("postgres://app:secret@db:5432/jobs?sslmode=require"),
            "postgres://app@db:5432/jobs?sslmode=require"
        );
        assert_eq!(redacted("postgres://db/jobs"), "postgres://db/jobs");
    }
}
