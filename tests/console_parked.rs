//! The Dead and quarantine page through real HTTP against a started hub (in-memory bus): a
//! ケアプラン file refused for want of consent is listed by reason with where and why; a viewer
//! sees it but gets no preview or replay buttons and a 403 for either POST; an operator previews
//! it (deny), the people consent, the preview says permit with the consent ids, and a replay to
//! the one chosen recipient delivers both care plans to it and nothing to the municipality,
//! audited with the operator as actor; "replay all of a reason" keeps another insurer's person
//! where it is. The client is `common::console_http`.

mod common;

use common::console_http::{Client, accounts_file};
use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::pipeline::Hub;
use kaigo_hub::pipeline::ingress::{self, Submission};

const OPS: (&str, &str) = ("ops-1", "operator password 1");
const VIEWER: (&str, &str) = ("view-1", "viewer password 1");

async fn refused(hub: &Hub, from: &str, bytes: &[u8], file_name: Option<&str>) -> String {
    let party = hub.parties.current().get(from).expect("party").clone();
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
        Err(ingress::Refusal::Forbidden { envelope_id, .. }) => envelope_id,
        other => panic!("expected a refusal, got {other:?}"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_previews_and_replays_to_a_chosen_recipient_and_a_viewer_only_looks() {
    let s = Scratch::memory("console-parked", |p| p);
    let mut cfg = s.config();
    cfg.console_accounts = Some(accounts_file(
        &s,
        &[(OPS.0, "operator", OPS.1), (VIEWER.0, "viewer", VIEWER.1)],
    ));
    let running = s.start_with(&cfg).await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let plan = sample(&format!("careplan/{UP2KYO}"));
    let envelope = refused(&hub, CARE_MANAGER, &plan, Some(UP2KYO)).await;
    let row = format!(r#"<tr data-envelope="{envelope}">"#);
    let tick = format!(r#"name="envelope" value="{envelope}""#);

    // A viewer sees the message by reason, with where and why, and nothing to press.
    let mut viewer = Client::new(running.http_addr);
    assert_eq!(viewer.sign_in(VIEWER.0, VIEWER.1).await.status, 303);
    let page = viewer.get("/console/parked").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for part in [
        r#"<section class="reason" data-queue="quarantine" data-reason="consent-denied">"#,
        row.as_str(),
        "consent-denied:no-consent",
        "--to platform --categories care-plan",
        r#"id="no-replay""#,
    ] {
        assert!(page.body.contains(part), "`{part}` in {}", page.body);
    }
    for absent in [
        r#"id="replay""#,
        r#"id="preview""#,
        "replay-reason",
        tick.as_str(),
    ] {
        assert!(!page.body.contains(absent), "`{absent}` for a viewer");
    }
    for path in ["/console/parked/preview", "/console/parked/replay"] {
        let csrf = page.csrf();
        let no = viewer
            .post(path, &[("csrf", &csrf), ("envelope", &envelope)])
            .await;
        assert_eq!(no.status, 403, "{path}: {}", no.body);
    }

    // An operator previews it: withheld again, for want of the platform's consent.
    let mut ops = Client::new(running.http_addr);
    assert_eq!(ops.sign_in(OPS.0, OPS.1).await.status, 303);
    let page = ops.get("/console/parked").await;
    for part in [
        tick.as_str(),
        r#"id="preview""#,
        r#"id="replay""#,
        r#"class="replay-reason""#,
        r#"name="recipient" value="0300000005""#,
    ] {
        assert!(page.body.contains(part), "`{part}` in {}", page.body);
    }
    let csrf = page.csrf();
    let preview = ops
        .post(
            "/console/parked/preview",
            &[("csrf", &csrf), ("envelope", &envelope)],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    for part in [
        r#"<table id="preview">"#,
        row.as_str(),
        r#"data-decision="deny" data-to="platform""#,
        r#"data-withheld="consent-denied:no-consent""#,
    ] {
        assert!(preview.body.contains(part), "`{part}` in {}", preview.body);
    }
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 1);

    // The people consent; the preview for the provider alone says permit, naming the consents.
    for (id, who, kind) in [
        ("p1-platform", PERSON_1, PartyKind::Platform),
        ("p2-platform", PERSON_2, PartyKind::Platform),
        ("p1-provider", PERSON_1, PartyKind::Provider),
        ("p2-provider", PERSON_2, PartyKind::Provider),
        ("p1-municipality", PERSON_1, PartyKind::Municipality),
    ] {
        grant(&hub, id, who, Grantee::Kind(kind), &[Category::CarePlan]).await;
    }
    let choice = [
        ("csrf", csrf.as_str()),
        ("envelope", envelope.as_str()),
        ("recipient", PROVIDER),
    ];
    let preview = ops.post("/console/parked/preview", &choice).await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    for part in [
        r#"data-decision="permit" data-to="platform" data-consent="p1-platform""#,
        r#"data-decision="permit" data-to="0300000005" data-consent="p1-provider""#,
        r#"data-decision="permit" data-to="0300000005" data-consent="p2-provider""#,
        r#"<form id="replay-form""#,
    ] {
        assert!(preview.body.contains(part), "`{part}` in {}", preview.body);
    }
    assert!(
        !preview.body.contains(r#"data-to="131011""#),
        "131011 was not chosen: {}",
        preview.body
    );

    // A replay without the form's token is refused; with it, the provider alone gets both.
    let forged = ops
        .post(
            "/console/parked/replay",
            &[("envelope", envelope.as_str()), ("recipient", PROVIDER)],
        )
        .await;
    assert_eq!(forged.status, 403);
    let done = ops.post("/console/parked/replay", &choice).await;
    assert_eq!(done.status, 200, "{}", done.body);
    for part in [
        r#"<div id="replay-result">"#,
        r#"<span data-count="replayed">1</span>"#,
        r#"<span data-count="kept">0</span>"#,
    ] {
        assert!(done.body.contains(part), "`{part}` in {}", done.body);
    }
    provider
        .wait("both care plans for 0300000005", |m| m.len() == 2)
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(provider.all().len(), 2);
    assert!(files(&s.out_dir(MUNICIPALITY)).is_empty(), "not chosen");
    let replays: Vec<serde_json::Value> = envelope_events(&s, &hub, &envelope)
        .into_iter()
        .filter(|e| e["hop"] == "replay")
        .collect();
    assert!(!replays.is_empty(), "the replay is audited");
    for e in &replays {
        assert_eq!(e["actor"], "console:ops-1", "{e}");
        assert_eq!(e["decision"], "accepted", "{e}");
        let reason = e["reason"].as_str().unwrap_or("");
        assert!(reason.ends_with(";for:0300000005"), "{e}");
    }
    // Each of the two previews asked both people's consent: audited with the operator, one
    // event per person (their keyed hashes), hop `admin`, reason `replay-preview`.
    let previews: Vec<serde_json::Value> = envelope_events(&s, &hub, &envelope)
        .into_iter()
        .filter(|e| e["hop"] == "admin" && e["reason"] == "replay-preview")
        .collect();
    assert_eq!(previews.len(), 4, "{previews:#?}");
    for e in &previews {
        assert_eq!(e["actor"], "console:ops-1", "{e}");
        assert!(e["subject"].is_string(), "{e}");
    }

    // All of a reason: another insurer's person stays, said so.
    let foreign = refused(&hub, MUNICIPALITY, &card_of_person_2(), None).await;
    let page = ops.get("/console/parked").await;
    assert!(
        page.body
            .contains(r#"data-queue="quarantine" data-reason="insurer-mismatch""#),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!(r#"<tr data-envelope="{foreign}">"#))
    );
    let kept = ops
        .post(
            "/console/parked/replay",
            &[
                ("csrf", &page.csrf()),
                ("reason", "quarantine/insurer-mismatch"),
            ],
        )
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert!(
        kept.body.contains(r#"<span data-count="kept">1</span>"#),
        "{}",
        kept.body
    );
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 1);
    running.stop().await;
}
