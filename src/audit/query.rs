//! Finding events: an [`AuditFilter`] (envelope, subject hash, party, hop, decision, time range)
//! and [`query`] over any sequence of events.
//!
//! In: events and a filter. Out: the events that match, in the order given.

use super::{AuditEvent, Decision, Hop, SubjectHash, Timestamp};

/// Which events to return; every field set must match (an empty filter matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events about this envelope.
    pub envelope_id: Option<String>,
    /// Only events about this subject.
    pub subject: Option<SubjectHash>,
    /// Only events where this party is the actor or the counterpart.
    pub party: Option<String>,
    /// Only events at this hop.
    pub hop: Option<Hop>,
    /// Only events with this decision.
    pub decision: Option<Decision>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events strictly before this instant.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    /// Does `event` match? An event whose `at` does not parse never matches a time bound.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        fn same(want: Option<&str>, have: Option<&str>) -> bool {
            want.is_none() || want == have
        }
        if !same(self.envelope_id.as_deref(), event.envelope_id.as_deref())
            || !same(
                self.subject.as_ref().map(SubjectHash::as_str),
                event.subject.as_deref(),
            )
            || !same(
                self.decision.map(Decision::as_str),
                event.decision.as_deref(),
            )
            || self.hop.is_some_and(|h| h != event.hop)
        {
            return false;
        }
        if let Some(party) = &self.party
            && event.actor != *party
            && event.party.as_ref() != Some(party)
        {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = Timestamp::parse(&event.at) else {
                return false;
            };
            if self.since.as_ref().is_some_and(|since| at < *since)
                || self.until.as_ref().is_some_and(|until| at >= *until)
            {
                return false;
            }
        }
        true
    }
}

/// The events that match `filter`, in the order given.
pub fn query<'f>(
    events: impl IntoIterator<Item = AuditEvent> + 'f,
    filter: &'f AuditFilter,
) -> impl Iterator<Item = AuditEvent> + 'f {
    events.into_iter().filter(move |e| filter.matches(e))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hasher, sample_chain, ts};
    use super::*;

    #[test]
    fn query_filters_by_each_criterion() {
        let chain = sample_chain(12);
        let all = chain.events().to_vec();
        let count = |filter: AuditFilter| query(all.clone(), &filter).count();
        assert_eq!(count(AuditFilter::default()), 12);
        assert_eq!(
            count(AuditFilter {
                envelope_id: Some("env-1".into()),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(AuditFilter {
                subject: Some(hasher().hash("131011", "0000000001")),
                ..Default::default()
            }),
            3
        );
        assert_eq!(
            count(AuditFilter {
                party: Some("party-2".into()),
                ..Default::default()
            }),
            4
        );
        assert_eq!(
            count(AuditFilter {
                party: Some("hub:translate".into()),
                ..Default::default()
            }),
            12
        );
        assert_eq!(
            count(AuditFilter {
                hop: Some(Hop::Consent),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(AuditFilter {
                decision: Some(Decision::Deny),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(AuditFilter {
                since: Some(ts("2025-04-01T09:00:03Z")),
                until: Some(ts("2025-04-01T09:00:05.5Z")),
                ..Default::default()
            }),
            3
        );
        assert_eq!(
            count(AuditFilter {
                hop: Some(Hop::Ingress),
                decision: Some(Decision::Permit),
                envelope_id: Some("env-0".into()),
                ..Default::default()
            }),
            1
        );
        let filter = AuditFilter {
            envelope_id: Some("env-2".into()),
            ..Default::default()
        };
        let seqs: Vec<u64> = chain.query(&filter).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![5, 6]);
    }
}
