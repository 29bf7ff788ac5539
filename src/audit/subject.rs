//! The only form of a subject the audit log accepts: a keyed hash of 保険者番号 + 被保険者番号.
//!
//! In: a secret key and the two validated numbers (or an [`identifiers::Subject`](crate::identifiers::Subject)).
//! Out: a [`SubjectHash`], which only [`SubjectHasher`] makes or [`SubjectHash::from_hex`] re-reads
//! from its 64-hex form. Errors here never echo a rejected value: it may be a raw 被保険者番号.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::hex;

/// Shortest accepted [`SubjectHasher`] key, in bytes (128 bits). Use 32 random bytes.
pub const MIN_SUBJECT_KEY_BYTES: usize = 16;

/// Turns 保険者番号 + 被保険者番号 into the only form of a subject the audit log accepts.
///
/// Why keyed: a 被保険者番号 is 10 digits and a 保険者番号 6, so there are at most 10^16 subjects and
/// far fewer real ones (insurer numbers are public, insured numbers dense). A plain SHA-256 of them
/// could be reversed by trying every candidate in hours on one GPU, which would make the audit log
/// a list of personal identifiers. HMAC-SHA256 with a secret key held outside the log makes that
/// search impossible for whoever holds only the log, while the hub (holding the key) can still find
/// every event about one person by hashing their numbers again.
///
/// The two numbers are encoded with a domain tag and a length prefix each (`u64` big-endian byte
/// length, then the bytes), so `("12", "3")` and `("1", "23")` hash differently. The hasher does not
/// normalise: pass the validated canonical form (half-width digits, no spaces), or the same person
/// gets two hashes. Rotating the key changes every hash: events before and after no longer link.
#[derive(Clone)]
pub struct SubjectHasher {
    mac: Hmac<Sha256>,
}

const SUBJECT_DOMAIN: &[u8] = b"kaigo-hub/audit-subject/v1\0";

impl SubjectHasher {
    /// A hasher with this secret key (at least [`MIN_SUBJECT_KEY_BYTES`]).
    pub fn new(key: &[u8]) -> Result<Self, SubjectKeyError> {
        if key.len() < MIN_SUBJECT_KEY_BYTES {
            return Err(SubjectKeyError { len: key.len() });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|_| SubjectKeyError { len: key.len() })?;
        Ok(SubjectHasher { mac })
    }

    /// The keyed hash of 保険者番号 `insurer` + 被保険者番号 `insured`: 64 lowercase hex characters.
    pub fn hash(&self, insurer: &str, insured: &str) -> SubjectHash {
        let mut mac = self.mac.clone();
        mac.update(SUBJECT_DOMAIN);
        for part in [insurer, insured] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        SubjectHash(hex(&mac.finalize().into_bytes()))
    }

    /// The keyed hash of a validated [`Subject`](crate::identifiers::Subject): the same as
    /// [`SubjectHasher::hash`] of its two numbers as carried.
    pub fn hash_subject(&self, subject: &crate::identifiers::Subject) -> SubjectHash {
        self.hash(
            subject.insurer_number.as_str(),
            subject.insured_number.as_str(),
        )
    }
}

impl fmt::Debug for SubjectHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectHasher { key: <secret> }")
    }
}

/// A [`SubjectHasher`] key that is too short to be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the subject hashing key is {len} bytes; use at least {MIN_SUBJECT_KEY_BYTES} random bytes (32 recommended)"
)]
pub struct SubjectKeyError {
    /// The length given.
    pub len: usize,
}

/// A subject's keyed hash: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectHash(String);

impl SubjectHash {
    /// Re-read a hash that travelled as text (a message header, a query). Refuses anything that is
    /// not 64 lowercase hex characters, which is what keeps raw numbers out of the log.
    pub fn from_hex(text: &str) -> Result<SubjectHash, SubjectHashError> {
        if is_hex64(text) {
            Ok(SubjectHash(text.to_string()))
        } else {
            Err(SubjectHashError { len: text.len() })
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a subject hash. Does not echo it: it may be a raw 被保険者番号.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a subject must be the 64 lowercase hex characters made by SubjectHasher, got {len} bytes; never pass a raw 保険者番号/被保険者番号"
)]
pub struct SubjectHashError {
    /// Length of the rejected text.
    pub len: usize,
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::super::tests::hasher;
    use super::*;

    #[test]
    fn subject_hash_is_keyed_and_stable() {
        let a = hasher();
        let b = SubjectHasher::new(b"another key, also 32 bytes long!").expect("long enough");
        let h1 = a.hash("131011", "0000012345");
        assert_eq!(h1, a.hash("131011", "0000012345"));
        assert_ne!(h1, b.hash("131011", "0000012345"));
        assert_ne!(h1, a.hash("131011", "0000012346"));
        assert!(is_hex64(h1.as_str()));
        // Pinned (computed independently with Python's hmac) so that an accidental change of
        // encoding, which would unlink every earlier log, fails.
        assert_eq!(
            h1.as_str(),
            "369c34f6403452aac4ea39f9089c4c2abcff57ca0c1302f8c7d8b39bc2fd444a"
        );
    }

    #[test]
    fn subject_hash_is_length_prefixed() {
        let h = hasher();
        assert_ne!(h.hash("12", "3"), h.hash("1", "23"));
        assert_ne!(h.hash("", "123"), h.hash("123", ""));
    }

    #[test]
    fn short_subject_key_is_refused_and_debug_hides_the_key() {
        assert_eq!(
            SubjectHasher::new(b"short").map(|_| ()),
            Err(SubjectKeyError { len: 5 })
        );
        assert!(!format!("{:?}", hasher()).contains("thirty-two"));
    }

    #[test]
    fn a_subject_hashes_as_its_carried_numbers() {
        let padded = crate::identifiers::Subject::new("00132019", "0000100001").expect("valid");
        assert_eq!(
            hasher().hash_subject(&padded),
            hasher().hash("132019", "0000100001")
        );
    }

    #[test]
    fn raw_insured_number_is_not_a_subject_hash() {
        let err = SubjectHash::from_hex("0000012345").expect_err("not a hash");
        assert!(!err.to_string().contains("0000012345"));
        let upper = "A".repeat(64);
        assert!(SubjectHash::from_hex(&upper).is_err());
        let hash = hasher().hash("131011", "0000012345");
        assert_eq!(SubjectHash::from_hex(hash.as_str()), Ok(hash));
    }
}
