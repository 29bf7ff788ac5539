//! `kaigo-hub serve` configuration: defaults, then `kaigo-hub.toml` (or `--config FILE`), then
//! environment variables `KAIGO_<KEY>` (e.g. `KAIGO_AMQP_URL`). Each setting is declared once,
//! below (key, doc, type, default); the struct, its defaults, the variables' parsing, `serve
//! --help`, `kaigo-hub settings` and the README's settings table all come from that declaration
//! (`setting.rs`). [`Config::validate`] checks that the settings fit together, naming the setting
//! and its variable. An unknown key in the file is an error.

mod setting;

use crate::sources::tls::{HTTP_TLS, MLLP_TLS, TlsFiles};
use setting::declare_settings;
pub use setting::{Setting, help, markdown, variable};
use std::path::{Path, PathBuf};

declare_settings! {
    /// Everything `serve` can be told.
    pub struct Config {
        /// HTTP listen address (FHIR API, health, metrics).
        http_addr: String = "127.0.0.1:8080".into();
        /// MLLP listen address (HL7 v2).
        mllp_addr: String = "127.0.0.1:2575".into();
        /// RabbitMQ URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`; unset = the in-memory bus.
        amqp_url: Option<String> = None;
        /// Database for consents, cross-reference and delivery keys: `postgres://user@host/db`
        /// (several hub processes share it) or a SQLite file: a path, `sqlite:PATH`,
        /// `sqlite:///ABSOLUTE/PATH` or `file:PATH` (unset: `<data_dir>/kaigo-hub.sqlite`;
        /// `sqlite::memory:` is refused). `serve` creates it; every other command refuses one that
        /// does not exist.
        database_url: Option<String> = None;
        /// Directory for the SQLite file, the audit log and the subject-hash key.
        data_dir: PathBuf = "data".into();
        /// Prefix of every RabbitMQ exchange and queue name.
        prefix: String = "kaigo".into();
        /// Mapping directory.
        mappings: PathBuf = "mappings".into();
        /// Parties file (ids, credentials, subscriptions, delivery targets).
        parties: PathBuf = "parties.yaml".into();
        /// Largest input accepted at every door, bytes: an HTTP body, an MLLP frame, an AMQP vendor
        /// message, a file dropped into an inbox. A larger one is refused at its door, naming this
        /// setting and the size (HTTP 413, MLLP `AR`, the AMQP message dead-lettered, the file moved
        /// to `failed/` unread). Between 1 and 512 MiB; keep it at or below RabbitMQ's
        /// `max_message_size` (128 MiB by default).
        body_limit: usize = 32 * 1024 * 1024;
        /// Unacknowledged deliveries per consumer. A hop holds at most this many messages at once
        /// (memory: prefetch × the largest message); the consuming hops need more in flight than
        /// the sources, because a message fans out into documents and recipients (128 measured
        /// against 64 and 256).
        prefetch: u16 = 128 => prefetch_from_var;
        /// Log format: `text` or `json` (logs carry ids and hashes, never names).
        log_format: String = "text".into();
        /// Purpose stated in consent questions (consents restricted to another purpose deny).
        purpose: Option<String> = None;
        /// Key for hashing subjects in headers, logs and audit, and for FHIR resource ids
        /// (docs/fhir.md), as hex (≥ 32 hex digits); unset = a random key kept in
        /// `<data_dir>/subject.key`. Changing it changes every hash and every FHIR id.
        subject_key: Option<String> = None => subject_key_from_var;
        /// How often file-drop inboxes (and, with `watch_mappings`, the mapping directory) are
        /// scanned, milliseconds.
        poll_ms: u64 = 500;
        /// Reload the mapping directory when its files change, without a restart and without
        /// dropping a message (`serve --watch`): each message uses the set in force when it started;
        /// files that fail to load are reported (`file:line:column`) and the working set stays in
        /// force. `true` or `false`.
        watch_mappings: bool = false;
        /// Seconds a hub process may answer consent questions from its own copy of a person's
        /// consents (RabbitMQ only: the copy is dropped on every change announced on the
        /// `<prefix>.consent` fanout, and not used while that subscription is lost). The expiry is a
        /// backstop for a change made by a process that could not announce it. `0` = read the store
        /// at every decision.
        consent_cache_secs: u64 = 30;
        /// Days a quarantined copy is kept (counted from when it was quarantined) before it is
        /// dropped, with an audit event (`expired`): quarantine holds personal data no longer than
        /// it must. Checked once an hour. `0` keeps them until replayed.
        quarantine_keep_days: u64 = 30;
        /// Days a dead letter is kept (counted from when it was dead-lettered) before it is
        /// dropped, with an audit event (`expired`): a message that could not be read or
        /// delivered holds personal data too. Checked once an hour. `0` keeps them until replayed.
        dead_keep_days: u64 = 30;
        /// File holding the message archive's key as hex (64 hex digits: AES-256-GCM). Set, the hub
        /// keeps each accepted message's original bytes and each canonical document in the store,
        /// sealed with this key, for traces and body views in the console (docs/console.md).
        /// Keep it apart from the store: whoever holds both reads every archived body. Unset: no
        /// archive (the hub runs the same). `serve --demo` makes `<data_dir>/archive.key` when
        /// unset. A key file that is set but missing or malformed stops `serve` at start.
        archive_key_file: Option<PathBuf> = None;
        /// Days an archived original or canonical document is kept; older rows are forgotten once
        /// an hour (and soon after start). `0` keeps them until removed by hand.
        archive_keep_days: u64 = 7;
        /// Days a delivery key (envelope, document, recipient: what keeps a recipient from getting a
        /// copy twice) is kept; older keys are forgotten once an hour. `0` keeps them forever. Set
        /// it longer than any message may wait in a queue or in `dead`/`quarantine` before a
        /// `replay`: a copy redelivered after its key was forgotten is sent again.
        delivered_keep_days: u64 = 0;
        /// Backpressure: while this many messages wait in the `translate` and `deliver` queues (all
        /// hub processes on them together; read four times a second), the sources refuse new ones
        /// as temporarily unavailable — HTTP 503 with `Retry-After`, MLLP `AE`, the AMQP source
        /// requeues after a pause, the file drop leaves the file — and admit again below 90 % of
        /// it. `0`: no bound.
        max_backlog: u64 = 0;
        /// How long a recipient's copy waits before it is tried again after its sink failed (HTTP
        /// push refused or unreachable, a directory that cannot be written), milliseconds, one entry
        /// per retry (in the variable comma-separated, e.g. `1000,5000,30000`): the copy is tried
        /// once more than there are entries, then dead-lettered (and can be replayed). Each distinct
        /// delay is a waiting-room queue `<prefix>.deliver.wait.<ms>`; a recipient that is down
        /// holds up no one meanwhile. Empty = no retries; the default is six attempts over 12½
        /// minutes.
        retry_delays_ms: Vec<u64> = crate::bus::topology::DEFAULT_RETRY_DELAYS_MS.to_vec();
        /// PEM file with the HTTP listener's certificate chain, leaf first. Set together with
        /// `tls_key`, the HTTP source serves HTTPS (rustls) instead of plain HTTP.
        tls_cert: Option<PathBuf> = None;
        /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
        tls_key: Option<PathBuf> = None;
        /// PEM bundle of the CA certificates that issue client certificates (needs `tls_cert`). A
        /// client may then present a certificate, which must chain to one of these (else the
        /// handshake fails); its SHA-256 fingerprint names the party (`client_certs_sha256` in the
        /// parties file). A client without a certificate still authenticates by API key.
        tls_client_ca: Option<PathBuf> = None;
        /// PEM bundle of the CA certificates the hub trusts for HTTP push recipients: a recipient
        /// whose parties entry says `delivery: { http: "https://…" }` must present a certificate for
        /// the URL's host (DNS name or IP address) that chains to one of these, else the delivery
        /// fails and is retried, then dead-lettered. Required for `https://` push; no system roots
        /// are used.
        push_ca: Option<PathBuf> = None;
        /// PEM file with the client certificate chain (leaf first) the hub presents to HTTPS push
        /// recipients that ask for one (mTLS). Set together with `push_client_key`, and with
        /// `push_ca`.
        push_client_cert: Option<PathBuf> = None;
        /// PEM file with the private key of `push_client_cert` (PKCS#8, PKCS#1 or SEC1,
        /// unencrypted).
        push_client_key: Option<PathBuf> = None;
        /// Seconds a consent change (`kaigo-hub consent …`, `POST /fhir/Consent`) waits for every
        /// running hub process that answers from a consent cache to acknowledge it (each registers
        /// in the store; see `consent_cache_secs`). A process that has not acknowledged by then is
        /// named (the command exits 3), with the time by which the change is in force there anyway.
        consent_ack_secs: u64 = 5;
        /// The key that seals the audit chains (HMAC-SHA256), as hex (≥ 32 hex digits); set this or
        /// `audit_key_file`, not both. Whoever holds it can re-seal an edited log, so keep it from
        /// those who can write the log; `kaigo-hub audit verify` needs it.
        audit_key: Option<String> = None;
        /// File holding the audit key as hex (unset: `<data_dir>/audit.key`, created 0600 with 32
        /// random bytes by `serve` or a consent command when missing; `audit verify` never creates
        /// it).
        audit_key_file: Option<PathBuf> = None;
        /// PEM file with the MLLP listener's certificate chain, leaf first. Set together with
        /// `mllp_tls_key` and `mllp_tls_client_ca`, the MLLP source speaks TLS only, and a hospital
        /// is known by its client certificate (`client_certs_sha256` in the parties file) instead
        /// of by its address; MSH-4 must name the certificate's party. May name the same file as
        /// `tls_cert`.
        mllp_tls_cert: Option<PathBuf> = None;
        /// PEM file with the private key of `mllp_tls_cert` (PKCS#8, PKCS#1 or SEC1).
        mllp_tls_key: Option<PathBuf> = None;
        /// PEM bundle of the CA certificates that issue the MLLP senders' client certificates; a
        /// certificate that does not chain to one fails the handshake, a connection without one is
        /// answered `AR` (MLLP has no other credential).
        mllp_tls_client_ca: Option<PathBuf> = None;
        /// YAML file of the web console's accounts (`/console`): a list of `name`, `role`
        /// (`viewer`, `operator`, `privacy` or `admin`) and `password_hash`, an argon2 PHC string
        /// made by `kaigo-hub console hash-password` (docs/console.md). Unset: no account, and
        /// nobody can sign in (`serve --demo` adds its four demo accounts either way). Over plain
        /// HTTP the console answers loopback clients only; with `tls_cert`, any client.
        console_accounts: Option<PathBuf> = None;
        /// Seconds a console session lasts without a request before the operator must sign in
        /// again.
        console_idle_secs: u64 = 1800;
    }
}

/// `prefetch`'s variable: a number, held between 1 and 65535.
fn prefetch_from_var(var: &str, value: String) -> Result<u16, String> {
    Ok(<u64 as setting::FromVar>::from_var(var, value)?.clamp(1, 65_535) as u16)
}

/// `subject_key`'s variable: an empty one is a key (refused as too short), never "unset": a key
/// that was meant to be given is not silently replaced by a random one.
fn subject_key_from_var(_: &str, value: String) -> Result<Option<String>, String> {
    Ok(Some(value))
}

impl Config {
    /// Defaults, then the file (if given, or `kaigo-hub.toml` when present), then `KAIGO_*`.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut cfg = match file {
            Some(f) => Self::from_file(f)?,
            None if Path::new("kaigo-hub.toml").exists() => {
                Self::from_file(Path::new("kaigo-hub.toml"))?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    fn from_file(f: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
    }

    /// Applies the `KAIGO_*` variables `get` finds (an empty one unsets an optional setting),
    /// then [`Config::validate`]s the whole.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        for setting in SETTINGS {
            let var = setting.env();
            if let Some(value) = get(&var) {
                (setting.apply)(self, &var, value)?;
            }
        }
        self.validate()
    }

    /// Checks that the settings fit together: each error names the settings and their variables,
    /// and says what to do.
    pub fn validate(&self) -> Result<(), String> {
        if self.audit_key.is_some() && self.audit_key_file.is_some() {
            return Err(
                "audit_key and audit_key_file are both set: give the audit key one way, as hex \
                 (audit_key / KAIGO_AUDIT_KEY) or as a file (audit_key_file / KAIGO_AUDIT_KEY_FILE)"
                    .into(),
            );
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(format!(
                "log_format (KAIGO_LOG_FORMAT) is `{}`; it must be text or json",
                self.log_format
            ));
        }
        crate::pipeline::body_limit::BodyLimit::new(self.body_limit)?;
        self.tls()?;
        self.mllp_tls()?;
        crate::sinks::push_tls::PushTlsFiles::from_settings(
            &self.push_ca,
            &self.push_client_cert,
            &self.push_client_key,
        )?;
        self.retry_delays()?;
        Ok(())
    }

    /// `retry_delays_ms` as durations, or an error naming the setting when one is 0 or longer
    /// than a day (a broker message TTL; longer outages are what `replay dead` is for).
    pub fn retry_delays(&self) -> Result<Vec<std::time::Duration>, String> {
        const DAY_MS: u64 = 24 * 60 * 60 * 1000;
        if self.retry_delays_ms.len() > 20 {
            return Err(format!(
                "retry_delays_ms (KAIGO_RETRY_DELAYS_MS) has {} entries; at most 20",
                self.retry_delays_ms.len()
            ));
        }
        self.retry_delays_ms
            .iter()
            .map(|&ms| {
                if ms == 0 || ms > DAY_MS {
                    Err(format!(
                        "retry_delays_ms (KAIGO_RETRY_DELAYS_MS): {ms} is not between 1 ms and a day ({DAY_MS})"
                    ))
                } else {
                    Ok(std::time::Duration::from_millis(ms))
                }
            })
            .collect()
    }

    /// The HTTP source's TLS files, by the rules of [`TlsFiles::from_settings`].
    pub fn tls(&self) -> Result<Option<TlsFiles>, String> {
        let (cert, key, ca) = (&self.tls_cert, &self.tls_key, &self.tls_client_ca);
        TlsFiles::from_settings(HTTP_TLS, cert, key, ca)
    }

    /// The MLLP source's TLS files, by the rules of [`TlsFiles::from_settings`].
    pub fn mllp_tls(&self) -> Result<Option<TlsFiles>, String> {
        TlsFiles::from_settings(
            MLLP_TLS,
            &self.mllp_tls_cert,
            &self.mllp_tls_key,
            &self.mllp_tls_client_ca,
        )
    }

    /// The store URL: `database_url`, or the SQLite file under `data_dir`. `database_url` may be
    /// `postgres://…` or a SQLite file as a path, `sqlite:PATH`, `sqlite:///ABSOLUTE/PATH` or
    /// `file:PATH` (`store::Location::parse` says which forms are refused, and why).
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => self.data_dir.join("kaigo-hub.sqlite").display().to_string(),
        }
    }

    /// The audit log path.
    pub fn audit_path(&self) -> PathBuf {
        self.data_dir.join("audit.jsonl")
    }

    /// The audit key file: `audit_key_file`, or `<data_dir>/audit.key`.
    pub fn audit_key_path(&self) -> PathBuf {
        self.audit_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sinks::push_tls::PushTlsFiles;

    fn declared(key: &str) -> bool {
        SETTINGS.iter().any(|s| s.key == key)
    }

    /// The push sink's HTTPS files by the rules `validate` applies.
    fn push_tls(c: &Config) -> Result<Option<PushTlsFiles>, String> {
        PushTlsFiles::from_settings(&c.push_ca, &c.push_client_cert, &c.push_client_key)
    }

    #[test]
    fn every_setting_is_read_from_its_variable_as_help_shows_its_default() {
        for s in SETTINGS.iter().filter(|s| s.default_shown() != "unset") {
            let mut c = Config::default();
            c.apply_env(|k| (k == s.env()).then(|| s.default_shown()))
                .unwrap_or_else(|e| panic!("{}: {e}", s.key));
            assert_eq!((s.shown)(&c), s.default_shown(), "{}", s.key);
        }
        let mut c = Config::default();
        c.apply_env(|k| (k == "KAIGO_POLL_MS").then(|| "75".into()))
            .expect("a number");
        assert_eq!(c.poll_ms, 75, "the variable reaches its own field");
    }

    #[test]
    fn env_overrides_the_file_and_defaults() {
        let mut c: Config = toml::from_str("http_addr = \"0.0.0.0:9000\"\nprefix = \"p\"").unwrap();
        assert_eq!(c.mllp_addr, "127.0.0.1:2575");
        c.apply_env(|k| (k == "KAIGO_PREFIX").then(|| "q".to_string()))
            .unwrap();
        assert_eq!(
            (c.http_addr.as_str(), c.prefix.as_str()),
            ("0.0.0.0:9000", "q")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = toml::from_str::<Config>("htp_addr = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("htp_addr"), "{e}");
        let mut c = Config::default();
        assert!(
            c.apply_env(|k| (k == "KAIGO_PREFETCH").then(|| "many".into()))
                .is_err()
        );
    }

    #[test]
    fn tls_is_off_by_default_and_on_with_cert_and_key() {
        assert_eq!(Config::default().tls(), Ok(None));
        let c: Config =
            toml::from_str("tls_cert = \"s.pem\"\ntls_key = \"s.key\"\ntls_client_ca = \"ca.pem\"")
                .expect("known keys");
        assert_eq!(
            c.tls(),
            Ok(Some(TlsFiles {
                cert: "s.pem".into(),
                key: "s.key".into(),
                client_ca: Some("ca.pem".into()),
                settings: HTTP_TLS,
            }))
        );
    }

    #[test]
    fn half_set_tls_settings_are_errors_naming_the_keys() {
        let cases: [(&str, &[&str]); 3] = [
            ("KAIGO_TLS_CERT", &["tls_cert", "tls_key"]),
            ("KAIGO_TLS_KEY", &["tls_key", "tls_cert"]),
            (
                "KAIGO_TLS_CLIENT_CA",
                &["tls_client_ca", "tls_cert", "tls_key"],
            ),
        ];
        for (var, named) in cases {
            let mut c = Config::default();
            let e = c
                .apply_env(|k| (k == var).then(|| "some.pem".to_string()))
                .expect_err("half-set TLS is refused at start");
            for key in named {
                assert!(e.contains(key), "{var}: {e}");
            }
        }
    }

    #[test]
    fn an_empty_tls_variable_unsets_the_setting() {
        let mut c: Config =
            toml::from_str("tls_cert = \"s.pem\"\ntls_key = \"s.key\"").expect("known keys");
        c.apply_env(|k| k.starts_with("KAIGO_TLS_").then(String::new))
            .expect("both unset is plain HTTP");
        assert_eq!(c.tls(), Ok(None));
    }

    #[test]
    fn push_tls_is_off_by_default_and_on_with_push_ca() {
        assert_eq!(push_tls(&Config::default()), Ok(None));
        let c: Config = toml::from_str("push_ca = \"ca.pem\"").expect("known key");
        assert_eq!(
            push_tls(&c),
            Ok(Some(PushTlsFiles {
                ca: "ca.pem".into(),
                client: None,
            }))
        );
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "KAIGO_PUSH_CA" => Some("ca.pem".into()),
            "KAIGO_PUSH_CLIENT_CERT" => Some("hub.pem".into()),
            "KAIGO_PUSH_CLIENT_KEY" => Some("hub.key".into()),
            _ => None,
        })
        .expect("a whole push TLS setting");
        assert_eq!(
            push_tls(&c),
            Ok(Some(PushTlsFiles {
                ca: "ca.pem".into(),
                client: Some(("hub.pem".into(), "hub.key".into())),
            }))
        );
    }

    #[test]
    fn a_half_set_push_client_identity_is_an_error_naming_both_keys() {
        for var in ["KAIGO_PUSH_CLIENT_CERT", "KAIGO_PUSH_CLIENT_KEY"] {
            let mut c = Config::default();
            let e = c
                .apply_env(|k| match k {
                    "KAIGO_PUSH_CA" => Some("ca.pem".into()),
                    k if k == var => Some("some.pem".into()),
                    _ => None,
                })
                .expect_err("half-set client identity is refused at start");
            assert!(
                e.contains("push_client_cert") && e.contains("push_client_key"),
                "{var}: {e}"
            );
        }
        let c: Config = toml::from_str("push_ca = \"ca.pem\"\npush_client_key = \"hub.key\"")
            .expect("known keys");
        let e = push_tls(&c).expect_err("key without certificate");
        assert!(
            e.starts_with("push_client_key is set but push_client_cert"),
            "{e}"
        );
    }

    #[test]
    fn a_push_client_identity_without_push_ca_is_an_error_naming_push_ca() {
        let c: Config =
            toml::from_str("push_client_cert = \"hub.pem\"\npush_client_key = \"hub.key\"")
                .expect("known keys");
        let e = push_tls(&c).expect_err("nothing to trust recipients by");
        assert!(e.contains("push_ca") && e.contains("KAIGO_PUSH_CA"), "{e}");
    }

    #[test]
    fn an_empty_push_variable_unsets_the_setting_and_push_keys_are_listed() {
        let mut c: Config = toml::from_str(
            "push_ca = \"ca.pem\"\npush_client_cert = \"hub.pem\"\npush_client_key = \"hub.key\"",
        )
        .expect("known keys");
        c.apply_env(|k| k.starts_with("KAIGO_PUSH_").then(String::new))
            .expect("all unset is plain http push only");
        assert_eq!(push_tls(&c), Ok(None));
        for key in ["push_ca", "push_client_cert", "push_client_key"] {
            assert!(declared(key), "{key} is declared");
        }
    }

    #[test]
    fn mllp_tls_is_off_by_default_and_on_with_all_three_files() {
        assert_eq!(Config::default().mllp_tls(), Ok(None));
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "KAIGO_MLLP_TLS_CERT" => Some("m.pem".into()),
            "KAIGO_MLLP_TLS_KEY" => Some("m.key".into()),
            "KAIGO_MLLP_TLS_CLIENT_CA" => Some("ca.pem".into()),
            _ => None,
        })
        .expect("all three");
        assert_eq!(
            c.mllp_tls(),
            Ok(Some(TlsFiles {
                cert: "m.pem".into(),
                key: "m.key".into(),
                client_ca: Some("ca.pem".into()),
                settings: MLLP_TLS,
            }))
        );
        assert_eq!(c.tls(), Ok(None), "the HTTP source stays as it was");
        for key in ["mllp_tls_cert", "mllp_tls_key", "mllp_tls_client_ca"] {
            assert!(declared(key), "{key} is declared");
        }
    }

    #[test]
    fn a_half_set_mllp_tls_is_an_error_naming_what_is_missing() {
        let cases: [(&[&str], &str); 4] = [
            (&["KAIGO_MLLP_TLS_CERT"], "mllp_tls_key"),
            (&["KAIGO_MLLP_TLS_KEY"], "mllp_tls_cert"),
            (&["KAIGO_MLLP_TLS_CLIENT_CA"], "mllp_tls_cert"),
            (
                &["KAIGO_MLLP_TLS_CERT", "KAIGO_MLLP_TLS_KEY"],
                "mllp_tls_client_ca",
            ),
        ];
        for (set, missing) in cases {
            let mut c = Config::default();
            let e = c
                .apply_env(|k| set.contains(&k).then(|| "some.pem".to_string()))
                .expect_err("half-set MLLP TLS is refused at start");
            assert!(e.contains(missing), "{set:?}: {e}");
        }
    }

    /// A numeric setting: `default` by default, read from the file, overridden by its variable,
    /// and a variable that is not a number is an error naming it.
    fn numeric_setting(key: &str, env: &str, default: u64, field: fn(&Config) -> u64) {
        assert_eq!(field(&Config::default()), default, "{key}'s default");
        let mut c: Config = toml::from_str(&format!("{key} = 90")).expect("known key");
        assert_eq!(field(&c), 90);
        c.apply_env(|k| (k == env).then(|| "30".into())).unwrap();
        assert_eq!(field(&c), 30);
        let e = c
            .apply_env(|k| (k == env).then(|| "a month".into()))
            .unwrap_err();
        assert!(e.contains(env), "{e}");
        assert!(declared(key));
    }

    #[test]
    fn delivery_keys_are_kept_forever_unless_delivered_keep_days_says_otherwise() {
        numeric_setting("delivered_keep_days", "KAIGO_DELIVERED_KEEP_DAYS", 0, |c| {
            c.delivered_keep_days
        });
    }

    #[test]
    fn the_archive_keeps_a_week_unless_archive_keep_days_says_otherwise() {
        numeric_setting("archive_keep_days", "KAIGO_ARCHIVE_KEEP_DAYS", 7, |c| {
            c.archive_keep_days
        });
        assert!(declared("archive_key_file"));
        assert_eq!(Config::default().archive_key_file, None, "off by default");
    }

    #[test]
    fn dead_letters_are_kept_thirty_days_unless_dead_keep_days_says_otherwise() {
        numeric_setting("dead_keep_days", "KAIGO_DEAD_KEEP_DAYS", 30, |c| {
            c.dead_keep_days
        });
    }

    #[test]
    fn quarantined_copies_are_kept_thirty_days_unless_quarantine_keep_days_says_otherwise() {
        numeric_setting(
            "quarantine_keep_days",
            "KAIGO_QUARANTINE_KEEP_DAYS",
            30,
            |c| c.quarantine_keep_days,
        );
    }

    #[test]
    fn retry_delays_come_from_the_file_or_the_variable_and_nonsense_names_the_setting() {
        let ms = std::time::Duration::from_millis;
        let d = Config::default()
            .retry_delays()
            .expect("the default is valid");
        assert_eq!(d.len(), 5);
        assert!(d.windows(2).all(|w| w[0] < w[1]), "growing: {d:?}");
        let mut c: Config = toml::from_str("retry_delays_ms = [200, 400]").expect("known key");
        assert_eq!(c.retry_delays(), Ok(vec![ms(200), ms(400)]));
        c.apply_env(|k| (k == "KAIGO_RETRY_DELAYS_MS").then(|| " 1000, 60000 ".into()))
            .unwrap();
        assert_eq!(c.retry_delays(), Ok(vec![ms(1000), ms(60_000)]));
        c.apply_env(|k| (k == "KAIGO_RETRY_DELAYS_MS").then(String::new))
            .unwrap();
        assert_eq!(c.retry_delays(), Ok(vec![]), "empty: no retries");
        for bad in ["5s", "0", "100000000", "1,,x"] {
            let e = c
                .apply_env(|k| (k == "KAIGO_RETRY_DELAYS_MS").then(|| bad.into()))
                .expect_err(bad);
            assert!(e.contains("KAIGO_RETRY_DELAYS_MS"), "{bad}: {e}");
        }
        assert!(declared("retry_delays_ms"));
    }

    #[test]
    fn the_backlog_is_unbounded_unless_max_backlog_says_otherwise() {
        numeric_setting("max_backlog", "KAIGO_MAX_BACKLOG", 0, |c| c.max_backlog);
    }

    #[test]
    fn a_consent_change_waits_five_seconds_for_acknowledgements_unless_told_otherwise() {
        assert_eq!(Config::default().consent_ack_secs, 5);
        let mut c: Config = toml::from_str("consent_ack_secs = 2").expect("known key");
        assert_eq!(c.consent_ack_secs, 2);
        c.apply_env(|k| (k == "KAIGO_CONSENT_ACK_SECS").then(|| "1".into()))
            .unwrap();
        assert_eq!(c.consent_ack_secs, 1);
        let e = c
            .apply_env(|k| (k == "KAIGO_CONSENT_ACK_SECS").then(|| "soon".into()))
            .unwrap_err();
        assert!(e.contains("KAIGO_CONSENT_ACK_SECS"), "{e}");
        assert!(declared("consent_ack_secs"));
    }
}
