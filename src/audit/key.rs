//! The secret that keys the audit chains: [`AuditKey`] (setting `audit_key`, or the file
//! `audit_key_file`, by default `<data_dir>/audit.key`, created 0600 with 32 random bytes by the
//! first writer) and the per-writer [`ChainKey`] derived from it, which seals every event of one
//! chain.
//!
//! In: the key's hex text or its file. Out: a [`ChainKey`] per writer (`hub`, `cli`), whose
//! [`ChainKey::id`] names that chain in the store and in `/metrics`, and which the chain's
//! [`super::AuditEvent::compute_hash`] uses. Must never write the key anywhere but its own file,
//! print it, or put it in an error.
//!
//! Why keyed: with a plain SHA-256 chain anyone who can write the log can edit an event and hash
//! every later event again, and the log verifies. An HMAC chain needs the key for that. The key
//! lives apart from the log, so that whoever can only write the log cannot re-seal it; the head of
//! every chain is also checkpointed in the store (`super::chains`), so a cut tail shows even to
//! someone who holds the key but not the store.
//!
//! Derivation (HMAC-SHA256 throughout, `K` = the audit key, `w` = the writer's name in ASCII):
//! the chain's sealing key is `HMAC(K, "kaigo-hub/audit-chain/v2\0" || w)`, and its id is
//! `w-` followed by the first 12 hex digits of `HMAC(K, "kaigo-hub/audit-chain-id/v2\0" || w)`.
//! A file written by one writer therefore does not verify as another writer's, and two hubs with
//! their own keys have their own chain ids in a shared store.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};

use super::hex;

/// Shortest accepted audit key, in bytes (128 bits). Generated keys have 32.
pub const MIN_AUDIT_KEY_BYTES: usize = 16;

/// Bytes of a generated key.
const GENERATED_KEY_BYTES: usize = 32;

const CHAIN_KEY_DOMAIN: &[u8] = b"kaigo-hub/audit-chain/v2\0";
const CHAIN_ID_DOMAIN: &[u8] = b"kaigo-hub/audit-chain-id/v2\0";

/// The secret every audit chain of a hub is keyed with. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey {
    bytes: Vec<u8>,
}

impl AuditKey {
    /// A key with these bytes (at least [`MIN_AUDIT_KEY_BYTES`]).
    pub fn new(bytes: &[u8]) -> Result<AuditKey, AuditKeyError> {
        if bytes.len() < MIN_AUDIT_KEY_BYTES {
            return Err(AuditKeyError::TooShort {
                bytes: bytes.len(),
                file: None,
            });
        }
        Ok(AuditKey {
            bytes: bytes.to_vec(),
        })
    }

    /// A key written as hex (surrounding whitespace ignored), as in `audit_key` and the key file.
    pub fn from_hex(text: &str) -> Result<AuditKey, AuditKeyError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuditKeyError::NotHex { file: None });
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect();
        AuditKey::new(&bytes)
    }

    /// 32 bytes from the operating system's secure random source.
    pub fn generate() -> Result<AuditKey, AuditKeyError> {
        let bytes = crate::key_file::random(GENERATED_KEY_BYTES).ok_or(AuditKeyError::NoRandom)?;
        AuditKey::new(&bytes)
    }

    /// The key of `writer`'s chain (`hub`, `cli`).
    pub fn chain(&self, writer: &str) -> ChainKey {
        let derive = |domain: &[u8]| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.bytes)
                .expect("HMAC takes a key of any length");
            mac.update(domain);
            mac.update(writer.as_bytes());
            mac.finalize().into_bytes()
        };
        let id_hash = hex(&derive(CHAIN_ID_DOMAIN));
        let mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&derive(CHAIN_KEY_DOMAIN))
            .expect("HMAC takes a key of any length");
        ChainKey {
            id: format!("{writer}-{}", &id_hash[..12]),
            mac: Some(mac),
        }
    }

    /// Reads the key file at `path`. A missing file is [`AuditKeyError::Missing`]; never creates
    /// one (what `audit verify` uses).
    pub fn read(path: &Path) -> Result<AuditKey, AuditKeyError> {
        crate::key_file::check_private(path).map_err(|why| AuditKeyError::NotPrivate {
            path: path.to_path_buf(),
            why,
        })?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                AuditKeyError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                AuditKeyError::Io {
                    path: path.to_path_buf(),
                    action: "read",
                    source: e,
                }
            }
        })?;
        AuditKey::from_hex(&text).map_err(|e| e.in_file(path))
    }

    /// Reads the key file at `path`, or, when there is none, creates it (mode 0600, its directory
    /// too) with a new random key: what a writer (`serve`, the CLI's consent commands) does on
    /// first use. The second element says what was done, for the operator, when a file was made.
    pub fn read_or_create(path: &Path) -> Result<(AuditKey, Option<String>), AuditKeyError> {
        match AuditKey::read(path) {
            Err(AuditKeyError::Missing { .. }) => {}
            other => return other.map(|k| (k, None)),
        }
        let key = AuditKey::generate()?;
        match crate::key_file::create(path, &key.bytes) {
            Ok(crate::key_file::Created::Made) => Ok((
                key,
                Some(format!(
                    "created the audit key {} (mode 0600); keep a copy apart from the audit log: `kaigo-hub audit verify` needs it",
                    path.display()
                )),
            )),
            // Another process made it a moment ago: use theirs.
            Ok(crate::key_file::Created::AlreadyThere) => AuditKey::read(path).map(|k| (k, None)),
            Err((action, source)) => Err(AuditKeyError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }),
        }
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey { <secret> }")
    }
}

/// How one chain's events are sealed: keyed for a writer's chain ([`AuditKey::chain`]), or the
/// unkeyed SHA-256 of logs written before keyed chains ([`ChainKey::unkeyed`], to read them).
#[derive(Clone)]
pub struct ChainKey {
    id: String,
    mac: Option<Hmac<sha2::Sha256>>,
}

impl ChainKey {
    /// The unkeyed chain of kaigo-hub before version 2 of the chain (`hash = SHA-256(prev_hash ||
    /// canonical)`): only to read and check such a log. Anyone can re-seal it.
    pub fn unkeyed() -> ChainKey {
        ChainKey {
            id: "unkeyed".into(),
            mac: None,
        }
    }

    /// The chain's id: `<writer>-<12 hex>` (or `unkeyed`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Is this a keyed chain?
    pub fn is_keyed(&self) -> bool {
        self.mac.is_some()
    }

    /// `hex(HMAC(chain key, prev_hash || canonical))`, or SHA-256 for an unkeyed chain.
    pub(super) fn seal(&self, prev_hash: &str, canonical: &[u8]) -> String {
        match &self.mac {
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(prev_hash.as_bytes());
                mac.update(canonical);
                hex(&mac.finalize().into_bytes())
            }
            None => {
                use sha2::Digest;
                let mut digest = sha2::Sha256::new();
                digest.update(prev_hash.as_bytes());
                digest.update(canonical);
                hex(&digest.finalize())
            }
        }
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainKey {{ id: {:?}, key: <secret> }}", self.id)
    }
}

/// An audit key that cannot be used. Never shows the key.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    /// Shorter than [`MIN_AUDIT_KEY_BYTES`].
    #[error(
        "{}the audit key is {bytes} bytes; use at least {MIN_AUDIT_KEY_BYTES} random bytes, written as hex (32 recommended)",
        file_prefix(.file)
    )]
    TooShort {
        /// Its length.
        bytes: usize,
        /// The file it came from, if any.
        file: Option<PathBuf>,
    },
    /// Not hex digits.
    #[error(
        "{}the audit key must be hex digits (an even number of 0-9, a-f), e.g. 64 of them for 32 bytes",
        file_prefix(.file)
    )]
    NotHex {
        /// The file it came from, if any.
        file: Option<PathBuf>,
    },
    /// The key file is not there.
    #[error(
        "{}: the audit key file is not there. It is made by `kaigo-hub serve` (or a consent command) on first use; to verify, point audit_key_file (KAIGO_AUDIT_KEY_FILE) at the key the log was written with, or give it as audit_key (KAIGO_AUDIT_KEY)",
        .path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Other users may read or change the key file.
    #[error("{}: {why}", .path.display())]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to mend it.
        why: String,
    },
    /// The operating system refused.
    #[error("{}: could not {action} the audit key file: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// No random bytes to make a key with.
    #[error("the operating system's random source failed; no audit key was made")]
    NoRandom,
}

impl AuditKeyError {
    fn in_file(self, path: &Path) -> AuditKeyError {
        let file = Some(path.to_path_buf());
        match self {
            AuditKeyError::TooShort { bytes, .. } => AuditKeyError::TooShort { bytes, file },
            AuditKeyError::NotHex { .. } => AuditKeyError::NotHex { file },
            other => other,
        }
    }
}

/// Where a key that does not do came from: its file, or else the setting.
fn file_prefix(file: &Option<PathBuf>) -> String {
    match file {
        Some(p) => format!("{}: ", p.display()),
        None => "audit_key (KAIGO_AUDIT_KEY): ".into(),
    }
}

/// The audit key the settings give: `audit_key` (hex) when set, else the file `file`
/// (`Config::audit_key_path`), which a writer (`create`) makes when there is none. The second
/// element says what was made, for the operator.
pub fn from_settings(
    hex: Option<&str>,
    file: &Path,
    create: bool,
) -> Result<(AuditKey, Option<String>), AuditKeyError> {
    match hex {
        Some(text) => AuditKey::from_hex(text).map(|k| (k, None)),
        None if create => AuditKey::read_or_create(file),
        None => AuditKey::read(file).map(|k| (k, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kaigo-audit-key-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn chain_keys_and_ids_differ_per_writer_and_per_key_and_are_pinned() {
        let key = AuditKey::new(b"audit key: thirty-two bytes long").expect("long enough");
        let other = AuditKey::new(b"another audit key, 32 bytes long").expect("long enough");
        let (hub, cli) = (key.chain("hub"), key.chain("cli"));
        assert_ne!(hub.seal("0", b"x"), cli.seal("0", b"x"));
        assert_ne!(hub.seal("0", b"x"), other.chain("hub").seal("0", b"x"));
        assert_ne!(hub.id(), other.chain("hub").id());
        assert!(
            hub.id().starts_with("hub-") && hub.id().len() == 16,
            "{}",
            hub.id()
        );
        // Pinned (computed independently with Python's hmac), so that a change of derivation,
        // which would make every existing log fail to verify, fails here first.
        assert_eq!(hub.id(), "hub-c4a98fa4d46f");
        assert_eq!(
            hub.seal("0", b"x"),
            "b65668fd54c1fcdcad2a1b816ce477e8db8cd024f1ff0d3b989d5b057debf9f4"
        );
    }

    #[test]
    fn unkeyed_chain_is_plain_sha256() {
        use sha2::Digest;
        let mut d = sha2::Sha256::new();
        d.update(b"0x");
        assert_eq!(ChainKey::unkeyed().seal("0", b"x"), hex(&d.finalize()));
        assert!(!ChainKey::unkeyed().is_keyed());
    }

    #[test]
    fn key_text_is_checked_and_never_echoed() {
        assert!(matches!(
            AuditKey::from_hex("abcd"),
            Err(AuditKeyError::TooShort { bytes: 2, .. })
        ));
        let err = AuditKey::from_hex("secretsecretsecretsecretsecret!!").expect_err("not hex");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(AuditKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(!format!("{:?}", AuditKey::from_hex(&"ab".repeat(32))).contains("ab"));
    }

    #[test]
    fn a_missing_key_file_is_created_0600_once_and_read_is_never_a_create() {
        let dir = scratch("create");
        let path = dir.join("audit.key");
        assert!(matches!(
            AuditKey::read(&path),
            Err(AuditKeyError::Missing { .. })
        ));
        assert!(!path.exists(), "read never creates");
        let (made, said) = AuditKey::read_or_create(&path).expect("created");
        assert!(said.expect("says so").contains("created the audit key"));
        let (again, said) = AuditKey::read_or_create(&path).expect("read back");
        assert_eq!((made.clone(), said), (again, None));
        assert_eq!(AuditKey::read(&path).expect("reads"), made);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
