//! `doctor`'s look at the database: schema, expired leases, oversized
//! rows, and SQLite's own settings and files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sitq_core::{Check, CheckLevel, Diagnosis, OversizedRow, TaskId};

use crate::connect::newest_migration;

/// The most oversized rows reported.
const OVERSIZED_ROWS: i64 = 20;

/// Reads everything [`Diagnosis`] holds; `path` is the database file
/// (`None` in memory), `location` what `Backend::location` says.
pub(crate) fn diagnose(
    conn: &Connection,
    location: &str,
    path: Option<&Path>,
    oversized_bytes: usize,
    now: i64,
) -> rusqlite::Result<Diagnosis> {
    let schema_version: i64 = conn
        .prepare_cached("SELECT coalesce(max(version), 0) FROM sitq_migrations")?
        .query_row([], |row| row.get(0))?;
    let expired_leases: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM sitq_tasks WHERE status = 'running' AND lease_until < ?1",
        )?
        .query_row([now], |row| row.get(0))?;
    Ok(Diagnosis {
        location: location.to_owned(),
        schema_version,
        expected_schema_version: newest_migration(),
        expired_leases: expired_leases.max(0).unsigned_abs(),
        oversized: oversized(conn, oversized_bytes)?,
        checks: checks(conn, path)?,
    })
}

/// Up to [`OVERSIZED_ROWS`] tasks whose payload or result is over `bytes`,
/// largest first. `length()` of a blob column is read from the record
/// header: the blobs themselves are never loaded.
fn oversized(conn: &Connection, bytes: usize) -> rusqlite::Result<Vec<OversizedRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, name, length(payload), coalesce(length(result), 0) FROM sitq_tasks \
         WHERE length(payload) > ?1 OR length(result) > ?1 \
         ORDER BY max(length(payload), coalesce(length(result), 0)) DESC, id LIMIT ?2",
    )?;
    let rows = statement.query_map(
        params![i64::try_from(bytes).unwrap_or(i64::MAX), OVERSIZED_ROWS],
        |row| {
            Ok(OversizedRow {
                id: TaskId(row.get(0)?),
                name: row.get(1)?,
                payload_bytes: row.get::<_, i64>(2)?.max(0).unsigned_abs(),
                result_bytes: row.get::<_, i64>(3)?.max(0).unsigned_abs(),
            })
        },
    )?;
    rows.collect()
}

fn checks(conn: &Connection, path: Option<&Path>) -> rusqlite::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    checks.push(match path {
        None => Check::new(
            "journal mode",
            CheckLevel::Warn,
            "in-memory database: private to this process and gone when it closes",
        ),
        Some(_) if mode.eq_ignore_ascii_case("wal") => Check::new(
            "journal mode",
            CheckLevel::Ok,
            "wal: readers never wait for the writer",
        ),
        Some(_) => Check::new(
            "journal mode",
            CheckLevel::Fail,
            format!(
                "{mode}: sitq needs WAL (it switches every file it opens; a file system \
                 without shared memory, such as a network mount, cannot keep it)"
            ),
        ),
    });
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    checks.push(synchronous_check(synchronous));
    if let Some(path) = path {
        checks.push(permissions(path));
        if let Some(check) = directory(path) {
            checks.push(check);
        }
        let (pages, page_size, free): (i64, i64, i64) = conn.query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()), \
                 (SELECT page_size FROM pragma_page_size()), \
                 (SELECT freelist_count FROM pragma_freelist_count())",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        checks.push(Check::new(
            "size",
            CheckLevel::Ok,
            format!(
                "{} in {pages} pages of {page_size} bytes, {free} of them free \
                 (pruning frees pages for reuse; VACUUM gives them back to the file system)",
                human_bytes(pages.saturating_mul(page_size))
            ),
        ));
    }
    Ok(checks)
}

/// What `PRAGMA synchronous` buys.
fn synchronous_check(value: i64) -> Check {
    let name = "synchronous";
    match value {
        0 => Check::new(
            name,
            CheckLevel::Warn,
            "OFF: an OS crash or power loss can lose recent commits or corrupt the file; \
             use ?synchronous=NORMAL (the default) or FULL in the URL",
        ),
        1 => Check::new(
            name,
            CheckLevel::Ok,
            "NORMAL: a commit survives a crash of the process; the last commits before a \
             power loss or OS crash may be lost (?synchronous=FULL keeps them, at an fsync \
             per commit)",
        ),
        2 => Check::new(
            name,
            CheckLevel::Ok,
            "FULL: every commit is on disk before it returns, and survives a power loss",
        ),
        _ => Check::new(
            name,
            CheckLevel::Ok,
            "EXTRA: every commit is on disk before it returns, and survives a power loss",
        ),
    }
}

/// The database file and its `-wal` and `-shm` files should be readable by
/// their owner only: task payloads and results may be private.
fn permissions(path: &Path) -> Check {
    let name = "file permissions";
    let mut open = Vec::new();
    let mut seen = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue; // the -wal and -shm files come and go
        };
        let mode = metadata.permissions().mode() & 0o777;
        seen.push(format!("{} {mode:04o}", file.display()));
        if mode & 0o077 != 0 {
            open.push(file);
        }
    }
    if open.is_empty() {
        return Check::new(name, CheckLevel::Ok, seen.join(", "));
    }
    let files: Vec<String> = open.iter().map(|f| f.display().to_string()).collect();
    Check::new(
        name,
        CheckLevel::Warn,
        format!(
            "{}: others can read task payloads and results; chmod 600 {}",
            seen.join(", "),
            files.join(" ")
        ),
    )
}

/// A directory others may write to lets them delete or replace the
/// database and its `-wal` file.
fn directory(path: &Path) -> Option<Check> {
    let absolute = crate::connect::absolute(path);
    let dir = absolute.parent()?;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode();
    let name = "directory permissions";
    if mode & 0o022 == 0 {
        return Some(Check::new(
            name,
            CheckLevel::Ok,
            format!("{} {:04o}", dir.display(), mode & 0o7777),
        ));
    }
    Some(Check::new(
        name,
        CheckLevel::Warn,
        format!(
            "{} {:04o} is writable by other users, who could remove or replace the \
             database or its -wal file; keep it in a directory only its owner writes to \
             (chmod go-w {})",
            dir.display(),
            mode & 0o7777,
            dir.display()
        ),
    ))
}

/// `bytes` for people: `512 B`, `1.5 KiB`, `12.0 MiB`.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss, reason = "a rounded size for display")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12 * 1024 * 1024), "12.0 MiB");
    }

    #[test]
    fn synchronous_levels() {
        assert_eq!(synchronous_check(0).level, CheckLevel::Warn);
        assert_eq!(synchronous_check(1).level, CheckLevel::Ok);
        assert_eq!(synchronous_check(2).level, CheckLevel::Ok);
    }
}
