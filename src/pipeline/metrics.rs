//! Counters the hub exposes at `GET /metrics` in the Prometheus text format: messages accepted,
//! rejected, translated, delivered, quarantined and dead-lettered, and consent decisions by outcome.
//! Atomics only; reading never blocks the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};

/// The hub's counters.
#[derive(Default)]
pub struct Metrics {
    /// Messages accepted by a source (after consent #1 and the broker's confirm).
    pub accepted: AtomicU64,
    /// Messages refused at a source.
    pub rejected: AtomicU64,
    /// Messages refused at a source because the backlog was at `max_backlog`.
    pub busy: AtomicU64,
    /// Canonical documents published by the translate hop.
    pub translated: AtomicU64,
    /// Documents delivered to a recipient.
    pub delivered: AtomicU64,
    /// Copies whose recipient's sink failed and that were put in a waiting room to be tried
    /// again.
    pub delivery_retries: AtomicU64,
    /// Messages or copies sent to quarantine.
    pub quarantined: AtomicU64,
    /// Messages sent to the dead-letter queue.
    pub dead: AtomicU64,
    /// Quarantined copies dropped after `quarantine_keep_days`.
    pub quarantine_expired: AtomicU64,
    /// Dead letters dropped after `dead_keep_days`.
    pub dead_expired: AtomicU64,
    /// Consent decisions: permit.
    pub permit: AtomicU64,
    /// Consent decisions: deny.
    pub deny: AtomicU64,
    /// Consent decisions: indeterminate.
    pub indeterminate: AtomicU64,
    /// Consent decisions answered from this process's cache (no store read).
    pub consent_cache_hits: AtomicU64,
    /// Messages the translate hop took as ingress had mapped them (no second mapping run).
    pub mapped_once: AtomicU64,
    /// Transactions that recorded delivery keys (the deliver hop's group commit: documents
    /// delivered ÷ this = keys per transaction).
    pub delivery_key_groups: AtomicU64,
    /// Delivery keys forgotten because they were older than `delivered_keep_days`.
    pub delivery_keys_forgotten: AtomicU64,
    /// Changed mapping directories put in force (`serve --watch`).
    pub mappings_reloaded: AtomicU64,
    /// Changed mapping directories that failed to load (the previous set stayed in force).
    pub mappings_refused: AtomicU64,
    /// Hop consumers the broker ended (their queue deleted) that consume again.
    pub consumers_restarted: AtomicU64,
    /// Rows (originals and canonical documents) kept in the message archive.
    pub archive_kept: AtomicU64,
    /// Rows the archive could not keep (store unreachable, or too much waiting): the messages
    /// went on; only their archive copy is missing.
    pub archive_failed: AtomicU64,
    /// Archive rows forgotten because they were older than `archive_keep_days`.
    pub archive_pruned: AtomicU64,
    /// Mappings' warnings on accepted messages (fields of a later interface revision kept
    /// verbatim, a CSV file's record numbers or count off), each logged with the envelope id.
    pub mapping_warnings: AtomicU64,
}

impl Metrics {
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters with no labels: name, help, value.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 21] {
        [
            (
                "kaigo_messages_accepted_total",
                "Messages accepted by a source.",
                &self.accepted,
            ),
            (
                "kaigo_messages_rejected_total",
                "Messages refused at a source.",
                &self.rejected,
            ),
            (
                "kaigo_messages_busy_total",
                "Messages refused at a source because the backlog was at max_backlog (the sender retries).",
                &self.busy,
            ),
            (
                "kaigo_documents_translated_total",
                "Canonical documents published.",
                &self.translated,
            ),
            (
                "kaigo_documents_delivered_total",
                "Documents delivered to recipients.",
                &self.delivered,
            ),
            (
                "kaigo_delivery_retries_total",
                "Copies whose recipient's sink failed, put in a waiting room to be tried again.",
                &self.delivery_retries,
            ),
            (
                "kaigo_messages_quarantined_total",
                "Messages or copies quarantined.",
                &self.quarantined,
            ),
            (
                "kaigo_messages_dead_total",
                "Messages dead-lettered.",
                &self.dead,
            ),
            (
                "kaigo_quarantine_expired_total",
                "Quarantined copies dropped after quarantine_keep_days (each audited).",
                &self.quarantine_expired,
            ),
            (
                "kaigo_dead_expired_total",
                "Dead letters dropped after dead_keep_days (each audited).",
                &self.dead_expired,
            ),
            (
                "kaigo_mappings_reloaded_total",
                "Changed mapping directories put in force (serve --watch).",
                &self.mappings_reloaded,
            ),
            (
                "kaigo_mappings_refused_total",
                "Changed mapping directories that failed to load; the previous set stayed in force.",
                &self.mappings_refused,
            ),
            (
                "kaigo_consumers_restarted_total",
                "Hop consumers the broker ended (their queue deleted under the hub) that declared the topology again and consume again.",
                &self.consumers_restarted,
            ),
            (
                "kaigo_consent_cache_hits_total",
                "Consent decisions answered from the process's cache.",
                &self.consent_cache_hits,
            ),
            (
                "kaigo_translate_mapped_at_ingress_total",
                "Messages the translate hop took as this process's ingress had mapped them.",
                &self.mapped_once,
            ),
            (
                "kaigo_delivery_key_groups_total",
                "Transactions that recorded delivery keys (documents delivered / this = keys per transaction).",
                &self.delivery_key_groups,
            ),
            (
                "kaigo_delivery_keys_forgotten_total",
                "Delivery keys forgotten because they were older than delivered_keep_days.",
                &self.delivery_keys_forgotten,
            ),
            (
                "kaigo_archive_kept_total",
                "Rows (original messages and canonical documents) kept in the encrypted message archive.",
                &self.archive_kept,
            ),
            (
                "kaigo_archive_failed_total",
                "Rows the message archive could not keep (the messages went on; only their archive copy is missing).",
                &self.archive_failed,
            ),
            (
                "kaigo_archive_pruned_total",
                "Archive rows forgotten because they were older than archive_keep_days.",
                &self.archive_pruned,
            ),
            (
                "kaigo_mapping_warnings_total",
                "Mappings' warnings on accepted messages (a later interface revision's fields kept, a file's record numbers or count off); each is logged with its envelope id.",
                &self.mapping_warnings,
            ),
        ]
    }

    /// Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in self.counters() {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP kaigo_consent_decisions_total Consent decisions by outcome.\n# TYPE kaigo_consent_decisions_total counter\n");
        for (label, v) in [
            ("permit", &self.permit),
            ("deny", &self.deny),
            ("indeterminate", &self.indeterminate),
        ] {
            out.push_str(&format!(
                "kaigo_consent_decisions_total{{decision=\"{label}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_rendered_with_its_help_and_type_then_the_decisions_by_label() {
        let m = Metrics::default();
        Metrics::inc(&m.accepted);
        Metrics::inc(&m.deny);
        let text = m.render();
        assert!(text.starts_with(
            "# HELP kaigo_messages_accepted_total Messages accepted by a source.\n\
             # TYPE kaigo_messages_accepted_total counter\n\
             kaigo_messages_accepted_total 1\n\
             # HELP kaigo_messages_rejected_total Messages refused at a source.\n"
        ));
        assert_eq!(text.matches("# HELP ").count(), 22);
        assert_eq!(text.matches(" counter\n").count(), 22);
        assert!(text.ends_with(
            "# HELP kaigo_consent_decisions_total Consent decisions by outcome.\n\
             # TYPE kaigo_consent_decisions_total counter\n\
             kaigo_consent_decisions_total{decision=\"permit\"} 0\n\
             kaigo_consent_decisions_total{decision=\"deny\"} 1\n\
             kaigo_consent_decisions_total{decision=\"indeterminate\"} 0\n"
        ));
    }
}
