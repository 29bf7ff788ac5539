//! `kaigo-hub serve` configuration: defaults, then `kaigo-hub.toml` (or `--config FILE`), then
//! environment variables `KAIGO_<FIELD>` (e.g. `KAIGO_AMQP_URL`). Every field is documented here;
//! `serve --help` and the README list them. An unknown key in the file is an error.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything `serve` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address (FHIR API, health, metrics). Env `KAIGO_HTTP_ADDR`.
    pub http_addr: String,
    /// MLLP listen address (HL7 v2). Env `KAIGO_MLLP_ADDR`.
    pub mllp_addr: String,
    /// RabbitMQ URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`; unset = the in-memory bus.
    /// Env `KAIGO_AMQP_URL`.
    pub amqp_url: Option<String>,
    /// Database for consents, cross-reference and delivery keys: `postgres://user@host/db` (several
    /// hub processes share it) or a SQLite file path (default `<data_dir>/kaigo-hub.sqlite`).
    /// Env `KAIGO_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Directory for the SQLite file, the audit log and the subject-hash key. Env `KAIGO_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Prefix of every RabbitMQ exchange and queue name. Env `KAIGO_PREFIX`.
    pub prefix: String,
    /// Mapping directory. Env `KAIGO_MAPPINGS`.
    pub mappings: PathBuf,
    /// Parties file. Env `KAIGO_PARTIES`.
    pub parties: PathBuf,
    /// Largest accepted HTTP body / MLLP frame, bytes. Env `KAIGO_BODY_LIMIT`.
    pub body_limit: usize,
    /// Unacknowledged deliveries per consumer. Env `KAIGO_PREFETCH`.
    pub prefetch: u16,
    /// Log format: `text` or `json`. Env `KAIGO_LOG_FORMAT`.
    pub log_format: String,
    /// Purpose stated in consent questions (consents restricted to another purpose deny).
    /// Env `KAIGO_PURPOSE`.
    pub purpose: Option<String>,
    /// Key for hashing subjects in headers, logs and audit, as hex (≥ 32 hex digits); unset = a
    /// random key kept in `<data_dir>/subject.key`. Env `KAIGO_SUBJECT_KEY`.
    pub subject_key: Option<String>,
    /// How often file-drop inboxes are scanned, milliseconds. Env `KAIGO_POLL_MS`.
    pub poll_ms: u64,
    /// Seconds a hub process may answer consent questions from its own copy of a person's
    /// consents (RabbitMQ only: the copy is dropped on every change announced on the
    /// `<prefix>.consent` fanout, and not used while that subscription is lost). The expiry is a
    /// backstop for a change made by a process that could not announce it. `0` = read the store
    /// at every decision. Env `KAIGO_CONSENT_CACHE_SECS`.
    pub consent_cache_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: "127.0.0.1:8080".into(),
            mllp_addr: "127.0.0.1:2575".into(),
            amqp_url: None,
            database_url: None,
            data_dir: "data".into(),
            prefix: "kaigo".into(),
            mappings: "mappings".into(),
            parties: "parties.yaml".into(),
            body_limit: 32 * 1024 * 1024,
            prefetch: 64,
            log_format: "text".into(),
            purpose: None,
            subject_key: None,
            poll_ms: 500,
            consent_cache_secs: 30,
        }
    }
}

/// Names of the settings, for `--help` and error messages.
pub const KEYS: &[&str] = &[
    "http_addr",
    "mllp_addr",
    "amqp_url",
    "database_url",
    "data_dir",
    "prefix",
    "mappings",
    "parties",
    "body_limit",
    "prefetch",
    "log_format",
    "purpose",
    "subject_key",
    "poll_ms",
    "consent_cache_secs",
];

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

    /// Applies `KAIGO_*` overrides from `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let num = |k: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}=`{v}` is not a number"))
        };
        if let Some(v) = get("KAIGO_HTTP_ADDR") {
            self.http_addr = v;
        }
        if let Some(v) = get("KAIGO_MLLP_ADDR") {
            self.mllp_addr = v;
        }
        if let Some(v) = get("KAIGO_AMQP_URL") {
            self.amqp_url = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("KAIGO_DATABASE_URL") {
            self.database_url = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("KAIGO_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("KAIGO_PREFIX") {
            self.prefix = v;
        }
        if let Some(v) = get("KAIGO_MAPPINGS") {
            self.mappings = v.into();
        }
        if let Some(v) = get("KAIGO_PARTIES") {
            self.parties = v.into();
        }
        if let Some(v) = get("KAIGO_BODY_LIMIT") {
            self.body_limit = num("KAIGO_BODY_LIMIT", v)? as usize;
        }
        if let Some(v) = get("KAIGO_PREFETCH") {
            self.prefetch = num("KAIGO_PREFETCH", v)?.clamp(1, 65_535) as u16;
        }
        if let Some(v) = get("KAIGO_LOG_FORMAT") {
            self.log_format = v;
        }
        if let Some(v) = get("KAIGO_PURPOSE") {
            self.purpose = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("KAIGO_SUBJECT_KEY") {
            self.subject_key = Some(v);
        }
        if let Some(v) = get("KAIGO_POLL_MS") {
            self.poll_ms = num("KAIGO_POLL_MS", v)?;
        }
        if let Some(v) = get("KAIGO_CONSENT_CACHE_SECS") {
            self.consent_cache_secs = num("KAIGO_CONSENT_CACHE_SECS", v)?;
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(format!(
                "log_format `{}` must be text or json",
                self.log_format
            ));
        }
        Ok(())
    }

    /// The store URL: `database_url`, or the SQLite file under `data_dir`.
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
