//! TLS for the throw-away cluster: a certificate authority made for the run,
//! a server certificate it signs for `localhost`, and a second, unrelated
//! authority, all generated with the `openssl` command.
//!
//! The server certificate names `localhost` only (no IP address), so a test
//! can check both sides of `sslmode=verify-full`: `localhost` verifies, and
//! `127.0.0.1`, the same server, is refused for its name. The unrelated
//! authority is the one a client must not trust the server with.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;

/// The environment variable through which tests find the authority that
/// signed the server's certificate (a PEM file).
pub(crate) const ROOT_VAR: &str = "SITQ_TEST_POSTGRES_TLS_ROOT";

/// The environment variable naming an authority that signed nothing the
/// server has (a PEM file): verifying the server with it must fail.
pub(crate) const OTHER_ROOT_VAR: &str = "SITQ_TEST_POSTGRES_TLS_OTHER_ROOT";

/// The one name in the server's certificate.
const SERVER_NAME: &str = "localhost";

/// How long the generated certificates are valid: the cluster lives for
/// one run, a long-lived `cargo xtask postgres` for a working day or two.
const VALID_DAYS: &str = "7";

/// The files made for one cluster.
pub(crate) struct TlsFiles {
    /// The authority that signed the server's certificate.
    pub(crate) root: PathBuf,
    /// An authority unrelated to the server.
    pub(crate) other_root: PathBuf,
    /// The server's certificate and key (the key 0600, owned by the server's user).
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// The `postgresql.conf` lines that turn TLS on with these files.
    pub(crate) fn server_settings(&self) -> String {
        format!(
            "\n# TLS, added by cargo xtask\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Whether the `openssl` command can be run.
pub(crate) fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Makes both authorities and the server's certificate in `dir`; `owner`
/// (uid, gid) gets the server's key when the server runs as another user.
pub(crate) fn generate(dir: &Path, owner: Option<(u32, u32)>) -> Result<TlsFiles, String> {
    let config = dir.join("openssl.cnf");
    write_file(&config, &openssl_config(), 0o644)?;
    let root = authority(dir, &config, "ca", "sitq test CA")?;
    let other_root = authority(dir, &config, "other-ca", "sitq unrelated test CA")?;

    let key = dir.join("server.key");
    let request = dir.join("server.csr");
    let cert = dir.join("server.crt");
    openssl(
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-subj", &format!("/CN={SERVER_NAME}")])
            .arg("-config")
            .arg(&config)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&request),
    )?;
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-days", VALID_DAYS, "-set_serial", "2"])
            .arg("-in")
            .arg(&request)
            .arg("-CA")
            .arg(&root)
            .arg("-CAkey")
            .arg(dir.join("ca.key"))
            .arg("-extfile")
            .arg(&config)
            .args(["-extensions", "server"])
            .arg("-out")
            .arg(&cert),
    )?;
    // PostgreSQL refuses a key that others can read, or that its user does not own.
    restrict(&key, owner)?;
    Ok(TlsFiles {
        root,
        other_root,
        cert,
        key,
    })
}

/// A self-signed authority `NAME.pem` (key `NAME.key`, 0600) in `dir`.
fn authority(dir: &Path, config: &Path, name: &str, subject: &str) -> Result<PathBuf, String> {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    openssl(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                VALID_DAYS,
                "-subj",
                &format!("/CN={subject}"),
            ])
            .arg("-config")
            .arg(config)
            .args(["-extensions", "authority"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;
    restrict(&key, None)?;
    Ok(cert)
}

/// The extensions of both kinds of certificate, in one file, so nothing
/// depends on the system's `openssl.cnf`.
fn openssl_config() -> String {
    format!(
        "[req]\n\
         distinguished_name = dn\n\
         [dn]\n\
         [authority]\n\
         basicConstraints = critical, CA:TRUE\n\
         keyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [server]\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:{SERVER_NAME}\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n"
    )
}

/// Runs an `openssl` command, naming it in the error.
fn openssl(command: &mut Command) -> Result<(), String> {
    process::output(command)
        .map(drop)
        .map_err(|error| format!("generating the test cluster's TLS certificates: {error}"))
}

/// Makes `path` readable by its owner only, and hands it to `owner`.
fn restrict(path: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|error| format!("could not make {} private: {error}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|error| {
            format!(
                "could not hand {} to the server's user: {error}",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Writes `contents` to a new file at `path` with `mode`.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|error| format!("could not write {}: {error}", path.display()))
}

/// Appends `text` to the file at `path`.
pub(crate) fn append(path: &Path, text: &str) -> Result<(), String> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| format!("could not add to {}: {error}", path.display()))
}
