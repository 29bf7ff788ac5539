//! Declaring the topology on the broker: durable exchanges, durable quorum queues with their
//! dead-letter exchange, delivery limit, message TTL and at-least-once dead-lettering, and the
//! bindings, as `topology.rs` describes them (see the arguments in the bus's file header). In:
//! a [`Topology`] and the recipients named so far. Out: the broker holding them, and the
//! layout remembered for repairs of returned messages. Must never: redeclare a queue an older
//! kaigo-hub made with arguments the broker would refuse (it is used as it is, with a warning).

use super::super::BusError;
use super::super::topology::{ExchangeKind, QueueDecl, Topology};
use super::RabbitBus;
use super::broker_errors::{classify, soft_error};
use super::props::short;
use lapin::Channel;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable};

impl RabbitBus {
    /// Declares `t` and the out queues of `recipients` (the `Bus::declare` of this bus).
    pub(super) async fn declare_topology(
        &self,
        t: &Topology,
        recipients: &[String],
    ) -> Result<(), BusError> {
        let mut older: Vec<(String, BusError)> = Vec::new();
        loop {
            // A channel of its own: an inequivalent declaration makes the broker close it.
            let ch = self.channel("declaring the topology").await?;
            let r = self.declare_all(&ch, t, recipients, &older).await;
            if ch.status().connected() {
                let _ = ch.close(200, "OK".into()).await;
            }
            match r {
                Ok(()) => {
                    self.remember(t, recipients);
                    break;
                }
                Err(Declared::Failed(e)) => return Err(e),
                Err(Declared::Older(queue, refusal)) => older.push((queue, refusal)),
            }
        }
        for (queue, _) in &older {
            tracing::warn!(queue = %queue, "an older kaigo-hub declared this queue without at-least-once dead-lettering; it is used as it is (what it dead-letters is at-most-once) until it is deleted, when empty, and declared again");
        }
        Ok(())
    }

    /// Adds a `declare` call's topology and recipients to what a repair declares.
    fn remember(&self, t: &Topology, recipients: &[String]) {
        let mut layout = self.layout.lock().unwrap_or_else(|p| p.into_inner());
        let mut known = match layout.take() {
            Some((old, known)) if old.prefix == t.prefix => known,
            _ => Vec::new(),
        };
        for r in recipients {
            if !known.contains(r) {
                known.push(r.clone());
            }
        }
        *layout = Some((t.clone(), known));
    }

    async fn declare_all(
        &self,
        ch: &Channel,
        t: &Topology,
        recipients: &[String],
        older: &[(String, BusError)],
    ) -> Result<(), Declared> {
        for e in t.exchanges() {
            let what = format!("declaring exchange `{}`", e.name);
            let kind = match e.kind {
                ExchangeKind::Topic => lapin::ExchangeKind::Topic,
                ExchangeKind::Direct => lapin::ExchangeKind::Direct,
                ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            };
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            ch.exchange_declare(
                short(&what, "name", &e.name)?,
                kind,
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|err| classify(&what, err))?;
        }
        let (out_queues, out_bindings): (Vec<_>, Vec<_>) =
            recipients.iter().map(|r| t.out_decl(r)).unzip();
        for q in t.queues().iter().chain(&out_queues) {
            let what = format!("declaring queue `{}`", q.name);
            // A queue refused once as inequivalent is declared again with the arguments an
            // older kaigo-hub gave it (no at-least-once dead-lettering): if the broker accepts
            // those, it is that hub's queue, used as it is (the broker keeps a queue's
            // arguments for its life); if not, the first refusal says what really differs.
            let first_refusal = older.iter().find(|(n, _)| *n == q.name).map(|(_, e)| e);
            let as_older = first_refusal.is_some();
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let name = short(&what, "name", &q.name)?;
            match ch
                .queue_declare(name, options, queue_arguments(q, !as_older))
                .await
            {
                Ok(_) => {}
                Err(err)
                    if !as_older
                        && at_least_once(q)
                        && soft_error(&err) == Some(AMQPSoftError::PRECONDITIONFAILED) =>
                {
                    return Err(Declared::Older(q.name.clone(), classify(&what, err)));
                }
                Err(err) => {
                    let e = classify(&what, err);
                    return Err(match (first_refusal, &e) {
                        (Some(first), BusError::Refused(_)) => first.clone(),
                        _ => e,
                    }
                    .into());
                }
            }
        }
        for b in t.bindings().iter().chain(&out_bindings) {
            let what = format!(
                "binding queue `{}` to exchange `{}` with key `{}`",
                b.queue, b.exchange, b.key
            );
            ch.queue_bind(
                short(&what, "queue", &b.queue)?,
                short(&what, "exchange", &b.exchange)?,
                short(&what, "key", &b.key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|err| classify(&what, err))?;
        }
        Ok(())
    }
}

/// Why declaring the topology stopped.
enum Declared {
    /// The broker said no, or could not be reached.
    Failed(BusError),
    /// Declaring this queue with at-least-once dead-lettering was refused as inequivalent: it
    /// may be an older kaigo-hub's (declared again with that hub's arguments to find out; if
    /// those are refused too, this refusal is the one reported).
    Older(String, BusError),
}

impl From<BusError> for Declared {
    fn from(e: BusError) -> Declared {
        Declared::Failed(e)
    }
}

/// The arguments `q` is declared with; `current = false` gives those of a kaigo-hub before
/// at-least-once dead-lettering (2026-12-04), to recognise its queues.
fn queue_arguments(q: &QueueDecl, current: bool) -> FieldTable {
    let mut args = FieldTable::default();
    if q.quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    if let Some(dlx) = &q.dead_letter_exchange {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dlx.as_str().into()),
        );
    }
    if let Some(limit) = q.delivery_limit {
        // Deliveries (ours) → tolerated returns (RabbitMQ's); see the file header.
        let returns = i64::from(limit.max(1)) - 1;
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(returns));
    }
    if let Some(ttl) = q.message_ttl {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
    }
    if current && at_least_once(q) {
        // Whatever a hop's queue or a waiting room dead-letters must arrive: a quorum queue
        // dead-letters at most once unless told otherwise (the message is gone from the source
        // whether or not the target took it), and at-least-once needs publishers refused, not
        // messages dropped, should the queue ever be full (none of the hub's has a length
        // limit, so `reject-publish` never fires).
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    args
}

/// Does the hub declare `q` with at-least-once dead-lettering? Every quorum queue that
/// dead-letters does.
fn at_least_once(q: &QueueDecl) -> bool {
    q.quorum && q.dead_letter_exchange.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_limit_counts_deliveries_not_returns() {
        let q = |limit| QueueDecl {
            name: "q".into(),
            quorum: true,
            dead_letter_exchange: Some("t.dead".into()),
            delivery_limit: Some(limit),
            message_ttl: None,
        };
        let limit = |args: FieldTable| args.inner().get("x-delivery-limit").cloned();
        assert_eq!(
            limit(queue_arguments(&q(5), true)),
            Some(AMQPValue::LongLongInt(4))
        );
        assert_eq!(
            limit(queue_arguments(&q(1), true)),
            Some(AMQPValue::LongLongInt(0))
        );
        assert_eq!(
            limit(queue_arguments(&q(0), true)),
            Some(AMQPValue::LongLongInt(0))
        );
        let args = queue_arguments(&q(5), true);
        assert_eq!(
            args.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
    }

    #[test]
    fn queues_that_dead_letter_do_so_at_least_once_unless_recognising_an_older_hubs() {
        let t = Topology::new("t");
        let strategy = |args: &FieldTable| {
            args.inner()
                .get("x-dead-letter-strategy")
                .cloned()
                .zip(args.inner().get("x-overflow").cloned())
        };
        let at_least_once = Some((
            AMQPValue::LongString("at-least-once".into()),
            AMQPValue::LongString("reject-publish".into()),
        ));
        for q in t.queues() {
            let args = queue_arguments(&q, true);
            if q.dead_letter_exchange.is_some() {
                assert_eq!(strategy(&args), at_least_once, "{}", q.name);
                assert_eq!(strategy(&queue_arguments(&q, false)), None, "{}", q.name);
            } else {
                assert_eq!(strategy(&args), None, "{} dead-letters nothing", q.name);
            }
        }
    }
}
