//! Throw-away PostgreSQL clusters for tests, benchmarks and developers.
//!
//! A cluster lives in a fresh directory under the system temp dir: data,
//! Unix socket and server log. It listens on 127.0.0.1 on a free port with
//! `trust` authentication and `fsync=off` (unless a benchmark asks for the
//! server's default, [`TempCluster::start_for_bench`]), so it is fast and
//! needs no password, and is deleted when the [`TempCluster`] is dropped. A
//! [`Watchdog`] does the same if xtask is killed before it can drop it.
//!
//! A cluster for tests also serves TLS with certificates made for it
//! ([`tls`]), when the `openssl` command is there (on CI it must be).

mod tls;
mod watchdog;

use std::io::{BufRead, ErrorKind};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use std::{env, fs};

use crate::process;
use watchdog::Watchdog;

/// The environment variable through which tests find the cluster.
pub(crate) const URL_VAR: &str = "SITQ_TEST_POSTGRES_URL";

/// Where Debian and Ubuntu install each PostgreSQL major version
/// (`/usr/lib/postgresql/<version>/bin`), usually not on `PATH`.
const DEBIAN_INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// The OS user that runs the server when xtask runs as root, because
/// `initdb` and `postgres` refuse to run as root.
const SERVER_OS_USER: &str = "postgres";

/// Seconds `pg_ctl` waits for the server to start or stop before giving up.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// How many ports to try when the free port is taken before the server binds it.
const PORT_ATTEMPTS: usize = 3;

/// Server log lines shown when the server does not start.
const LOG_TAIL_LINES: usize = 30;

/// Finds PostgreSQL's server binaries: a directory on `PATH` holding both
/// `pg_ctl` and `initdb`, else the newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn find_binaries() -> Option<PathBuf> {
    on_path().or_else(newest_debian_install)
}

/// What to do when the server binaries are missing: an error on CI (where
/// `.ci/run` installs them, so their absence is a broken setup), otherwise a
/// warning, and whatever needs PostgreSQL is skipped.
fn binaries_missing() -> Result<(), String> {
    if is_ci() {
        return Err(not_found_message());
    }
    eprintln!(
        "xtask: warning: PostgreSQL server binaries (pg_ctl, initdb) not found on PATH or in \
         {DEBIAN_INSTALL_ROOT}/*/bin; tests and benchmarks that need PostgreSQL will be \
         skipped ({URL_VAR} is not set). Install the postgresql package to run them."
    );
    Ok(())
}

/// Whether we run on CI (`CI=true`, as GitHub Actions, GitLab and `.ci/run` set it).
fn is_ci() -> bool {
    env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// The error for missing server binaries where they are required.
fn not_found_message() -> String {
    format!(
        "PostgreSQL server binaries not found (pg_ctl and initdb, on PATH or in \
         {DEBIAN_INSTALL_ROOT}/*/bin); .ci/run installs the postgresql package"
    )
}

/// A running throw-away PostgreSQL cluster, stopped and deleted on drop.
pub(crate) struct TempCluster {
    /// The cluster's own directory: `data/`, the socket, `log`.
    dir: PathBuf,
    /// Directory holding `pg_ctl` and `initdb`.
    bin_dir: PathBuf,
    /// Whether server commands run as [`SERVER_OS_USER`] (xtask runs as root).
    as_server_user: bool,
    /// Whether the server syncs its writes to disk (`fsync`).
    fsync: bool,
    /// The connection URL, empty until the server has started.
    url: String,
    /// Cleans up if xtask dies before `drop` runs.
    watchdog: Option<Watchdog>,
    /// The certificates, when the server speaks TLS.
    tls: Option<tls::TlsFiles>,
}

impl TempCluster {
    /// Starts a cluster if the server binaries are installed.
    ///
    /// `Ok(None)` means they are not and this is not CI (a warning has been
    /// printed); see [`binaries_missing`].
    pub(crate) fn start() -> Result<Option<Self>, String> {
        match find_binaries() {
            Some(bin_dir) => Self::start_with(bin_dir).map(Some),
            None => binaries_missing().map(|()| None),
        }
    }

    /// [`start`](Self::start) for the benchmark: with `fsync` on (the
    /// server's default, what users run) or off.
    pub(crate) fn start_for_bench(fsync: bool) -> Result<Option<Self>, String> {
        match find_binaries() {
            // Without TLS: the figures compare with runs before it existed.
            Some(bin_dir) => Self::launch(bin_dir, fsync, false).map(Some),
            None => binaries_missing().map(|()| None),
        }
    }

    /// Starts a cluster with the binaries in `bin_dir`, serving TLS.
    pub(crate) fn start_with(bin_dir: PathBuf) -> Result<Self, String> {
        Self::launch(bin_dir, false, true)
    }

    /// Starts a cluster with the binaries in `bin_dir`, `fsync` on or off,
    /// serving TLS (as well as plain connections) when `tls`.
    fn launch(bin_dir: PathBuf, fsync: bool, tls: bool) -> Result<Self, String> {
        let as_server_user = is_root()?;
        let owner = if as_server_user {
            Some(os_user_ids(SERVER_OS_USER)?)
        } else {
            None
        };
        let dir = create_unique_dir()?;
        // From here on, dropping `cluster` (on any error) removes `dir`.
        let mut cluster = TempCluster {
            dir,
            bin_dir,
            as_server_user,
            fsync,
            url: String::new(),
            watchdog: None,
            tls: None,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid)).map_err(|error| {
                format!(
                    "could not hand {} to the `{SERVER_OS_USER}` user: {error}",
                    cluster.dir.display()
                )
            })?;
        }
        let stop = cluster.stop_command();
        cluster.watchdog = Some(Watchdog::spawn(&cluster.dir, &stop)?);

        eprintln!(
            "xtask: starting a throw-away PostgreSQL cluster in {} (binaries from {})",
            cluster.dir.display(),
            cluster.bin_dir.display()
        );
        let mut initdb = cluster.server_command("initdb");
        initdb.arg("-D").arg(cluster.data_dir()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        process::output(&mut initdb)?;
        if tls {
            cluster.tls = cluster.set_up_tls(owner)?;
        }

        let port = cluster.start_server()?;
        cluster.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        eprintln!(
            "xtask: PostgreSQL is accepting connections at {} (fsync={})",
            cluster.url,
            if cluster.fsync { "on" } else { "off" }
        );
        Ok(cluster)
    }

    /// The URL to connect to, e.g. `postgres://postgres@127.0.0.1:5433/postgres`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The environment through which tests find the cluster: [`URL_VAR`],
    /// and the TLS authorities' files when it serves TLS.
    pub(crate) fn test_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(URL_VAR, self.url.clone())];
        if let Some(files) = &self.tls {
            env.push((tls::ROOT_VAR, files.root.display().to_string()));
            env.push((tls::OTHER_ROOT_VAR, files.other_root.display().to_string()));
        }
        env
    }

    /// Makes the certificates and turns TLS on in `postgresql.conf`;
    /// `None` (after a warning) when `openssl` is missing and this is not CI.
    fn set_up_tls(&self, owner: Option<(u32, u32)>) -> Result<Option<tls::TlsFiles>, String> {
        if !tls::have_openssl() {
            if is_ci() {
                return Err(
                    "CI=true but the openssl command is not on PATH: the PostgreSQL TLS tests \
                     need it to make certificates (.ci/run installs the openssl package)"
                        .into(),
                );
            }
            eprintln!(
                "xtask: warning: openssl is not on PATH; the cluster serves no TLS and the \
                 PostgreSQL TLS tests will be skipped (apt-get install openssl)"
            );
            return Ok(None);
        }
        let files = tls::generate(&self.dir, owner)?;
        tls::append(
            &self.data_dir().join("postgresql.conf"),
            &files.server_settings(),
        )?;
        Ok(Some(files))
    }

    /// The cluster's data directory.
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server log.
    fn log_file(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Starts the server on a free port and returns the port; `pg_ctl -w`
    /// returns once it accepts connections, or fails after a bounded wait.
    fn start_server(&self) -> Result<u16, String> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            // pg_ctl hands these to a shell, hence the quotes around the path.
            let fsync = if self.fsync { "on" } else { "off" };
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c fsync={fsync} -c max_connections=200",
                self.dir.display()
            );
            let mut start = self.server_command("pg_ctl");
            start
                .arg("-D")
                .arg(self.data_dir())
                .arg("-o")
                .arg(options)
                .arg("-l")
                .arg(self.log_file())
                .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "start"]);
            let Err(error) = process::output(&mut start) else {
                return Ok(port);
            };
            let log = self.log_tail();
            // Another process may take the port between our probe and the
            // server's bind; that alone is worth another try.
            if attempt < PORT_ATTEMPTS && log.contains("could not bind") {
                attempt += 1;
                continue;
            }
            return Err(format!(
                "PostgreSQL did not start: {error}\nlast lines of {}:\n{log}",
                self.log_file().display()
            ));
        }
    }

    /// The last [`LOG_TAIL_LINES`] lines of the server log.
    fn log_tail(&self) -> String {
        match fs::read_to_string(self.log_file()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(LOG_TAIL_LINES);
                lines[from..].join("\n")
            }
            Err(error) => format!("(could not read the log: {error})"),
        }
    }

    /// `pg_ctl … stop`, fast: an immediate shutdown, as the data is thrown away.
    fn stop_command(&self) -> Command {
        let mut stop = self.server_command("pg_ctl");
        stop.arg("-D").arg(self.data_dir()).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
            "stop",
        ]);
        stop
    }

    /// `pg_ctl … restart` with an immediate stop (a crash, then crash
    /// recovery), waiting until the server accepts connections again, for
    /// `cargo xtask chaos`. The server keeps its port and options: pg_ctl
    /// reads them from `postmaster.opts`. Run it from the command's
    /// current directory, which the server's OS user can enter.
    pub(crate) fn restart_command(&self) -> Command {
        let mut restart = self.server_command("pg_ctl");
        restart
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args([
                "-m",
                "immediate",
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
                "restart",
            ]);
        restart
    }

    /// A command for one of the server binaries, run as [`SERVER_OS_USER`]
    /// when xtask is root, from the cluster's directory (which that user can
    /// enter, unlike, perhaps, the current one).
    fn server_command(&self, binary: &str) -> Command {
        let program = self.bin_dir.join(binary);
        let mut command = if self.as_server_user {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", SERVER_OS_USER, "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.current_dir(&self.dir);
        command
    }

    /// Stops the server if it runs (its pid file exists) and deletes the directory.
    fn clean_up(&self) -> Result<(), String> {
        let stopped = if self.data_dir().join("postmaster.pid").exists() {
            process::output(&mut self.stop_command()).map(drop)
        } else {
            Ok(())
        };
        let removed = fs::remove_dir_all(&self.dir)
            .map_err(|error| format!("could not delete {}: {error}", self.dir.display()));
        stopped.and(removed)
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        match self.clean_up() {
            Ok(()) => eprintln!(
                "xtask: removed the throw-away PostgreSQL cluster in {}",
                self.dir.display()
            ),
            Err(error) => eprintln!("xtask: warning: cleaning up PostgreSQL: {error}"),
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
    }
}

/// `cargo xtask postgres`: runs a cluster until Enter, end of input or Ctrl-C.
pub(crate) fn serve() -> Result<(), String> {
    let bin_dir = find_binaries().ok_or_else(not_found_message)?;
    let cluster = TempCluster::start_with(bin_dir)?;
    println!("{}", cluster.url());
    for (var, value) in cluster.test_env() {
        println!("export {var}={value}");
    }
    eprintln!("xtask: press Enter (or Ctrl-D, Ctrl-C) to stop the server and delete its data");
    let mut line = String::new();
    // End of input and a read error both mean nobody is left to press Enter.
    let _ = std::io::stdin().lock().read_line(&mut line);
    drop(cluster);
    Ok(())
}

/// Directories on `PATH`, first one holding both `pg_ctl` and `initdb`.
fn on_path() -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).find(|dir| has_server_binaries(dir))
}

/// The `bin` directory of the highest PostgreSQL version under [`DEBIAN_INSTALL_ROOT`].
fn newest_debian_install() -> Option<PathBuf> {
    fs::read_dir(DEBIAN_INSTALL_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin_dir = entry.path().join("bin");
            has_server_binaries(&bin_dir).then_some((version, bin_dir))
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, bin_dir)| bin_dir)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else is not a version.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether `dir` holds executable `pg_ctl` and `initdb`.
fn has_server_binaries(dir: &Path) -> bool {
    ["pg_ctl", "initdb"]
        .iter()
        .all(|binary| is_executable(&dir.join(binary)))
}

/// Whether `path` is (or links to) a file with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Whether xtask runs as root (`id -u` is 0).
fn is_root() -> Result<bool, String> {
    let uid = process::output(Command::new("id").arg("-u"))?;
    Ok(uid.trim() == "0")
}

/// The uid and gid of the OS user `name`.
fn os_user_ids(name: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let output = process::output(Command::new("id").args([flag, name])).map_err(|error| {
            format!(
                "running as root, so the server must run as the `{name}` OS user (initdb \
                 refuses root), but looking it up failed; create the user or run as \
                 another user: {error}"
            )
        })?;
        output
            .trim()
            .parse()
            .map_err(|error| format!("`id {flag} {name}` printed {output:?}: {error}"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// Creates a new directory under the system temp dir, unique to this run.
fn create_unique_dir() -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let base = env::temp_dir();
    for attempt in 0..100 {
        let dir = base.join(format!(
            "sitq-pg-{}-{nanos:09}-{attempt}",
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
            Err(error) => {
                return Err(format!("could not create {}: {error}", dir.display()));
            }
        }
    }
    Err(format!(
        "could not find an unused directory name in {}",
        base.display()
    ))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("could not find a free TCP port on 127.0.0.1: {error}"))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert!(parse_version("9.6") < parse_version("10"));
        assert_eq!(parse_version("common"), None);
    }
}
