//! Sources: where messages enter — HTTP (FHIR, actix-web), MLLP (HL7 v2), the AMQP vendor queue
//! (XML) and file-drop inboxes (ケアプラン CSV). Each authenticates the party (API key, peer
//! allow-list, broker-validated `user_id`, inbox ownership), hands the bytes to
//! `pipeline::ingress::accept`, and answers its sender only after that returned: HTTP 202 /
//! `ACK` AA / AMQP ack once the broker confirmed; `OperationOutcome`, `ACK` AE/AR or
//! dead-lettering otherwise. Must never trust a claimed identity.

pub mod amqp;
pub mod file_drop;
pub mod http;
pub mod mllp;
pub mod tls;
