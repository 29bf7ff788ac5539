//! The parties file: every hospital, provider, municipality and the platform itself that the
//! hub talks to — its id (医療機関コード / 事業所番号 / 保険者番号), kind, credentials (API key
//! hashes, client certificate fingerprints, MLLP peer addresses, AMQP user), what it receives in
//! which format, and where that is delivered. Loaded at start, and again on `serve`'s SIGHUP
//! ([`LiveParties`]: a file that does not load, or names another hub, leaves the parties in force);
//! an unknown key is an error with file:line:column. Must never: hold a secret in clear (API keys
//! are stored as SHA-256 hex).

use crate::consent::{PartyId, PartyKind, Recipient};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartiesFile {
    /// The hub's own identity as a consent recipient (kind `platform`).
    pub hub: HubIdentity,
    /// Everyone else.
    #[serde(default)]
    pub parties: Vec<Party>,
}

/// The hub as a party.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubIdentity {
    /// Its party id (10 digits), used as the recipient of consent #1 and #2.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// One party.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// 医療機関コード (10), 事業所番号 (10) or 保険者番号 (6).
    pub id: String,
    /// Display name (never personal data).
    #[serde(default)]
    pub name: String,
    /// `hospital`, `provider`, `municipality` or `platform`.
    pub kind: PartyKind,
    /// SHA-256 (hex) of each API key the party may present as `Authorization: Bearer <key>`.
    #[serde(default)]
    pub api_keys_sha256: Vec<String>,
    /// SHA-256 (hex) of the DER encoding of each client certificate the party presents over
    /// HTTPS (the hub's `tls_client_ca` must have issued it), e.g. from
    /// `openssl x509 -in client.pem -outform DER | sha256sum`.
    #[serde(default)]
    pub client_certs_sha256: Vec<String>,
    /// IP addresses allowed to send HL7 v2 over MLLP as this party. Over plain MLLP the address
    /// is all that tells parties apart (MSH-4 is the sender's own claim), so no address may serve
    /// two parties; over MLLP TLS the party is its client certificate's (`client_certs_sha256`),
    /// and these addresses, when listed, only narrow where it may connect from.
    #[serde(default)]
    pub mllp_peers: Vec<String>,
    /// The RabbitMQ user this party publishes with (matched against the broker-validated `user_id`).
    #[serde(default)]
    pub amqp_user: Option<String>,
    /// A directory the party drops files into (ケアプラン CSV); files are ingested once.
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    /// What the party receives.
    #[serde(default)]
    pub receives: Vec<Subscription>,
    /// Where deliveries go.
    #[serde(default)]
    pub delivery: Option<DeliveryTarget>,
}

/// A document kind the party receives, in a format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Canonical document, e.g. `CarePlan@1` or `InsuredPerson` (any version).
    pub document: String,
    /// `canonical` (JSON), `fhir` or `csv`.
    #[serde(default = "canonical")]
    pub format: String,
}

fn canonical() -> String {
    "canonical".into()
}

/// Where a party's deliveries go (exactly one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum DeliveryTarget {
    /// Its AMQP queue `<prefix>.out.<id>`.
    Amqp,
    /// Files in this directory.
    Dir(PathBuf),
    /// HTTP POST to this URL.
    Http(String),
}

/// A parties file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PartiesError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong, with line:column when the YAML reader knows it.
    pub message: String,
}

/// The loaded parties.
#[derive(Debug, Clone)]
pub struct Parties {
    /// The hub's identity.
    pub hub: HubIdentity,
    /// All parties.
    pub all: Vec<Party>,
}

/// SHA-256 hex of an API key.
pub fn key_hash(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

/// SHA-256 hex of a certificate's DER bytes: its fingerprint as `client_certs_sha256` lists it.
pub fn cert_fingerprint(der: &[u8]) -> String {
    sha256_hex(der)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Parties {
    /// Reads and checks the parties file.
    pub fn load(path: &Path) -> Result<Parties, PartiesError> {
        let fail = |message: String| PartiesError {
            file: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: PartiesFile = serde_saphyr::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            fail(format!(
                "{at}{}",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
        Self::check(file).map_err(fail)
    }

    /// Checks ids, duplicates and document names.
    pub fn check(file: PartiesFile) -> Result<Parties, String> {
        PartyId::parse(&file.hub.id).map_err(|e| format!("hub.id: {e}"))?;
        for (i, p) in file.parties.iter().enumerate() {
            PartyId::parse(&p.id).map_err(|e| format!("parties[{i}] ({}): {e}", p.id))?;
            if file.parties[..i].iter().any(|q| q.id == p.id) {
                return Err(format!("parties[{i}]: id {} appears twice", p.id));
            }
            for s in &p.receives {
                if crate::canonical::DocKind::parse(&s.document).is_none() {
                    return Err(format!(
                        "parties[{i}] ({}): unknown document `{}`",
                        p.id, s.document
                    ));
                }
                if !matches!(s.format.as_str(), "canonical" | "fhir" | "csv") {
                    return Err(format!(
                        "parties[{i}] ({}): format `{}` must be canonical, fhir or csv",
                        p.id, s.format
                    ));
                }
            }
            if !p.receives.is_empty() && p.delivery.is_none() {
                return Err(format!(
                    "parties[{i}] ({}): receives documents but has no `delivery`",
                    p.id
                ));
            }
            for a in &p.mllp_peers {
                if a.trim().parse::<IpAddr>().is_err() {
                    return Err(format!(
                        "parties[{i}] ({}): mllp_peers entry `{a}` is not an IP address; list the \
                         addresses the party connects from, e.g. \"192.0.2.10\" or \"::1\"",
                        p.id
                    ));
                }
            }
            for h in &p.api_keys_sha256 {
                if !is_sha256_hex(h) {
                    return Err(format!(
                        "parties[{i}] ({}): api_keys_sha256 entries are 64 hex digits",
                        p.id
                    ));
                }
            }
            for h in &p.client_certs_sha256 {
                if !is_sha256_hex(h) {
                    return Err(format!(
                        "parties[{i}] ({}): client_certs_sha256 entry `{h}` is not 64 hex digits; \
                         take the SHA-256 of the certificate's DER form, e.g. \
                         `openssl x509 -in client.pem -outform DER | sha256sum`",
                        p.id
                    ));
                }
                if let Some(q) = file.parties[..i].iter().find(|q| {
                    q.client_certs_sha256
                        .iter()
                        .any(|g| g.eq_ignore_ascii_case(h))
                }) {
                    return Err(format!(
                        "parties[{i}] ({}): client certificate {h} is also listed for party {}; \
                         a certificate names exactly one party",
                        p.id, q.id
                    ));
                }
            }
        }
        Ok(Parties {
            hub: file.hub,
            all: file.parties,
        })
    }

    /// The party with this id.
    pub fn get(&self, id: &str) -> Option<&Party> {
        self.all.iter().find(|p| p.id == id)
    }

    /// The party presenting this API key.
    pub fn by_api_key(&self, key: &str) -> Option<&Party> {
        let h = key_hash(key);
        self.all
            .iter()
            .find(|p| p.api_keys_sha256.iter().any(|k| k.eq_ignore_ascii_case(&h)))
    }

    /// The party whose client certificate has this SHA-256 fingerprint (hex).
    pub fn by_client_cert(&self, sha256: &str) -> Option<&Party> {
        self.all.iter().find(|p| {
            p.client_certs_sha256
                .iter()
                .any(|c| c.eq_ignore_ascii_case(sha256))
        })
    }

    /// The parties that list `ip` among their `mllp_peers` (compared as addresses: `::1` is
    /// `0:0::1`, `::ffff:127.0.0.1` is `127.0.0.1`). Over plain MLLP at most one, once
    /// [`Parties::check_mllp_identities`] passed.
    pub fn mllp_peers_at(&self, ip: IpAddr) -> Vec<&Party> {
        self.all.iter().filter(|p| p.is_mllp_peer(ip)).collect()
    }

    /// Whether every MLLP sender can be told apart by something it cannot forge, for an MLLP
    /// source with (`tls`) or without TLS client certificates. Without, a sender is known by its
    /// address alone (MSH-4 is its own claim): an address listed for two parties would let either
    /// send as the other, and is refused, naming the address and the parties. With, a sender is
    /// known by its certificate: a party that lists `mllp_peers` but no `client_certs_sha256`
    /// could never send, and is refused too. Checked at start and on every reload.
    pub fn check_mllp_identities(&self, tls: bool) -> Result<(), String> {
        if tls {
            let uncertified: Vec<&str> = self
                .all
                .iter()
                .filter(|p| !p.mllp_peers.is_empty() && p.client_certs_sha256.is_empty())
                .map(|p| p.id.as_str())
                .collect();
            if uncertified.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "parties {} list mllp_peers but no client_certs_sha256: over MLLP TLS a sender is \
                 known by its client certificate; list each one's certificate fingerprint, or \
                 take mllp_peers out",
                uncertified.join(", ")
            ));
        }
        let mut shared: Vec<(IpAddr, Vec<&str>)> = Vec::new();
        for p in &self.all {
            for a in &p.mllp_peers {
                let Ok(ip) = a.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
                    continue;
                };
                match shared.iter_mut().find(|(at, _)| *at == ip) {
                    Some((_, ids)) if !ids.contains(&p.id.as_str()) => ids.push(&p.id),
                    Some(_) => {}
                    None => shared.push((ip, vec![&p.id])),
                }
            }
        }
        let clashes: Vec<String> = shared
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(ip, ids)| format!("{ip} serves parties {}", ids.join(" and ")))
            .collect();
        if clashes.is_empty() {
            return Ok(());
        }
        Err(format!(
            "mllp_peers: {}; over plain MLLP a sender is told apart only by its address (MSH-4 \
             is the sender's own claim, which another party at that address could write too), \
             so an address may serve one party: give each party its own address, or serve MLLP \
             over TLS (mllp_tls_cert, mllp_tls_key, mllp_tls_client_ca) and list each party's \
             client_certs_sha256",
            clashes.join("; ")
        ))
    }

    /// The party publishing as this broker user.
    pub fn by_amqp_user(&self, user: &str) -> Option<&Party> {
        self.all
            .iter()
            .find(|p| p.amqp_user.as_deref() == Some(user))
    }

    /// Parties (other than `except`) that receive this document kind, with the format each wants.
    pub fn recipients_of<'a>(&'a self, document: &str, except: &str) -> Vec<(&'a Party, &'a str)> {
        let kind = crate::canonical::DocKind::parse(document);
        self.all
            .iter()
            .filter(|p| p.id != except)
            .filter_map(|p| {
                p.receives
                    .iter()
                    .find(|s| crate::canonical::DocKind::parse(&s.document) == kind)
                    .map(|s| (p, s.format.as_str()))
            })
            .collect()
    }

    /// AMQP recipients, whose queues the bus declares.
    pub fn amqp_recipients(&self) -> Vec<String> {
        self.all
            .iter()
            .filter(|p| matches!(p.delivery, Some(DeliveryTarget::Amqp)))
            .map(|p| p.id.clone())
            .collect()
    }
}

/// The parties in force, replaceable while the hub runs. Each request, connection, message or
/// inbox scan takes [`LiveParties::current`] once and keeps that copy to its end.
#[derive(Debug)]
pub struct LiveParties {
    current: RwLock<Arc<Parties>>,
}

impl LiveParties {
    /// Starts with `parties`.
    pub fn new(parties: Parties) -> LiveParties {
        LiveParties {
            current: RwLock::new(Arc::new(parties)),
        }
    }

    /// The parties in force now.
    pub fn current(&self) -> Arc<Parties> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `parties` in force from now on, unless they name another hub: the hub's id is the
    /// recipient of consent #1 and #2, and changing it under messages in flight would decide
    /// them against two identities (that takes a restart).
    pub fn replace(&self, parties: Parties) -> Result<(), String> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if parties.hub.id != current.hub.id {
            return Err(format!(
                "hub.id is {} in the file and {} in force; changing the hub's own id takes a restart",
                parties.hub.id, current.hub.id
            ));
        }
        *current = Arc::new(parties);
        Ok(())
    }
}

/// Does an `mllp_peers` entry name this address? Compared as addresses.
fn same_address(entry: &str, ip: IpAddr) -> bool {
    entry
        .trim()
        .parse::<IpAddr>()
        .is_ok_and(|a| a.to_canonical() == ip.to_canonical())
}

impl Party {
    /// Whether `ip` is among this party's `mllp_peers`.
    pub fn is_mllp_peer(&self, ip: IpAddr) -> bool {
        self.mllp_peers.iter().any(|a| same_address(a, ip))
    }

    /// This party as a consent recipient.
    pub fn recipient(&self) -> Option<Recipient> {
        Some(Recipient {
            id: PartyId::parse(&self.id).ok()?,
            kind: self.kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "hub: { id: \"9990000001\", name: hub }\nparties:\n  - id: \"1311234567\"\n    kind: hospital\n    api_keys_sha256: [\"KEY\"]\n  - id: \"0300000005\"\n    kind: provider\n    receives: [{ document: CarePlan@1, format: csv }, { document: InsuredPerson }]\n    delivery: { dir: data/out/0300000005 }\n";

    fn parse(y: &str) -> Result<Parties, String> {
        let f: PartiesFile = serde_saphyr::from_str(y).map_err(|e| e.to_string())?;
        Parties::check(f)
    }

    #[test]
    fn api_keys_are_matched_by_hash() {
        let y = YAML.replace("KEY", &key_hash("demo-hospital-key"));
        let p = parse(&y).unwrap();
        assert_eq!(p.by_api_key("demo-hospital-key").unwrap().id, "1311234567");
        assert!(p.by_api_key("wrong").is_none());
    }

    #[test]
    fn recipients_are_found_by_document_and_exclude_the_sender() {
        let y = YAML.replace("KEY", &key_hash("k"));
        let p = parse(&y).unwrap();
        let r = p.recipients_of("CarePlan@1", "1311234567");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1, "csv");
        assert!(p.recipients_of("CarePlan@1", "0300000005").is_empty());
        assert_eq!(p.recipients_of("InsuredPerson@1", "x")[0].1, "canonical");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = parse(&YAML.replace("KEY", "nothex")).unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        let e = parse(
            &YAML
                .replace("KEY", &key_hash("k"))
                .replace("CarePlan@1", "CarePlan@9"),
        )
        .unwrap_err();
        assert!(e.contains("unknown document"), "{e}");
    }

    /// Two hospitals with these `mllp_peers` entries (and client certificates when given).
    fn two_hospitals(a: &str, b: &str, certs: bool) -> String {
        let cert = |seed: &[u8]| {
            if certs {
                format!(
                    "    client_certs_sha256: [\"{}\"]\n",
                    cert_fingerprint(seed)
                )
            } else {
                String::new()
            }
        };
        format!(
            "hub: {{ id: \"9990000001\" }}\nparties:\n  - id: \"1311234567\"\n    kind: hospital\n    mllp_peers: [{a}]\n{}  - id: \"2710000015\"\n    kind: hospital\n    mllp_peers: [{b}]\n{}",
            cert(b"one"),
            cert(b"two")
        )
    }

    #[test]
    fn one_address_serving_two_parties_over_plain_mllp_is_refused_naming_both() {
        for (a, b) in [
            ("\"127.0.0.1\"", "\"127.0.0.1\""),
            ("\"127.0.0.1\"", "\"::ffff:127.0.0.1\""),
            ("\"192.0.2.7\", \"::1\"", "\"0:0::1\""),
        ] {
            let p = parse(&two_hospitals(a, b, false)).expect("loads");
            let e = p.check_mllp_identities(false).expect_err("shared address");
            assert!(
                e.contains("1311234567 and 2710000015") && e.contains("serves parties"),
                "{e}"
            );
            assert!(e.contains("127.0.0.1") || e.contains("::1"), "{e}");
            assert!(e.contains("mllp_tls_cert"), "says what to do: {e}");
            // The same parties with certificates, over MLLP TLS: told apart by those.
            let p = parse(&two_hospitals(a, b, true)).expect("loads");
            assert_eq!(p.check_mllp_identities(true), Ok(()));
            assert!(
                p.check_mllp_identities(false).is_err(),
                "certs do not help without TLS"
            );
        }
        let p = parse(&two_hospitals("\"127.0.0.1\"", "\"127.0.0.2\"", false)).expect("loads");
        assert_eq!(p.check_mllp_identities(false), Ok(()));
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert_eq!(p.mllp_peers_at(ip("127.0.0.2"))[0].id, "2710000015");
        assert_eq!(p.mllp_peers_at(ip("::ffff:127.0.0.1"))[0].id, "1311234567");
        assert!(p.mllp_peers_at(ip("127.0.0.3")).is_empty());
    }

    #[test]
    fn over_mllp_tls_a_party_with_peers_but_no_certificate_is_refused() {
        let p = parse(&two_hospitals("\"127.0.0.1\"", "\"127.0.0.2\"", false)).expect("loads");
        let e = p.check_mllp_identities(true).expect_err("no certificates");
        assert!(
            e.contains("1311234567, 2710000015") && e.contains("client_certs_sha256"),
            "{e}"
        );
    }

    #[test]
    fn mllp_peers_are_ip_addresses() {
        let e = parse(&two_hospitals("\"localhost\"", "\"127.0.0.2\"", false))
            .expect_err("a host name");
        assert!(e.contains("`localhost` is not an IP address"), "{e}");
    }

    #[test]
    fn the_shipped_parties_file_tells_its_mllp_senders_apart() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("parties.yaml");
        let p = Parties::load(&file).expect("the shipped parties file loads");
        assert_eq!(p.check_mllp_identities(false), Ok(()));
    }

    #[test]
    fn client_certificates_are_matched_by_fingerprint_in_either_case() {
        let fp = cert_fingerprint(b"not really DER, but bytes all the same");
        let y = YAML.replace("KEY", &key_hash("k")).replace(
            "    api_keys_sha256:",
            &format!(
                "    client_certs_sha256: [\"{}\"]\n    api_keys_sha256:",
                fp.to_uppercase()
            ),
        );
        let p = parse(&y).expect("valid parties");
        assert_eq!(p.by_client_cert(&fp).expect("known").id, "1311234567");
        assert!(p.by_client_cert(&cert_fingerprint(b"other")).is_none());
        assert!(p.by_api_key("k").is_some(), "keys still work next to certs");
    }

    #[test]
    fn client_certificate_fingerprints_are_64_hex_and_name_one_party() {
        let with = |first: &str, second: &str| {
            YAML.replace("KEY", &key_hash("k"))
                .replace(
                    "    api_keys_sha256:",
                    &format!("    client_certs_sha256: [\"{first}\"]\n    api_keys_sha256:"),
                )
                .replace(
                    "    kind: provider\n",
                    &format!("    kind: provider\n    client_certs_sha256: [\"{second}\"]\n"),
                )
        };
        let a = cert_fingerprint(b"a");
        let b = cert_fingerprint(b"b");
        assert!(parse(&with(&a, &b)).is_ok());
        for bad in [&a[..63], "AB:CD", &format!("{}g", &a[..63])] {
            let e = parse(&with(bad, &b)).expect_err("not a fingerprint");
            assert!(
                e.contains("client_certs_sha256") && e.contains("64 hex"),
                "{e}"
            );
        }
        let e = parse(&with(&a, &a.to_uppercase())).expect_err("one certificate, two parties");
        assert!(e.contains("1311234567") && e.contains("0300000005"), "{e}");
    }
}
