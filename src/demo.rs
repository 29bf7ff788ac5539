//! `kaigo-hub serve --demo`: shows the whole flow on the shipped samples without any setup.
//! It registers synthetic consents and patient-id links for the sample subjects (one person is
//! deliberately *not* consented to the municipality, so a refusal shows too, and one person of
//! the センター送信 file not at all, so one document-by-document verdict shows), then feeds every
//! sample in as its sender would: HL7 v2 and FHIR through ingress as the hospitals, ケアプラン CSV
//! into the care manager's and provider's inboxes, the 被保険者証 XML and the センター送信 file as
//! the municipality.
//! Only synthetic data; never used outside the demo.

use crate::consent::{Category, Consent, Grantee, IsoDate, PartyKind, Subject};
use crate::pipeline::Hub;
use crate::pipeline::ingress::{Submission, accept};
use std::path::Path;

/// Consents and links for the sample subjects.
pub fn seed(hub: &Hub) -> Result<(), String> {
    let reg = hub.store.consents();
    let subj = |a: &str, b: &str| Subject::new(a, b).map_err(|e| e.to_string());
    let people = [
        ("131011", "0000100001"),
        ("435073", "0000200002"),
        ("131011", "0000123456"),
        ("229997", "2200000077"),
        ("019992", "0100000099"),
        // Two of the three people of the センター送信 sample; the second (0000012346) has not
        // consented, so its four documents are kept while the others' go on.
        ("131011", "0000012345"),
        ("131011", "0000012347"),
    ];
    for (i, (a, b)) in people.iter().enumerate() {
        let mut grants = vec![
            (
                Grantee::Kind(PartyKind::Platform),
                vec![Category::Certification, Category::CarePlan],
            ),
            (
                Grantee::Kind(PartyKind::Provider),
                vec![Category::Certification, Category::CarePlan],
            ),
        ];
        // The second person has not consented to the municipality: its care plan copy for
        // 131011 is quarantined, never delivered.
        if i != 1 {
            grants.push((
                Grantee::Kind(PartyKind::Municipality),
                vec![Category::CarePlan],
            ));
        }
        for (j, (grantee, categories)) in grants.into_iter().enumerate() {
            let c = Consent {
                id: format!("demo-{i}-{j}")
                    .parse()
                    .map_err(|e: crate::consent::ValueError| e.to_string())?,
                subject: subj(a, b)?,
                grantee,
                categories,
                valid_from: IsoDate::parse("2000-01-01").map_err(|e| e.to_string())?,
                valid_to: None,
                purpose: None,
                revoked_at: None,
            };
            reg.grant(c).map_err(|e| e.to_string())?;
        }
    }
    let links = [
        ("1311234567", "00012345", "131011", "0000100001"),
        ("2710000015", "A-778", "435073", "0000200002"),
    ];
    for (party, local, a, b) in links {
        hub.store
            .link(party, local, &subj(a, b)?)
            .map_err(|e| e.0)?;
    }
    Ok(())
}

/// Feeds the samples under `samples` in as their senders would. Returns one line per input.
pub async fn feed(hub: &Hub, samples: &Path) -> Vec<String> {
    let mut report = Vec::new();
    let direct = [
        ("hl7v2/adt-a08.hl7", "1311234567", "mllp"),
        ("hl7v2/adt-a01-utf8.hl7", "2710000015", "mllp"),
        ("fhir/patient-jpcore.json", "1311234567", "http"),
        ("fhir/bundle-collection.json", "2710000015", "http"),
        ("xml/card-wareki.xml", "131011", "amqp"),
        (
            "certification/center-transmission-09b.csv",
            "131011",
            "file",
        ),
    ];
    let parties = hub.parties.current();
    for (file, party, via) in direct {
        let Some(p) = parties.get(party) else {
            report.push(format!("{file}: party {party} is not in the parties file"));
            continue;
        };
        let Ok(bytes) = std::fs::read(samples.join(file)) else {
            report.push(format!("{file}: not found"));
            continue;
        };
        let r = accept(
            hub,
            Submission {
                party: p,
                bytes: &bytes,
                file_name: Some(file),
                correlation_id: None,
                via,
            },
        )
        .await;
        report.push(match r {
            Ok(a) if a.refused.is_empty() => format!(
                "{file} from {party}: accepted as {} ({} document(s))",
                a.envelope_id, a.documents
            ),
            Ok(a) => format!(
                "{file} from {party}: accepted as {} ({} document(s), {} refused and kept in quarantine: {})",
                a.envelope_id,
                a.documents,
                a.refused.len(),
                a.refused
                    .iter()
                    .map(|r| format!("document {} {}", r.number, r.reason))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("{file} from {party}: refused: {e:?}"),
        });
    }
    // ケアプラン CSV goes through the file-drop inboxes, as care software would deliver it.
    if let Ok(entries) = std::fs::read_dir(samples.join("careplan")) {
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| n.ends_with(".CSV"))
            .collect();
        names.sort();
        for name in names {
            let from = crate::formats::csv::parse_careplan_file_name(&name)
                .map(|f| f.from_office)
                .unwrap_or_default();
            let inbox = parties.get(&from).and_then(|p| p.inbox.clone());
            match inbox {
                Some(dir) => {
                    // Written under a dot-name, then renamed: the file drop must never read
                    // a half-copied file (it skips dot-names, as senders are told to do).
                    let part = dir.join(format!(".{name}.part"));
                    let ok = std::fs::create_dir_all(&dir).is_ok()
                        && std::fs::copy(samples.join("careplan").join(&name), &part).is_ok()
                        && std::fs::rename(&part, dir.join(&name)).is_ok();
                    report.push(format!(
                        "{name}: {} {}",
                        if ok {
                            "dropped into"
                        } else {
                            "could not copy to"
                        },
                        dir.display()
                    ));
                }
                None => report.push(format!(
                    "{name}: sender {from} has no inbox in the parties file"
                )),
            }
        }
    }
    report
}
