//! What the HTTP source itself writes to the audit log (everything `ingress::accept` decides is
//! audited there): requests from an authenticated party refused before `accept` (wrong media
//! type, too large, not JSON, wrong `resourceType`) and consent registrations. Ids, codes and the
//! keyed subject hash only; never a body, a key or an error text that could quote data.

use crate::audit::{AuditDraft, Decision, Hop, SubjectHash, Timestamp};
use crate::pipeline::metrics::Metrics;
use crate::pipeline::{Hub, clock};

/// `actor` is the source (`http`), as for events written by `accept`.
const ACTOR: &str = "http";

fn now() -> Option<Timestamp> {
    Timestamp::parse(&clock::now_rfc3339()).ok()
}

/// A message from `party` refused before it reached `accept`; nothing was kept.
pub fn refused_at_the_door(hub: &Hub, party: &str, reason: &str) {
    Metrics::inc(&hub.metrics.rejected);
    if let Some(at) = now() {
        hub.audit.record(
            AuditDraft::new(at, Hop::Ingress, ACTOR)
                .party(party)
                .decision(Decision::Rejected)
                .reason(reason),
        );
    }
    tracing::info!(source = party, reason, "HTTP submission refused");
}

/// `party` registered (or, for an `inactive` Consent, revoked) consent grant `consent_id`.
pub fn consent_registered(hub: &Hub, party: &str, consent_id: &str, subject: SubjectHash) {
    if let Some(at) = now() {
        hub.audit.record(
            AuditDraft::new(at, Hop::Admin, party)
                .subject(subject)
                .decision(Decision::Accepted)
                .reason(consent_id),
        );
    }
}

/// `party` tried to register consents and was refused for `reason` (a code).
pub fn consent_refused(hub: &Hub, party: &str, reason: &str) {
    if let Some(at) = now() {
        hub.audit.record(
            AuditDraft::new(at, Hop::Admin, party)
                .decision(Decision::Rejected)
                .reason(reason),
        );
    }
    tracing::info!(source = party, reason, "consent registration refused");
}
