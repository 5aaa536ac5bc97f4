//! Encryption at rest: a task's arguments and result sealed with
//! XChaCha20-Poly1305 under a key from a [`Keyring`].
//!
//! A sealed value is an envelope: the byte `0xc1` (which never starts a
//! MessagePack value, so sealed and plain rows tell themselves apart), a
//! format version, the key id (length-prefixed), a random 24-byte nonce and
//! the ciphertext with its tag. The associated data binds arguments to the
//! task's name and a result to the task's id, so a ciphertext moved to
//! another task type (or another task's result) does not open.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{Error, Result, TaskId};

/// First byte of a sealed value: reserved ("never used") in MessagePack.
const MAGIC: u8 = 0xc1;
/// The envelope's format version.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Longest key id, in bytes.
const MAX_KEY_ID: usize = 64;

/// How the admin views (CLI, dashboard) show a value stored sealed and read
/// without its key.
pub const ENCRYPTED: &str = "<encrypted>";

/// The environment variable [`Keyring::from_env`] reads keys from.
pub const KEYS_ENV: &str = "SITQ_ENCRYPTION_KEYS";
/// The environment variable naming a file [`Keyring::from_env`] reads keys
/// from when [`KEYS_ENV`] is unset.
pub const KEYS_FILE_ENV: &str = "SITQ_ENCRYPTION_KEYS_FILE";

/// What a sealed value is bound to (its associated data).
#[derive(Copy, Clone, Debug)]
pub enum Binding<'a> {
    /// A task's arguments: bound to the task's registered name.
    Arguments(&'a str),
    /// A task's result: bound to the task's id.
    Result(TaskId),
}

impl Binding<'_> {
    fn associated_data(self) -> Vec<u8> {
        match self {
            Binding::Arguments(name) => [b"sitq/v1/arguments/", name.as_bytes()].concat(),
            Binding::Result(id) => format!("sitq/v1/result/{}", id.0).into_bytes(),
        }
    }

    fn describe(self) -> String {
        match self {
            Binding::Arguments(name) => format!("the arguments of task {name:?}"),
            Binding::Result(id) => format!("the result of task {id}"),
        }
    }
}

/// Encryption keys by id: the active one seals new values, every one opens
/// the values sealed with it, so keys rotate without rewriting rows.
///
/// Its `Debug` shows key ids only, never key material.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, [u8; 32]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring whose active key is `key`, named `id` (1–64 characters of
    /// `A-Z a-z 0-9 . _ -`; the id is stored with every value it seals).
    pub fn new(id: &str, key: [u8; 32]) -> Result<Keyring> {
        check_id(id)?;
        Ok(Keyring {
            active: id.to_owned(),
            keys: BTreeMap::from([(id.to_owned(), key)]),
        })
    }

    /// Adds an older key, used only to open what it sealed.
    pub fn with_old_key(mut self, id: &str, key: [u8; 32]) -> Result<Keyring> {
        check_id(id)?;
        if self.keys.contains_key(id) {
            return Err(keys_error(format!("key id {id:?} is given twice")));
        }
        self.keys.insert(id.to_owned(), key);
        Ok(self)
    }

    /// Parses keys written as `id:hex` (64 hex digits, e.g. from
    /// `openssl rand -hex 32`), separated by commas, spaces or lines; the
    /// first is the active key. Lines starting with `#` are comments.
    pub fn parse(spec: &str) -> Result<Keyring> {
        let mut entries = spec
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split([',', ' ', '\t']))
            .filter(|entry| !entry.is_empty());
        let Some(first) = entries.next() else {
            return Err(keys_error("no keys given (expected id:hex, …)".to_owned()));
        };
        let (id, key) = parse_entry(first)?;
        let mut keyring = Keyring::new(id, key)?;
        for entry in entries {
            let (id, key) = parse_entry(entry)?;
            keyring = keyring.with_old_key(id, key)?;
        }
        Ok(keyring)
    }

    /// Reads keys in [`parse`](Keyring::parse)'s format from `path`.
    pub fn from_file(path: &Path) -> Result<Keyring> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| keys_error(format!("cannot read key file {}: {err}", path.display())))?;
        Keyring::parse(&text)
            .map_err(|err| keys_error(format!("in key file {}: {err}", path.display())))
    }

    /// The keyring in [`KEYS_ENV`], else in the file [`KEYS_FILE_ENV`]
    /// names; `None` when neither is set.
    pub fn from_env() -> Result<Option<Keyring>> {
        if let Some(spec) = std::env::var_os(KEYS_ENV) {
            let spec = spec
                .into_string()
                .map_err(|_| keys_error(format!("{KEYS_ENV} is not valid UTF-8")))?;
            return Keyring::parse(&spec)
                .map(Some)
                .map_err(|err| keys_error(format!("in {KEYS_ENV}: {err}")));
        }
        match std::env::var_os(KEYS_FILE_ENV) {
            Some(path) => Keyring::from_file(Path::new(&path)).map(Some),
            None => Ok(None),
        }
    }

    /// The id of the key that seals new values.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Every key id, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// `plain` sealed with the active key, bound to `binding`.
    pub fn seal(&self, binding: Binding<'_>, plain: &[u8]) -> Result<Vec<u8>> {
        let key = &self.keys[&self.active];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|err| keys_error(format!("no random nonce from the OS: {err}")))?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let aad = binding.associated_data();
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| keys_error(format!("could not seal {}", binding.describe())))?;
        let id = self.active.as_bytes();
        let mut out = Vec::with_capacity(3 + id.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(&[MAGIC, VERSION, id.len() as u8]);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain bytes of `stored`: opened when sealed, as they are when not.
    /// An error names the key id when the key is missing or the value does
    /// not verify (tampered, or moved from another task).
    pub fn open(&self, binding: Binding<'_>, stored: Vec<u8>) -> Result<Vec<u8>> {
        let Some(envelope) = Envelope::read(&stored) else {
            return Ok(stored);
        };
        let envelope = envelope.map_err(|reason| sealed_error(binding, None, reason))?;
        let Some(key) = self.keys.get(envelope.key_id) else {
            return Err(sealed_error(
                binding,
                Some(envelope.key_id),
                format!(
                    "this process's keyring holds no key {:?} (it holds {}); add that key and retry the task",
                    envelope.key_id,
                    self.key_ids()
                        .map(|id| format!("{id:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let cipher = XChaCha20Poly1305::new(key.into());
        let aad = binding.associated_data();
        cipher
            .decrypt(
                &XNonce::from(envelope.nonce),
                Payload {
                    msg: envelope.sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                sealed_error(
                    binding,
                    Some(envelope.key_id),
                    "it does not verify: the stored bytes were changed, or moved from another task"
                        .to_owned(),
                )
            })
    }
}

/// The key id a sealed value names, `None` for a plain one.
pub fn sealed_key_id(stored: &[u8]) -> Option<&str> {
    match Envelope::read(stored)? {
        Ok(envelope) => Some(envelope.key_id),
        Err(_) => Some("?"),
    }
}

/// Whether `stored` is a sealed value (starts with the envelope's marker).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.first() == Some(&MAGIC)
}

/// `stored` opened with `keyring` when there is one; without a keyring a
/// sealed value is an error naming its key, and a plain one is returned as
/// it is.
pub fn open_with(
    keyring: Option<&Keyring>,
    binding: Binding<'_>,
    stored: Vec<u8>,
) -> Result<Vec<u8>> {
    match keyring {
        Some(keyring) => keyring.open(binding, stored),
        None => match sealed_key_id(&stored) {
            Some(id) => Err(sealed_error(
                binding,
                Some(id),
                format!(
                    "this process has no keyring; connect with ConnectOptions::encryption and a keyring holding key {id:?}, then retry the task"
                ),
            )),
            None => Ok(stored),
        },
    }
}

/// The parts of a sealed value.
struct Envelope<'a> {
    key_id: &'a str,
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// `None` for a plain value; an error for a sealed one that is cut short
    /// or of an unknown version.
    fn read(stored: &'a [u8]) -> Option<std::result::Result<Envelope<'a>, String>> {
        let rest = stored.strip_prefix(&[MAGIC])?;
        Some(Envelope::parts(rest))
    }

    fn parts(rest: &'a [u8]) -> std::result::Result<Envelope<'a>, String> {
        let short = || "its envelope is cut short".to_owned();
        let (&version, rest) = rest.split_first().ok_or_else(short)?;
        if version != VERSION {
            return Err(format!(
                "its envelope is version {version}, this build reads version {VERSION}"
            ));
        }
        let (&len, rest) = rest.split_first().ok_or_else(short)?;
        let (id, rest) = rest.split_at_checked(usize::from(len)).ok_or_else(short)?;
        let key_id = std::str::from_utf8(id).map_err(|_| "its key id is not text".to_owned())?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or_else(short)?;
        let nonce = nonce.try_into().map_err(|_| short())?;
        Ok(Envelope {
            key_id,
            nonce,
            sealed,
        })
    }
}

fn check_id(id: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_KEY_ID || !id.chars().all(allowed) {
        return Err(keys_error(format!(
            "key id {id:?} must be 1 to {MAX_KEY_ID} characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

fn parse_entry(entry: &str) -> Result<(&str, [u8; 32])> {
    let Some((id, hex)) = entry.split_once(':') else {
        return Err(keys_error(format!(
            "expected id:hex, got an entry without ':' ({} characters)",
            entry.len()
        )));
    };
    check_id(id)?;
    // The key's text never goes into an error: only its length.
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(keys_error(format!(
            "key {id:?} is {} hex digits, expected 64 (32 bytes; `openssl rand -hex 32`)",
            bytes.len()
        )));
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => *byte = (high * 16 + low) as u8,
            _ => return Err(keys_error(format!("key {id:?} is not hexadecimal"))),
        }
    }
    Ok((id, key))
}

fn keys_error(reason: String) -> Error {
    Error::Encryption(reason)
}

fn sealed_error(binding: Binding<'_>, key_id: Option<&str>, reason: String) -> Error {
    let key = key_id.map_or(String::new(), |id| format!(" with key {id:?}"));
    Error::Encryption(format!(
        "cannot open {} (sealed{key}): {reason}",
        binding.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    #[test]
    fn seals_and_opens_bound_to_the_name() {
        let keyring = Keyring::new("k1", K1).expect("keyring");
        let sealed = keyring
            .seal(Binding::Arguments("a"), b"plain")
            .expect("seal");
        assert!(is_sealed(&sealed));
        assert_eq!(sealed_key_id(&sealed), Some("k1"));
        assert!(!sealed.windows(5).any(|w| w == b"plain"));
        let opened = keyring
            .open(Binding::Arguments("a"), sealed.clone())
            .expect("open");
        assert_eq!(opened, b"plain");
        let moved = keyring
            .open(Binding::Arguments("b"), sealed)
            .expect_err("another name");
        assert!(moved.to_string().contains("does not verify"), "{moved}");
    }

    #[test]
    fn plain_values_pass_through() {
        let keyring = Keyring::new("k1", K1).expect("keyring");
        let plain = vec![0x92, 0x01, 0x02];
        assert_eq!(
            keyring
                .open(Binding::Result(TaskId(3)), plain.clone())
                .expect("open"),
            plain
        );
        assert_eq!(sealed_key_id(&plain), None);
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_the_new_key() {
        let old = Keyring::new("k1", K1).expect("keyring");
        let sealed = old.seal(Binding::Result(TaskId(9)), b"r").expect("seal");
        let rotated = Keyring::new("k2", K2)
            .and_then(|k| k.with_old_key("k1", K1))
            .expect("keyring");
        assert_eq!(
            rotated
                .open(Binding::Result(TaskId(9)), sealed)
                .expect("open"),
            b"r"
        );
        let new = rotated
            .seal(Binding::Result(TaskId(9)), b"r")
            .expect("seal");
        assert_eq!(sealed_key_id(&new), Some("k2"));
        let missing = old
            .open(Binding::Result(TaskId(9)), new)
            .expect_err("old keyring lacks k2");
        let text = missing.to_string();
        assert!(text.contains("\"k2\"") && text.contains("task 9"), "{text}");
    }

    #[test]
    fn truncated_and_tampered_envelopes_are_errors() {
        let keyring = Keyring::new("k1", K1).expect("keyring");
        let sealed = keyring.seal(Binding::Arguments("a"), b"x").expect("seal");
        for len in 1..sealed.len() {
            let cut = sealed[..len].to_vec();
            assert!(keyring.open(Binding::Arguments("a"), cut).is_err(), "{len}");
        }
        let mut flipped = sealed;
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(keyring.open(Binding::Arguments("a"), flipped).is_err());
    }

    #[test]
    fn parses_keys_and_refuses_bad_ones_without_echoing_them() {
        let hex1 = "01".repeat(32);
        let hex2 = "02".repeat(32);
        let keyring = Keyring::parse(&format!("# rotated\nk2:{hex2}\nk1:{hex1}\n")).expect("parse");
        assert_eq!(keyring.active_id(), "k2");
        assert_eq!(keyring.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(
            keyring,
            Keyring::new("k2", K2)
                .and_then(|k| k.with_old_key("k1", K1))
                .expect("keyring")
        );
        let debug = format!("{keyring:?}");
        assert!(
            !debug.contains(&hex1) && !debug.contains("[1, 1"),
            "{debug}"
        );

        let secret = "ab".repeat(31);
        for (spec, want) in [
            ("", "no keys"),
            ("k1", "without ':'"),
            (&format!("k1:{secret}") as &str, "62 hex digits"),
            (&format!("k1:{}zz", "ab".repeat(31)), "not hexadecimal"),
            (&format!("bad id:{hex1}"), "without ':'"),
            (&format!("bäd:{hex1}"), "must be 1 to 64"),
            (&format!("k1:{hex1},k1:{hex2}"), "twice"),
        ] {
            let err = Keyring::parse(spec).expect_err(spec).to_string();
            assert!(err.contains(want), "{spec:?}: {err}");
            assert!(!err.contains(&secret), "{err}");
        }
    }

    #[test]
    fn without_a_keyring_a_sealed_value_names_its_key() {
        let keyring = Keyring::new("prod-2026", K1).expect("keyring");
        let sealed = keyring.seal(Binding::Arguments("a"), b"x").expect("seal");
        let err = open_with(None, Binding::Arguments("a"), sealed).expect_err("no keyring");
        let text = err.to_string();
        assert!(
            text.contains("\"prod-2026\"") && text.contains("no keyring"),
            "{text}"
        );
        assert_eq!(
            open_with(None, Binding::Arguments("a"), vec![1]).expect("plain"),
            [1]
        );
    }
}
