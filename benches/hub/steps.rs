//! The single-thread cost of each per-message step, on a built memory hub with its SQLite store.

use crate::sample::{Identified, Sample};
use kaigo_hub::consent::{IsoDate, PartyId, Question, Recipient};
use kaigo_hub::pipeline::Hub;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) fn per_op(budget: Duration, mut op: impl FnMut(usize)) -> Duration {
    for i in 0..20 {
        op(i);
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        op(n);
        n += 1;
    }
    start.elapsed() / n.max(1) as u32
}

pub(crate) fn step_costs(hub: &Arc<Hub>, s: &Sample, id: &Identified) {
    let budget = Duration::from_millis(300);
    let docs = id.docs as f64;
    let parties = hub.parties.current();
    let Some((party, format)) = parties.recipients_of(&id.kind, &id.sender).first().cloned() else {
        return;
    };
    let mut rows: Vec<(String, f64, Duration)> = Vec::new();
    let translate = per_op(budget, |_| {
        let t = s.translate(hub).expect("translates");
        std::hint::black_box(t.documents);
    });
    // Ingress maps; the translate hop maps again only when ingress's result was not kept for it
    // (another process, a reload, or more waiting than the hand-off holds): the run's counters.
    let m = &hub.metrics;
    let accepted = m.accepted.load(Ordering::Relaxed).max(1) as f64;
    let again = 1.0 - m.mapped_once.load(Ordering::Relaxed) as f64 / accepted;
    rows.push((
        "mapping translate (at ingress; again in translate unless handed off)".into(),
        1.0 + again.clamp(0.0, 1.0),
        translate,
    ));
    let render = per_op(budget, |_| {
        std::hint::black_box(
            hub.mappings
                .current()
                .render(std::slice::from_ref(&id.first_doc), format, None)
                .ok(),
        );
    });
    rows.push((
        format!("render `{format}` for the recipient, per document"),
        docs,
        render,
    ));
    let q = Question {
        subject: id.subjects[0].clone(),
        recipient: Recipient {
            id: PartyId::parse(&party.id).expect("party id"),
            kind: party.kind,
        },
        category: id.category,
        purpose: None,
        on: IsoDate::parse(&kaigo_hub::pipeline::clock::today_jst()).expect("today"),
    };
    let decide = per_op(budget, |_| {
        assert!(hub.store.consents().decide(&q).is_permit());
    });
    rows.push((
        "consent decide (SQLite SELECT + JSON), 3 per document".into(),
        3.0 * docs,
        decide,
    ));
    let was = per_op(budget, |i| {
        std::hint::black_box(hub.store.was_delivered(&format!("probe/{i}/x")).ok());
    });
    rows.push((
        "was_delivered (SQLite SELECT), per document".into(),
        docs,
        was,
    ));
    let mark = per_op(budget, |i| {
        hub.store
            .mark_delivered(&format!("probe/{i}/{}", std::process::id()))
            .expect("mark");
    });
    rows.push((
        "mark_delivered (SQLite INSERT + WAL commit), per document".into(),
        docs,
        mark,
    ));
    println!(
        "single-thread cost per step ({}, on the MemoryBus hub's SQLite store under {}):",
        s.label,
        std::env::temp_dir().display()
    );
    let mut total = 0.0;
    for (name, times, d) in &rows {
        let per_msg = d.as_secs_f64() * 1e6 * times;
        total += per_msg;
        println!(
            "  {name:<58} {:>7.1} µs × {times:>4.2} = {per_msg:>6.0} µs/message",
            d.as_secs_f64() * 1e6
        );
    }
    // The audit writer thread: its rate, with its hash chain and 100 ms fsyncs.
    let n = 20_000;
    let t0 = Instant::now();
    for i in 0..n {
        hub.audit(
            kaigo_hub::audit::Hop::Consent,
            "bench",
            &format!("kprobe{i:020}"),
            |d| d,
        );
    }
    hub.audit.flush();
    let per_event = t0.elapsed() / n as u32;
    println!(
        "  {:<58} {:>7.1} µs per event on the writer thread ({n} events incl. flush)",
        "audit event append (hash chain, JSON Lines)",
        per_event.as_secs_f64() * 1e6
    );
    println!(
        "  these steps: {total:.0} µs per message (the rest: audit, JSON (de)serialisation, spawn_blocking, bus, task switches)"
    );
}
