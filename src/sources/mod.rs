//! Sources: where messages enter — HTTP (FHIR, actix-web), MLLP (HL7 v2), the AMQP vendor queue
//! (XML) and file-drop inboxes (ケアプラン CSV). Each authenticates the party (API key, peer
//! allow-list, broker-validated `user_id`, inbox ownership), hands the bytes to
//! `pipeline::ingress::accept`, and answers its sender only after that returned: HTTP 202 /
//! `ACK` AA / AMQP ack once the broker confirmed; `OperationOutcome`, `ACK` AE/AR or
//! dead-lettering otherwise. Must never trust a claimed identity. Each source is started from its
//! own config struct (`HttpSourceConfig`, `MllpSourceConfig`, `FileDropConfig`,
//! `AmqpSourceConfig`), which `serve` makes from the settings; a listening source's `validate()`
//! checks its address here ([`check_listen_addr`]) before anything is bound.

pub mod amqp;
pub mod file_drop;
pub mod http;
pub mod mllp;
pub mod tls;

/// Checks a listening source's address setting (`http_addr`, `mllp_addr`) before anything is
/// bound: `HOST:PORT` (port 0 picks a free one). The error names the setting and its variable.
pub fn check_listen_addr(key: &str, addr: &str) -> Result<(), String> {
    let fits = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    match fits {
        true => Ok(()),
        false => Err(format!(
            "{key} ({}) is `{addr}`: expected HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free \
             one)",
            crate::config::variable(key)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_without_a_port_is_refused_naming_the_setting_and_variable() {
        for good in ["127.0.0.1:8080", "0.0.0.0:0", "[::1]:2575", "localhost:80"] {
            assert_eq!(check_listen_addr("http_addr", good), Ok(()), "{good}");
        }
        for bad in ["127.0.0.1", ":8080", "host:port", "127.0.0.1:70000", ""] {
            let e = check_listen_addr("mllp_addr", bad).expect_err(bad);
            assert!(e.starts_with("mllp_addr (KAIGO_MLLP_ADDR) is `"), "{e}");
        }
    }
}
