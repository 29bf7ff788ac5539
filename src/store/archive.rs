//! The message archive: each message's original bytes as ingress kept it (keyed by envelope id,
//! with sender, format, time) and each canonical document the translate hop made of it
//! (envelope, document index, kind, subject hash), kept `archive_keep_days` for traces, body
//! views and replay from the original. In the store (SQLite or PostgreSQL, tables
//! `archive_originals` and `archive_documents`) but sealed with a key kept apart from it
//! (`archive_key_file`): AES-256-GCM, a fresh random 96-bit nonce per row, the row's identity
//! (`original|<envelope>`, `document|<envelope>|<index>`) as associated data, so a sealed body
//! moved to another row does not open. Beside each sealed body the store keeps, in clear, only
//! what the audit log may hold too: ids, codes, times and keyed subject hashes — never a name, a
//! number or a body. Each row names the key that sealed it ([`ArchiveKey::id`], a keyed digest,
//! not the key), so a body sealed under another key is refused saying so instead of "corrupt".
//!
//! In: [`Row`]s to keep (from `pipeline::archiver`), a [`Query`] or an envelope id. Out: the
//! metadata that matches, or a body opened with the key. Must never: write a body in clear,
//! answer a body whose seal does not verify, or be needed for the hub to run (no key file: no
//! archive, [`crate::store::Store::archive`] is unused).

use super::StoreError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::{Path, PathBuf};

/// Length of the archive key, bytes (AES-256).
pub const KEY_BYTES: usize = 32;

/// The key that seals the archive's bodies.
pub struct ArchiveKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArchiveKey({})", self.id)
    }
}

/// Why the archive key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("archive_key_file {path}: {what}")]
    File {
        /// The key file.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// The file does not hold a key (never echoed: it is a secret).
    #[error(
        "archive_key_file {path}: expected {hex} hex digits (a {KEY_BYTES}-byte key) on one line; \
         `kaigo-hub serve --demo` makes one, or write 64 hex digits from a secure random source"
    )]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// How many hex digits are expected.
        hex: usize,
    },
}

impl ArchiveKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> ArchiveKey {
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes are an AES-256-GCM key");
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(bytes)
            .expect("HMAC takes a key of any length");
        mac.update(b"kaigo-hub archive key id");
        let digest = mac.finalize().into_bytes();
        ArchiveKey {
            key: LessSafeKey::new(unbound),
            id: crate::key_file::hex(&digest[..8]),
        }
    }

    /// Reads the key file (64 hex digits, surrounding white space ignored).
    pub fn read(path: &Path) -> Result<ArchiveKey, KeyError> {
        crate::key_file::check_private(path).map_err(|what| KeyError::File {
            path: path.to_path_buf(),
            what,
        })?;
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
            path: path.to_path_buf(),
            what: format!("cannot read it: {e}"),
        })?;
        let hex = text.trim();
        let malformed = || KeyError::Malformed {
            path: path.to_path_buf(),
            hex: KEY_BYTES * 2,
        };
        if hex.len() != KEY_BYTES * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| malformed())?;
        }
        Ok(ArchiveKey::from_bytes(&bytes))
    }

    /// Reads the key file, making it first (mode 0600, 32 bytes from the operating system's
    /// secure random source) when it does not exist: what `serve --demo` does. Never replaces
    /// a file that is there.
    pub fn read_or_make(path: &Path) -> Result<(ArchiveKey, bool), KeyError> {
        if path.exists() {
            return Ok((ArchiveKey::read(path)?, false));
        }
        let key = crate::key_file::random(KEY_BYTES).ok_or_else(|| KeyError::File {
            path: path.to_path_buf(),
            what: "the operating system's random source failed; no key was made".into(),
        })?;
        let made = crate::key_file::create(path, &key).map_err(|(action, e)| KeyError::File {
            path: path.to_path_buf(),
            what: format!("could not {action} it: {e}"),
        })?;
        Ok((
            ArchiveKey::read(path)?,
            made == crate::key_file::Created::Made,
        ))
    }

    /// Names this key without revealing it: the first 8 bytes of HMAC-SHA256(key, a fixed
    /// label), hex. Kept beside every sealed body.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the row `aad` names: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Result<Sealed, StoreError> {
        let nonce_bytes = crate::key_file::random(NONCE_LEN).ok_or_else(|| {
            StoreError("the operating system's random source failed; nothing was sealed".into())
        })?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut body,
            )
            .map_err(|_| StoreError("sealing an archive row failed".into()))?;
        out.extend_from_slice(&body);
        Ok(Sealed {
            key_id: self.id.clone(),
            bytes: out,
        })
    }

    /// Opens what [`ArchiveKey::seal`] sealed for the row `aad` names.
    pub fn open(&self, aad: &str, sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        if sealed.key_id != self.id {
            return Err(OpenError::OtherKey {
                row: aad.to_string(),
                sealed_with: sealed.key_id.clone(),
                in_force: self.id.clone(),
            });
        }
        let broken = || OpenError::Broken {
            row: aad.to_string(),
        };
        if sealed.bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(broken());
        }
        let (nonce, body) = sealed.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| broken())?;
        let mut body = body.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
            .map_err(|_| broken())?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

/// Why an archived body could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    /// Sealed under another key than the one in force.
    #[error(
        "archive row {row} was sealed with the key {sealed_with}, but archive_key_file holds the \
         key {in_force}: point archive_key_file at the key that sealed it (it cannot be read \
         otherwise, and goes at archive_keep_days)"
    )]
    OtherKey {
        /// The row (`original|<envelope>`).
        row: String,
        /// [`ArchiveKey::id`] of the key that sealed it.
        sealed_with: String,
        /// [`ArchiveKey::id`] of the key in force.
        in_force: String,
    },
    /// The seal does not verify: the stored bytes were changed or belong to another row.
    #[error(
        "archive row {row} does not verify under the key that sealed it: the stored bytes were changed or moved from another row"
    )]
    Broken {
        /// The row.
        row: String,
    },
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A body as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// [`ArchiveKey::id`] of the sealing key.
    pub key_id: String,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub bytes: Vec<u8>,
}

/// What is kept in clear of a message as it arrived (ids, codes, hashes only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Original {
    /// Envelope id.
    pub envelope: String,
    /// When ingress kept it (RFC 3339 UTC, `pipeline::clock::now_rfc3339`'s form: compares as
    /// text).
    pub at: String,
    /// The authenticated sender (party id).
    pub sender: String,
    /// Wire format (`hl7v2`, `fhir`, `xml`, `csv`).
    pub format: String,
    /// The mapping label (`id@version`, comma-separated), empty when none identified it.
    pub mapping: String,
    /// What became of it at ingress: `accepted`, `quarantined` or `dead`.
    pub outcome: String,
    /// The canonical kinds the mapping made of it (`InsuranceCard@1`), in first-seen order.
    pub kinds: Vec<String>,
    /// The keyed hashes of the people it names, as far as ingress knew them.
    pub subjects: Vec<String>,
}

/// What is kept in clear of one canonical document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// Envelope id.
    pub envelope: String,
    /// Its index in the envelope (`x-kaigo-doc-index`).
    pub index: u32,
    /// When the translate hop kept it.
    pub at: String,
    /// Canonical kind (`InsuranceCard@1`).
    pub kind: String,
    /// Its person's keyed hash, when it names one.
    pub subject: Option<String>,
    /// The mapping label that made it.
    pub mapping: String,
}

impl Original {
    /// The associated data its body is sealed for.
    pub fn aad(envelope: &str) -> String {
        format!("original|{envelope}")
    }
}

impl Document {
    /// The associated data its body is sealed for.
    pub fn aad(envelope: &str, index: u32) -> String {
        format!("document|{envelope}|{index}")
    }
}

/// One row to keep.
#[derive(Debug, Clone)]
pub enum Row {
    /// A message's original bytes.
    Original(Original, Sealed),
    /// One canonical document.
    Document(Document, Sealed),
}

/// Which archived messages to list; every field set must match. Newest first, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// This envelope.
    pub envelope: Option<String>,
    /// Sent by this party.
    pub sender: Option<String>,
    /// Holding a document of this kind: `InsuranceCard` (any version) or `InsuranceCard@1`.
    pub kind: Option<String>,
    /// Naming this person (keyed subject hash, 64 hex).
    pub subject: Option<String>,
    /// Kept at or after this time (RFC 3339 UTC as the archive writes it).
    pub since: Option<String>,
    /// Kept strictly before this time.
    pub until: Option<String>,
    /// One of these envelopes (a recipient search found them in the audit log).
    pub among: Option<Vec<String>>,
    /// At most this many (0: the default, 200).
    pub limit: usize,
}

impl Query {
    /// The limit in force.
    pub fn limit(&self) -> usize {
        if self.limit == 0 { 200 } else { self.limit }
    }

    /// The `LIKE` pattern that finds `kind` in a `,A@1,B@2,` list.
    pub fn kind_pattern(kind: &str) -> String {
        let kind = kind.replace(['%', '_', '\\'], "");
        if kind.contains('@') {
            format!("%,{kind},%")
        } else {
            format!("%,{kind}@%")
        }
    }

    /// Does `o` match (the rule every database's SQL follows; its `documents` are those kept of
    /// it)?
    pub fn matches(&self, o: &Original, documents: &[Document]) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let kind_ok = self.kind.as_deref().is_none_or(|k| {
            let hit =
                |have: &str| have == k || (!k.contains('@') && have.split('@').next() == Some(k));
            o.kinds.iter().any(|h| hit(h)) || documents.iter().any(|d| hit(&d.kind))
        });
        let subject_ok = self.subject.as_deref().is_none_or(|s| {
            o.subjects.iter().any(|h| h == s)
                || documents.iter().any(|d| d.subject.as_deref() == Some(s))
        });
        same(&self.envelope, &o.envelope)
            && same(&self.sender, &o.sender)
            && kind_ok
            && subject_ok
            && self.since.as_deref().is_none_or(|t| o.at.as_str() >= t)
            && self.until.as_deref().is_none_or(|t| o.at.as_str() < t)
            && self.among.as_ref().is_none_or(|a| a.contains(&o.envelope))
    }
}

/// `,a,b,` — a list as the databases keep it, so that `LIKE '%,a,%'` finds an element.
pub fn joined(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(",{},", items.join(","))
    }
}

/// The elements of a [`joined`] list.
pub fn split(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The archive tables of a store. Every call is blocking, like [`crate::store::Store`]'s.
pub trait ArchiveStore: Send + Sync {
    /// Keeps `rows` in one transaction (all or none); a row already kept (same envelope, same
    /// document index) is replaced: a redelivered message is archived once.
    fn archive_put(&self, rows: &[Row]) -> Result<(), StoreError>;
    /// The original of `envelope`, if kept.
    fn archived_original(&self, envelope: &str) -> Result<Option<(Original, Sealed)>, StoreError>;
    /// The documents of `envelope`, by index.
    fn archived_documents(&self, envelope: &str) -> Result<Vec<(Document, Sealed)>, StoreError>;
    /// The originals that match `q` ([`Query::matches`]), newest first, at most `q.limit()`.
    fn archive_search(&self, q: &Query) -> Result<Vec<Original>, StoreError>;
    /// Forgets at most `at_most` originals and at most `at_most` documents kept before `before`
    /// (RFC 3339 UTC); returns how many rows it forgot.
    fn archive_prune(&self, before: &str, at_most: usize) -> Result<usize, StoreError>;
}

/// The archive as the console and the CLI read it: a store's tables and the key.
pub struct Archive<'a> {
    /// The tables.
    pub store: &'a dyn ArchiveStore,
    /// The key in force.
    pub key: &'a ArchiveKey,
}

/// A document opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedDocument {
    /// Its metadata.
    pub meta: Document,
    /// The canonical JSON.
    pub json: Vec<u8>,
}

impl Archive<'_> {
    /// The original bytes of `envelope` with their metadata, opened; `None` when not kept (never
    /// archived, or past `archive_keep_days`).
    pub fn original(&self, envelope: &str) -> Result<Option<(Original, Vec<u8>)>, OpenError> {
        let Some((meta, sealed)) = self.store.archived_original(envelope)? else {
            return Ok(None);
        };
        let body = self.key.open(&Original::aad(envelope), &sealed)?;
        Ok(Some((meta, body)))
    }

    /// The canonical documents of `envelope`, opened, by index.
    pub fn documents(&self, envelope: &str) -> Result<Vec<OpenedDocument>, OpenError> {
        self.store
            .archived_documents(envelope)?
            .into_iter()
            .map(|(meta, sealed)| {
                let json = self
                    .key
                    .open(&Document::aad(envelope, meta.index), &sealed)?;
                Ok(OpenedDocument { meta, json })
            })
            .collect()
    }
}

/// The contract every database's archive tables keep, run by each one's tests (SQLite below,
/// PostgreSQL in `postgres.rs`).
#[cfg(test)]
pub(crate) fn check_contract(store: &dyn ArchiveStore, tag: &str) {
    let key = ArchiveKey::from_bytes(&[7u8; KEY_BYTES]);
    let env = |n: u32| format!("{tag}-env-{n}");
    let original = |n: u32, at: &str, sender: &str| Original {
        envelope: env(n),
        at: at.into(),
        sender: sender.into(),
        format: "hl7v2".into(),
        mapping: "ssmix2-adt@1".into(),
        outcome: "accepted".into(),
        kinds: vec!["InsuredPerson@1".into()],
        subjects: vec![format!("{n:064x}")],
    };
    let sealed = |aad: &str, body: &str| key.seal(aad, body.as_bytes()).expect("sealed");
    let rows = vec![
        Row::Original(
            original(1, "2026-01-01T00:00:00.000Z", "hospital-a"),
            sealed(&Original::aad(&env(1)), "MSH|one"),
        ),
        Row::Original(
            original(2, "2026-01-02T00:00:00.000Z", "hospital-b"),
            sealed(&Original::aad(&env(2)), "MSH|two"),
        ),
        Row::Document(
            Document {
                envelope: env(2),
                index: 0,
                at: "2026-01-02T00:00:01.000Z".into(),
                kind: "InsuranceCard@1".into(),
                subject: Some(format!("{:064x}", 99)),
                mapping: "card@1".into(),
            },
            sealed(&Document::aad(&env(2), 0), "{\"doc\":0}"),
        ),
    ];
    store.archive_put(&rows).expect("put");
    // Archived again (a redelivery): replaced, not doubled.
    store.archive_put(&rows[1..]).expect("put again");
    let archive = Archive { store, key: &key };
    let (meta, body) = archive.original(&env(1)).expect("read").expect("kept");
    assert_eq!(body, b"MSH|one");
    assert_eq!(meta, original(1, "2026-01-01T00:00:00.000Z", "hospital-a"));
    let docs = archive.documents(&env(2)).expect("read");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].json, b"{\"doc\":0}");
    assert_eq!(docs[0].meta.kind, "InsuranceCard@1");
    assert!(archive.original(&format!("{tag}-none")).unwrap().is_none());
    let found = |q: Query| -> Vec<String> {
        let mut q = q;
        q.among.get_or_insert_with(|| vec![env(1), env(2), env(3)]);
        store
            .archive_search(&q)
            .expect("search")
            .into_iter()
            .map(|o| o.envelope)
            .collect()
    };
    assert_eq!(
        found(Query::default()),
        vec![env(2), env(1)],
        "newest first"
    );
    assert_eq!(
        found(Query {
            sender: Some("hospital-a".into()),
            ..Query::default()
        }),
        vec![env(1)]
    );
    assert_eq!(
        found(Query {
            envelope: Some(env(2)),
            ..Query::default()
        }),
        vec![env(2)]
    );
    for kind in ["InsuranceCard", "InsuranceCard@1"] {
        assert_eq!(
            found(Query {
                kind: Some(kind.into()),
                ..Query::default()
            }),
            vec![env(2)],
            "{kind}: from the document kept at translate"
        );
    }
    assert!(
        found(Query {
            kind: Some("InsuranceCard@2".into()),
            ..Query::default()
        })
        .is_empty()
    );
    assert_eq!(
        found(Query {
            subject: Some(format!("{:064x}", 1)),
            ..Query::default()
        }),
        vec![env(1)],
        "a subject ingress knew"
    );
    assert_eq!(
        found(Query {
            subject: Some(format!("{:064x}", 99)),
            ..Query::default()
        }),
        vec![env(2)],
        "a subject only a document names"
    );
    assert_eq!(
        found(Query {
            since: Some("2026-01-01T12:00:00.000Z".into()),
            ..Query::default()
        }),
        vec![env(2)]
    );
    assert_eq!(
        found(Query {
            until: Some("2026-01-01T12:00:00.000Z".into()),
            ..Query::default()
        }),
        vec![env(1)]
    );
    assert_eq!(
        found(Query {
            limit: 1,
            ..Query::default()
        }),
        vec![env(2)]
    );
    // Retention: everything kept before the 2nd goes (env 1's original), the rest stays.
    assert_eq!(
        store
            .archive_prune("2026-01-01T12:00:00.000Z", 1000)
            .unwrap(),
        1
    );
    assert!(archive.original(&env(1)).unwrap().is_none());
    assert!(archive.original(&env(2)).unwrap().is_some());
    assert_eq!(
        store
            .archive_prune("2026-01-03T00:00:00.000Z", 1000)
            .unwrap(),
        2
    );
    assert!(archive.documents(&env(2)).unwrap().is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_opens_only_with_its_key_and_for_its_own_row() {
        let key = ArchiveKey::from_bytes(&[1u8; KEY_BYTES]);
        let other = ArchiveKey::from_bytes(&[2u8; KEY_BYTES]);
        assert_ne!(key.id(), other.id());
        let plain = "PID|||0000100001^^^131011||山田^太郎".as_bytes();
        let sealed = key.seal("original|e1", plain).expect("sealed");
        assert!(
            !sealed.bytes.windows(plain.len()).any(|w| w == plain),
            "no plaintext in the sealed bytes"
        );
        assert_eq!(key.open("original|e1", &sealed).unwrap(), plain);
        // Two seals of one body differ (fresh nonce).
        assert_ne!(key.seal("original|e1", plain).unwrap().bytes, sealed.bytes);
        let e = other.open("original|e1", &sealed).unwrap_err();
        assert!(matches!(e, OpenError::OtherKey { .. }), "{e}");
        assert!(e.to_string().contains(key.id()), "{e}");
        // Another key claiming this key's id still cannot open it.
        let forged = Sealed {
            key_id: other.id().into(),
            bytes: sealed.bytes.clone(),
        };
        assert!(matches!(
            other.open("original|e1", &forged),
            Err(OpenError::Broken { .. })
        ));
        assert!(matches!(
            key.open("original|e2", &sealed),
            Err(OpenError::Broken { .. })
        ));
        let mut flipped = sealed.clone();
        let last = flipped.bytes.len() - 1;
        flipped.bytes[last] ^= 1;
        assert!(matches!(
            key.open("original|e1", &flipped),
            Err(OpenError::Broken { .. })
        ));
        let short = Sealed {
            key_id: key.id().into(),
            bytes: vec![0; 5],
        };
        assert!(matches!(
            key.open("original|e1", &short),
            Err(OpenError::Broken { .. })
        ));
    }

    #[test]
    fn the_key_file_is_made_once_and_a_malformed_one_is_refused_without_echoing_it() {
        let dir = std::env::temp_dir().join(format!("kaigo-archive-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("archive.key");
        let (a, made) = ArchiveKey::read_or_make(&path).expect("made");
        assert!(made);
        let (b, made) = ArchiveKey::read_or_make(&path).expect("read");
        assert!(!made);
        assert_eq!(a.id(), b.id(), "the same key");
        std::fs::write(&path, "00112233secret\n").unwrap();
        let e = ArchiveKey::read(&path).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = ArchiveKey::read(&dir.join("none")).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_query_matches_by_each_field_and_kinds_with_or_without_a_version() {
        let o = Original {
            envelope: "e".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            sender: "s".into(),
            kinds: vec!["InsuredPerson@1".into()],
            subjects: vec!["h1".into()],
            ..Original::default()
        };
        let d = Document {
            envelope: "e".into(),
            kind: "CarePlan@1".into(),
            subject: Some("h2".into()),
            ..Document::default()
        };
        let m = |q: Query| q.matches(&o, std::slice::from_ref(&d));
        assert!(m(Query::default()));
        assert!(m(Query {
            kind: Some("CarePlan".into()),
            ..Query::default()
        }));
        assert!(m(Query {
            kind: Some("InsuredPerson@1".into()),
            ..Query::default()
        }));
        assert!(!m(Query {
            kind: Some("Insured".into()),
            ..Query::default()
        }));
        assert!(m(Query {
            subject: Some("h2".into()),
            ..Query::default()
        }));
        assert!(!m(Query {
            subject: Some("h3".into()),
            ..Query::default()
        }));
        assert!(!m(Query {
            sender: Some("t".into()),
            ..Query::default()
        }));
        assert!(!m(Query {
            among: Some(vec!["f".into()]),
            ..Query::default()
        }));
        assert_eq!(Query::kind_pattern("Care%Plan"), "%,CarePlan@%");
        assert_eq!(split(&joined(&["a".into(), "b".into()])), vec!["a", "b"]);
        assert_eq!(joined(&[]), "");
    }

    #[test]
    fn sqlite_keeps_the_archive_contract() {
        let store = crate::store::sqlite::SqliteStore::in_memory().expect("sqlite");
        check_contract(&store, "unit");
    }
}
