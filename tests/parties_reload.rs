//! The parties file read again while the hub runs (`Running::reload`, what `kaigo-hub serve` does
//! on SIGHUP), on the real RabbitMQ: a provider added to the file receives the documents it
//! subscribes to from the next message on, on an out queue the reload declared, with no restart;
//! a file that does not load, or that names another hub, is refused naming the file and why, and
//! the parties in force stay; a party taken out of the file receives nothing more.

mod common;

use common::*;
use kaigo_hub::serve::Running;

/// A provider the shipped parties file does not list.
const NEWCOMER: &str = "0300000013";

/// The parties file text with `NEWCOMER` receiving InsuredPerson documents on its AMQP queue.
fn with_newcomer(parties: &str) -> String {
    format!(
        "{parties}  - id: \"{NEWCOMER}\"\n    name: 追加された事業所\n    kind: provider\n    receives:\n      - {{ document: InsuredPerson@1, format: canonical }}\n    delivery: amqp\n"
    )
}

async fn reload_parties(running: &Running, s: &Scratch) -> Result<String, String> {
    let outcomes = running.reload(&s.config()).await;
    assert_eq!(outcomes.len(), 1, "no certificates here: {outcomes:?}");
    outcomes.into_iter().next().expect("one outcome")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_added_to_the_file_receives_after_a_reload_and_a_broken_file_changes_nothing() {
    let mut s = Scratch::rabbit("parties-reload", |t| t);
    s.clean_out_queue_too(NEWCOMER);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let original = std::fs::read_to_string(&s.parties).expect("parties file");

    let receivers = || -> Vec<String> {
        hub.parties
            .current()
            .recipients_of("InsuredPerson@1", HOSPITAL)
            .iter()
            .map(|(p, _)| p.id.clone())
            .collect()
    };
    // Before: the newcomer is nobody.
    post_sample_patient(running.http_addr).await;
    provider
        .wait("the provider's first copy", |m| m.len() == 1)
        .await;
    assert!(!receivers().contains(&NEWCOMER.to_string()));

    // Added to the file and reloaded: its out queue is declared (the tap consumes it), and the
    // next message reaches it.
    put_atomically(&s.parties, with_newcomer(&original).as_bytes());
    let line = reload_parties(&running, &s)
        .await
        .expect("the new file loads");
    assert_eq!(
        line,
        format!("parties: {} (6 parties)", s.parties.display())
    );
    assert!(receivers().contains(&NEWCOMER.to_string()));
    let newcomer = Tap::new(hub.bus.as_ref(), &t.out_queue(NEWCOMER)).await;
    let envelope = post_sample_patient(running.http_addr).await;
    let got = newcomer.wait("the newcomer's copy", |m| m.len() == 1).await;
    assert_eq!(got[0].envelope(), envelope);
    assert_eq!(json(&got[0].body)["document"], "InsuredPerson@1");
    provider
        .wait("the provider's second copy", |m| m.len() == 2)
        .await;

    // A file that does not parse: refused with where and why; the newcomer still receives.
    put_atomically(&s.parties, b"hub: { id: \"9990000001\" }\nparties: [\n");
    let e = reload_parties(&running, &s)
        .await
        .expect_err("a broken file does not load");
    assert!(
        e.starts_with(&format!("parties: {}: line ", s.parties.display()))
            && e.ends_with("the parties in force stay"),
        "{e}"
    );
    // Another hub's file: refused, the hub's id takes a restart.
    let other_hub = with_newcomer(&original).replacen("9990000001", "9990000002", 1);
    put_atomically(&s.parties, other_hub.as_bytes());
    let e = reload_parties(&running, &s)
        .await
        .expect_err("another hub's id is refused");
    assert!(
        e.contains("hub.id is 9990000002 in the file and 9990000001 in force")
            && e.contains("restart"),
        "{e}"
    );
    assert_eq!(
        running.hub.platform().map(|p| p.id.to_string()),
        Some("9990000001".into())
    );
    post_sample_patient(running.http_addr).await;
    newcomer
        .wait("the newcomer's second copy", |m| m.len() == 2)
        .await;

    // Taken out of the file again: it receives nothing more, the others go on.
    put_atomically(&s.parties, original.as_bytes());
    reload_parties(&running, &s)
        .await
        .expect("the shipped file loads");
    post_sample_patient(running.http_addr).await;
    provider
        .wait("the provider's fourth copy", |m| m.len() == 4)
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(newcomer.all().len(), 2, "nothing after it left the file");
    running.stop().await;
}
