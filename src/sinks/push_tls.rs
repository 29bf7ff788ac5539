//! HTTPS trust and client identity of the HTTP push sink (rustls, the aws-lc-rs provider lapin
//! already builds): turns `push_ca` and, when set, `push_client_cert` / `push_client_key` into the
//! rustls `ClientConfig` every `https://` push uses. In: [`PushTlsFiles`], made from the settings
//! by [`PushTlsFiles::from_settings`], which holds the rules of how they go together (the client
//! certificate and key in pairs, and only with `push_ca`; `Config::validate` and the sink's
//! `HttpPushSinkConfig` both ask it); out: the `ClientConfig`, or a [`PushTlsError`] naming the
//! setting, the file and what to do.
//! Loaded at start, so a broken file stops the start instead of failing every delivery, and
//! again on `serve`'s SIGHUP (`Sinks::reload`), when a broken file leaves those in force.
//! Must never trust anything but the CAs of `push_ca` (no system roots, no verification turned
//! off), or load a key it cannot pair with the certificate.

use crate::config::variable;
use crate::pem::{self, PemError};
use rustls::ClientConfig;
use std::path::PathBuf;

/// The files the HTTP push sink speaks HTTPS with, from push settings that fit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTlsFiles {
    /// `push_ca`: the CAs trusted for recipients' certificates (PEM).
    pub ca: PathBuf,
    /// `push_client_cert` and `push_client_key`: the hub's own certificate chain and its key
    /// (PEM), when it presents one.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl PushTlsFiles {
    /// The HTTPS files of the settings `push_ca`, `push_client_cert` and `push_client_key`:
    /// `None` when `push_ca` is unset (then only `http://` push works), or an error naming the
    /// settings that are half set, their variables, and what to do: `push_client_cert` and
    /// `push_client_key` go together, and they need `push_ca`.
    pub fn from_settings(
        ca: &Option<PathBuf>,
        client_cert: &Option<PathBuf>,
        client_key: &Option<PathBuf>,
    ) -> Result<Option<PushTlsFiles>, String> {
        let client = pem::cert_key_pair(
            "the hub's client certificate for HTTPS push",
            ("push_client_cert", client_cert),
            ("push_client_key", client_key),
        )?;
        match (ca, client) {
            (Some(ca), client) => Ok(Some(PushTlsFiles {
                ca: ca.clone(),
                client,
            })),
            (None, Some(_)) => Err(format!(
                "push_client_cert and push_client_key are set but push_ca is not: HTTPS push \
                 needs the CAs that issue the recipients' certificates; set push_ca ({}) as \
                 well, or unset the client certificate",
                variable("push_ca")
            )),
            (None, None) => Ok(None),
        }
    }
}

/// A push TLS setting whose file cannot be used (`push_ca`, `push_client_cert`, `push_client_key`).
pub type PushTlsError = PemError;

/// The rustls client configuration for `files`: server certificates verified against the CAs of
/// `push_ca` (for the URL's host name or IP address), and the hub's client certificate presented
/// to a recipient that asks for one, when `push_client_cert` / `push_client_key` are set.
pub fn client_config(files: &PushTlsFiles) -> Result<ClientConfig, PushTlsError> {
    let roots = pem::roots("push_ca", &files.ca)?;
    let builder = ClientConfig::builder_with_provider(pem::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PemError::Invalid {
            setting: "push_ca",
            file: files.ca.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots);
    let Some((cert, key)) = &files.client else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = pem::certificates("push_client_cert", cert)?;
    let key_der = pem::private_key("push_client_key", key)?;
    builder
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| PemError::Pair {
            cert_setting: "push_client_cert",
            cert: cert.clone(),
            key_setting: "push_client_key",
            key: key.clone(),
            message: format!("{e}; is the key the certificate's own?"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("kaigo-push-tls-unit-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    #[test]
    fn a_missing_push_ca_file_is_named_with_its_setting() {
        let missing = std::env::temp_dir().join("kaigo-push-tls-unit-does-not-exist.pem");
        let e = client_config(&PushTlsFiles {
            ca: missing.clone(),
            client: None,
        })
        .expect_err("no such file")
        .to_string();
        assert!(e.starts_with("push_ca "), "{e}");
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn a_push_ca_without_pem_certificates_is_named_and_explained() {
        let ca = scratch("not-a-ca.pem", "hello, I am not a certificate\n");
        let e = client_config(&PushTlsFiles {
            ca: ca.clone(),
            client: None,
        })
        .expect_err("no certificate")
        .to_string();
        let _ = std::fs::remove_file(&ca);
        assert!(e.starts_with("push_ca "), "{e}");
        assert!(e.contains(&ca.display().to_string()), "{e}");
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
    }

    #[test]
    fn a_broken_certificate_block_in_push_ca_is_an_error_not_a_panic() {
        let ca = scratch(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(&PushTlsFiles {
            ca: ca.clone(),
            client: None,
        })
        .expect_err("broken PEM")
        .to_string();
        let _ = std::fs::remove_file(&ca);
        assert!(
            e.starts_with("push_ca ") && e.contains(&ca.display().to_string()),
            "{e}"
        );
    }
}
