//! Resource ids for FHIR out: deterministic, so a re-sent document PUTs the same resources again,
//! and private, so an id never reveals the 被保険者番号 it was made from.
//!
//! In: the deployment's secret key (the subject key, `subject_key` / `<data_dir>/subject.key`) and
//! the parts that identify a resource. Out: a [`ResourceId`], 64 lowercase hex characters (a valid
//! FHIR `id`). Must never hash a number without the key: a 被保険者番号 has 10 digits, so an
//! unkeyed hash of one is reversed by trying them all.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audit::MIN_SUBJECT_KEY_BYTES;

/// The domain tag: the same key hashes subjects for the audit log with another tag, so a resource
/// id never equals a subject hash made from the same numbers.
const FHIR_ID_DOMAIN: &[u8] = b"kaigo-hub/fhir-id/v1\0";

/// Makes [`ResourceId`]s with a deployment's key (HMAC-SHA256).
#[derive(Clone)]
pub struct ResourceIds {
    mac: Hmac<Sha256>,
}

/// A resource id made by [`ResourceIds`]: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceId(String);

impl ResourceId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's first 128 bits as a UUID (RFC 9562 version 8, the custom form: version and
    /// variant bits set, the rest the id's), for a document Bundle's `fullUrl` `urn:uuid:…`.
    pub fn uuid(&self) -> String {
        let h = self.0.as_bytes();
        let nibble = |i: usize| (h[i] as char).to_digit(16).unwrap_or(0);
        let variant = std::char::from_digit((nibble(16) & 0x3) | 0x8, 16).unwrap_or('8');
        let mut out = String::with_capacity(36);
        for (i, &b) in h.iter().take(32).enumerate() {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push('-');
            }
            out.push(match i {
                12 => '8',
                16 => variant,
                _ => b as char,
            });
        }
        out
    }
}

/// A key too short to be secret. Never shows the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the FHIR id key (the subject key) is {len} bytes; use at least {MIN_SUBJECT_KEY_BYTES} random bytes (32 recommended): set subject_key or let the hub make <data_dir>/subject.key"
)]
pub struct IdKeyError {
    /// The length given.
    pub len: usize,
}

impl ResourceIds {
    /// Ids keyed with `key` (at least [`MIN_SUBJECT_KEY_BYTES`]).
    pub fn new(key: &[u8]) -> Result<Self, IdKeyError> {
        if key.len() < MIN_SUBJECT_KEY_BYTES {
            return Err(IdKeyError { len: key.len() });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|_| IdKeyError { len: key.len() })?;
        Ok(ResourceIds { mac })
    }

    /// The id of the resource that `parts` identify. Each part is length-prefixed (`u64`
    /// big-endian), so `["ab", "c"]` and `["a", "bc"]` give different ids.
    pub fn id(&self, parts: &[&str]) -> ResourceId {
        let mut mac = self.mac.clone();
        mac.update(FHIR_ID_DOMAIN);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        ResourceId(crate::key_file::hex(&mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for ResourceIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceIds { key: <secret> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn an_id_is_a_function_of_the_key_and_the_parts() {
        let ids = ResourceIds::new(KEY).expect("key");
        let a = ids.id(&["Patient", "subject", "131011", "0000012345"]);
        assert_eq!(a, ids.id(&["Patient", "subject", "131011", "0000012345"]));
        assert_eq!(a.as_str().len(), 64);
        assert!(
            a.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let other_key = ResourceIds::new(b"fedcba9876543210fedcba9876543210").expect("key");
        assert_ne!(
            a,
            other_key.id(&["Patient", "subject", "131011", "0000012345"])
        );
        assert_ne!(a, ids.id(&["Patient", "subject", "131011", "0000012346"]));
        assert_ne!(ids.id(&["ab", "c"]), ids.id(&["a", "bc"]));
    }

    #[test]
    fn an_id_is_not_the_unkeyed_hash_nor_the_audit_subject_hash() {
        let ids = ResourceIds::new(KEY).expect("key");
        let id = ids.id(&["131011", "0000012345"]);
        let plain = crate::key_file::hex(&sha2::Sha256::digest(b"1310110000012345"));
        assert_ne!(id.as_str(), plain);
        let subject = crate::audit::SubjectHasher::new(KEY)
            .expect("key")
            .hash("131011", "0000012345");
        assert_ne!(id.as_str(), subject.as_str());
    }

    #[test]
    fn the_uuid_of_an_id_is_a_version_8_uuid_of_its_first_128_bits() {
        let id =
            ResourceId("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into());
        assert_eq!(id.uuid(), "01234567-89ab-8def-8123-456789abcdef");
        let id =
            ResourceId("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff".into());
        assert_eq!(id.uuid(), "ffffffff-ffff-8fff-bfff-ffffffffffff");
    }

    #[test]
    fn a_short_key_is_refused_without_showing_it() {
        let e = ResourceIds::new(b"short").expect_err("too short");
        assert_eq!(e.len, 5);
        assert!(!e.to_string().contains("short"));
        assert!(!format!("{:?}", ResourceIds::new(KEY).expect("key")).contains("0123"));
    }
}
