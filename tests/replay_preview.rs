//! Replay with a preview (issue 18), on the in-memory bus and on the real RabbitMQ: a ケアプラン
//! file whose people have consented to nothing is refused at ingress and kept in quarantine; the
//! preview says each document would be withheld (`deny`, `no-consent`) and moves nothing; once
//! the people consent (to the platform, to providers, one of them to the municipality) the
//! preview says permit, naming each consent id, per document and recipient; a replay to the one
//! chosen recipient delivers both care plans to it and nothing to the municipality, which would
//! have been permitted one. A 被保険者証 a municipality sent of another insurer's person is
//! previewed as staying, and no replay releases it. The listing groups the parked messages by
//! reason with the error's location.
//!
//! Each test runs a hub in-process under a topology prefix of its own (RabbitMQ at
//! amqp://guest:guest@127.0.0.1:5672/%2f or `KAIGO_TEST_AMQP_URL`; it fails when unreachable).

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::pipeline::Hub;
use kaigo_hub::pipeline::ingress::{self, Refusal, Submission};
use kaigo_hub::pipeline::preview::{Answer, DocumentPreview, Preview, Would};
use kaigo_hub::pipeline::replay::{self, Parked, Selection, Step};

/// What a replay of quarantine would do now, for every message; and the queue keeps them all.
async fn preview_all(hub: &Hub, to: Option<&[String]>) -> Vec<Preview> {
    let t = &hub.topology;
    let before = hub.bus.queue_len(&t.quarantine_queue()).await.expect("len");
    let all = Selection::default();
    let select = |p: &kaigo_hub::bus::Props| all.takes(p);
    let previewed = replay::preview_parked(hub, Parked::Quarantine, &select, to)
        .await
        .expect("preview");
    // Each message read was put straight back (on RabbitMQ a copy the reader had prefetched
    // again is returned when its channel closes, a moment later).
    eventually("a preview keeps every message where it was", async || {
        hub.bus.queue_len(&t.quarantine_queue()).await.expect("len") == before
    })
    .await;
    previewed.into_iter().map(|(_, p, _)| p).collect()
}

fn documents(p: &Preview) -> &[DocumentPreview] {
    match &p.would {
        Would::Documents(d) => d,
        other => panic!("expected the documents' fates, got {other:?}"),
    }
}

/// Each recipient's answer of a document, as (party, answer).
fn answers(d: &DocumentPreview) -> Vec<(String, Answer)> {
    d.recipients
        .iter()
        .map(|r| (r.party.clone(), r.answer.clone()))
        .collect()
}

fn permit(consent: &str) -> Answer {
    Answer::Permit(Some(consent.to_string()))
}

async fn submit(hub: &Hub, from: &str, bytes: &[u8], file_name: Option<&str>) -> Refusal {
    let party = hub
        .parties
        .current()
        .get(from)
        .unwrap_or_else(|| panic!("party {from}"))
        .clone();
    let said = ingress::accept(
        hub,
        Submission {
            party: &party,
            bytes,
            file_name,
            correlation_id: None,
            via: "test",
        },
    )
    .await;
    match said {
        Err(r) => r,
        Ok(a) => panic!("expected a refusal, got {a:?}"),
    }
}

fn card_of_person_2() -> Vec<u8> {
    let xml = String::from_utf8(sample("xml/card-wareki.xml")).expect("UTF-8 sample");
    xml.replace(
        r#"<hk:保険者 number="131011">"#,
        r#"<hk:保険者 number="435073">"#,
    )
    .replace(
        r#"<hk:被保険者 number="0000123456""#,
        r#"<hk:被保険者 number="0000200002""#,
    )
    .into_bytes()
}

async fn preview_grant_and_replay_to_a_chosen_recipient(s: Scratch) {
    let running = s.start().await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;

    // 1. Nobody consented: ingress refuses the file and keeps it whole in quarantine.
    let plan = sample(&format!("careplan/{UP2KYO}"));
    let refused = submit(&hub, CARE_MANAGER, &plan, Some(UP2KYO)).await;
    let Refusal::Forbidden {
        envelope_id: envelope,
        reason,
        ..
    } = refused
    else {
        panic!("no consent: refused, got {refused:?}");
    };
    assert_eq!(reason, "consent-denied:no-consent");
    eventually("the refused file waits in quarantine", async || {
        hub.bus.queue_len(&t.quarantine_queue()).await.unwrap() == 1
    })
    .await;

    // 2. The preview: both documents would be withheld again, for want of consent #1/#2.
    let previewed = preview_all(&hub, None).await;
    assert_eq!(previewed.len(), 1);
    assert_eq!(previewed[0].envelope, envelope);
    let docs = documents(&previewed[0]);
    assert_eq!(docs.len(), 2, "{docs:#?}");
    for d in docs {
        assert_eq!(d.kind, "CarePlan@1");
        assert!(
            matches!(&d.platform, Some(Answer::Deny { reason, .. }) if reason == "no-consent"),
            "{d:#?}"
        );
        let (code, detail) = d.withheld.as_ref().expect("withheld");
        assert_eq!(code, "consent-denied:no-consent");
        assert!(detail.contains("--to platform"), "{detail}");
        assert!(d.recipients.is_empty(), "{d:#?}");
    }

    // 3. The people consent: both to the platform and to providers, person 1 to the municipality.
    for (id, who, kind) in [
        ("p1-platform", PERSON_1, PartyKind::Platform),
        ("p2-platform", PERSON_2, PartyKind::Platform),
        ("p1-provider", PERSON_1, PartyKind::Provider),
        ("p2-provider", PERSON_2, PartyKind::Provider),
        ("p1-municipality", PERSON_1, PartyKind::Municipality),
    ] {
        grant(&hub, id, who, Grantee::Kind(kind), &[Category::CarePlan]).await;
    }

    // 4. The preview again: permit, with each consent id, per document and recipient.
    let previewed = preview_all(&hub, None).await;
    let docs = documents(&previewed[0]);
    assert_eq!(docs.len(), 2);
    let mut platform: Vec<Answer> = docs.iter().filter_map(|d| d.platform.clone()).collect();
    platform.sort_by_key(|a| a.to_string());
    assert_eq!(platform, [permit("p1-platform"), permit("p2-platform")]);
    let one = docs
        .iter()
        .find(|d| d.platform == Some(permit("p1-platform")))
        .expect("person 1's care plan");
    let two = docs
        .iter()
        .find(|d| d.platform == Some(permit("p2-platform")))
        .expect("person 2's care plan");
    assert_eq!(one.withheld, None);
    assert_eq!(
        answers(one),
        [
            (PROVIDER.to_string(), permit("p1-provider")),
            (MUNICIPALITY.to_string(), permit("p1-municipality")),
        ]
    );
    let to_two = answers(two);
    assert_eq!(to_two[0], (PROVIDER.to_string(), permit("p2-provider")));
    let (party, Answer::Deny { reason, detail }) = &to_two[1] else {
        panic!("person 2 did not consent to the municipality: {to_two:?}");
    };
    assert_eq!(party, MUNICIPALITY);
    assert_eq!(reason, "recipient-not-covered");
    assert!(detail.contains("--to 131011"), "{detail}");

    // Chosen recipients narrow the preview as they narrow the replay.
    let only_provider = vec![PROVIDER.to_string()];
    let previewed = preview_all(&hub, Some(&only_provider)).await;
    for d in documents(&previewed[0]) {
        let parties: Vec<String> = d.recipients.iter().map(|r| r.party.clone()).collect();
        assert_eq!(parties, [PROVIDER], "{d:#?}");
    }

    // 5. Replay to the provider alone: it gets both care plans; the municipality gets nothing,
    // though person 1's consent would have let it.
    let mut replayed = Vec::new();
    let all = Selection::default();
    let select = |p: &kaigo_hub::bus::Props| all.takes(p);
    let summary = replay::replay_to(
        hub.bus.as_ref(),
        &t,
        Parked::Quarantine,
        &select,
        Some(&only_provider),
        &mut |step, _| replayed.push(step.clone()),
    )
    .await
    .expect("replay");
    assert_eq!((summary.replayed, summary.held), (1, 0));
    assert!(matches!(&replayed[0], Step::Replayed { envelope: e, .. } if *e == envelope));
    let got = provider
        .wait("both care plans for 0300000005", |m| m.len() == 2)
        .await;
    assert!(got.iter().all(|m| m.envelope() == envelope));
    tokio::time::sleep(QUIET).await;
    assert_eq!(provider.all().len(), 2, "once each");
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "131011 was not chosen"
    );
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 0);
    assert_eq!(hub.bus.queue_len(&t.dead_queue()).await.unwrap(), 0);

    // 6. Another insurer's person, sent by a municipality: the preview says it stays, and a
    // replay keeps it.
    let refused = submit(&hub, MUNICIPALITY, &card_of_person_2(), None).await;
    let Refusal::Forbidden {
        envelope_id: foreign,
        reason,
        ..
    } = refused
    else {
        panic!("another insurer's person: refused, got {refused:?}");
    };
    assert_eq!(reason, "insurer-mismatch");
    eventually("the card waits in quarantine", async || {
        hub.bus.queue_len(&t.quarantine_queue()).await.unwrap() == 1
    })
    .await;
    let previewed = preview_all(&hub, None).await;
    assert_eq!(previewed.len(), 1);
    assert_eq!(previewed[0].envelope, foreign);
    assert!(
        matches!(&previewed[0].would, Would::Stay { code, why } if code == "insurer-mismatch" && why.contains("no later fact can cure it")),
        "{:?}",
        previewed[0].would
    );
    let listed = replay::list(hub.bus.as_ref(), &t, Parked::Quarantine, &|_| true)
        .await
        .expect("list");
    let groups = replay::grouped(listed);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].reason, "insurer-mismatch");
    let m = &groups[0].messages[0];
    assert_eq!(
        (m.hop.as_str(), m.source.as_str()),
        ("ingress", MUNICIPALITY)
    );
    assert!(m.location.contains("another insurer"), "{}", m.location);
    assert!(!m.location.contains("435073"), "no numbers: {}", m.location);
    assert!(m.stays.is_some());
    let summary = replay::replay_to(
        hub.bus.as_ref(),
        &t,
        Parked::Quarantine,
        &select,
        None,
        &mut |_, _| {},
    )
    .await
    .expect("replay");
    assert_eq!((summary.replayed, summary.held), (0, 1));
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preview_grant_and_replay_to_a_chosen_recipient_on_the_memory_bus() {
    preview_grant_and_replay_to_a_chosen_recipient(Scratch::memory("replay-preview-mem", |p| p))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preview_grant_and_replay_to_a_chosen_recipient_on_rabbitmq() {
    preview_grant_and_replay_to_a_chosen_recipient(Scratch::rabbit("replay-preview", |p| p)).await;
}

/// `kaigo-hub replay quarantine <args…>` against this test's broker prefix, parties, mappings
/// and store (its audit events go to the CLI's chain beside the hub's).
fn cli(s: &Scratch, args: &[&str]) -> std::process::Output {
    let cfg = s.config();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    command
        .args(["replay", "quarantine"])
        .args(args)
        .current_dir(&s.dir)
        .env("KAIGO_AMQP_URL", amqp_url())
        .env("KAIGO_PREFIX", &s.prefix)
        .env("KAIGO_DATA_DIR", &cfg.data_dir)
        .env("KAIGO_PARTIES", &cfg.parties)
        .env("KAIGO_MAPPINGS", &cfg.mappings);
    if let Some(url) = &cfg.database_url {
        command.env("KAIGO_DATABASE_URL", url);
    }
    command.output().expect("kaigo-hub runs")
}

fn said(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "replay failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_command_line_lists_previews_and_replays_to_a_chosen_recipient() {
    let s = Scratch::rabbit("replay-preview-cli", |p| p);
    let running = s.start().await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let plan = sample(&format!("careplan/{UP2KYO}"));
    let Refusal::Forbidden {
        envelope_id: envelope,
        ..
    } = submit(&hub, CARE_MANAGER, &plan, Some(UP2KYO)).await
    else {
        panic!("no consent: refused");
    };
    eventually("the refused file waits in quarantine", async || {
        hub.bus.queue_len(&t.quarantine_queue()).await.unwrap() == 1
    })
    .await;

    let listed = said(&cli(&s, &["--list"]));
    for part in [
        "consent-denied:no-consent (1)",
        &format!("  {envelope} from {CARE_MANAGER} at ingress"),
        "--to platform --categories care-plan",
        "1 parked",
    ] {
        assert!(listed.contains(part), "`{part}` in {listed}");
    }

    for (id, who, kind) in [
        ("p1-platform", PERSON_1, PartyKind::Platform),
        ("p2-platform", PERSON_2, PartyKind::Platform),
        ("p1-provider", PERSON_1, PartyKind::Provider),
        ("p2-provider", PERSON_2, PartyKind::Provider),
    ] {
        grant(&hub, id, who, Grantee::Kind(kind), &[Category::CarePlan]).await;
    }
    let previewed = said(&cli(
        &s,
        &["--preview", "--id", &envelope, "--to", PROVIDER],
    ));
    for part in [
        "platform permit (consent p1-platform)",
        "platform permit (consent p2-platform)",
        "→ 0300000005: permit (consent p1-provider)",
        "→ 0300000005: permit (consent p2-provider)",
        "1 previewed (audited); nothing was published or moved",
    ] {
        assert!(previewed.contains(part), "`{part}` in {previewed}");
    }
    // The preview asked both people's consent: one admin event each, with their keyed hashes.
    let cli_events = |hop: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(s.config().data_dir.join("audit-cli.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| e["hop"] == hop && e["envelope_id"] == envelope)
            .collect()
    };
    let previews = cli_events("admin");
    let mut who: Vec<&str> = previews
        .iter()
        .inspect(|e| assert_eq!(e["reason"], "replay-preview", "{e}"))
        .filter_map(|e| e["subject"].as_str())
        .collect();
    who.sort_unstable();
    let mut want = [
        hub.subject_hash(&subject(PERSON_1)),
        hub.subject_hash(&subject(PERSON_2)),
    ];
    want.sort_unstable();
    assert_eq!(
        who,
        want.iter().map(String::as_str).collect::<Vec<_>>(),
        "{previews:#?}"
    );
    assert!(!previewed.contains("→ 131011"), "{previewed}");
    eventually("the preview kept the message", async || {
        hub.bus.queue_len(&t.quarantine_queue()).await.unwrap() == 1
    })
    .await;

    let nobody = cli(&s, &["--to", "9999999999"]);
    assert!(!nobody.status.success());
    let err = String::from_utf8_lossy(&nobody.stderr);
    assert!(
        err.contains("--to 9999999999: no party 9999999999"),
        "{err}"
    );
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 1);

    let replayed = said(&cli(&s, &["--reason", "consent-denied", "--to", PROVIDER]));
    assert!(replayed.contains("1 replayed, 0 kept"), "{replayed}");
    assert!(replayed.contains(" for 0300000005"), "{replayed}");
    provider
        .wait("both care plans for 0300000005", |m| m.len() == 2)
        .await;
    tokio::time::sleep(QUIET).await;
    assert!(files(&s.out_dir(MUNICIPALITY)).is_empty(), "not chosen");
    let events = cli_events("replay");
    assert!(!events.is_empty(), "the replay is audited");
    for e in &events {
        let reason = e["reason"].as_str().unwrap_or("");
        assert_eq!(reason, format!("to:{};for:{PROVIDER}", t.ingress()), "{e}");
    }
    running.stop().await;
}
