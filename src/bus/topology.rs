//! The RabbitMQ topology of DESIGN §3 as data: exchanges, queues, bindings, all named under a
//! configurable prefix (default `kaigo`) so tests and deployments can share one broker. Each bus
//! implementation declares this description idempotently at start; nothing here talks to a broker.

/// Exchange kinds used by the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Routing-key patterns with `*` and `#`.
    Topic,
    /// Exact routing key.
    Direct,
    /// Every bound queue.
    Fanout,
}

/// One exchange.
#[derive(Clone, Debug)]
pub struct ExchangeDecl {
    /// Full name.
    pub name: String,
    /// Kind.
    pub kind: ExchangeKind,
}

/// One queue.
#[derive(Clone, Debug)]
pub struct QueueDecl {
    /// Full name.
    pub name: String,
    /// Quorum queue (durable, replicated, supports `x-delivery-limit`).
    pub quorum: bool,
    /// Dead-letter exchange for rejected messages and those past the delivery limit.
    pub dead_letter_exchange: Option<String>,
    /// Deliveries before the broker dead-letters a message (poison handling).
    pub delivery_limit: Option<u32>,
    /// A waiting room: each message is dead-lettered (to `dead_letter_exchange`) this long after
    /// it arrived, and nobody consumes the queue. Every message of the queue waits the same time,
    /// so they leave in the order they came (a broker expires messages only at a queue's head).
    pub message_ttl: Option<std::time::Duration>,
}

/// One binding.
#[derive(Clone, Debug)]
pub struct BindingDecl {
    /// Queue.
    pub queue: String,
    /// Exchange.
    pub exchange: String,
    /// Routing-key pattern (`#` for all).
    pub key: String,
}

/// The hub's names and the declarations that make them exist.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Name prefix, e.g. `kaigo`.
    pub prefix: String,
    /// How many deliveries a message gets before it is dead-lettered.
    pub delivery_limit: u32,
}

impl Topology {
    /// The topology under `prefix`.
    pub fn new(prefix: &str) -> Topology {
        Topology {
            prefix: prefix.to_string(),
            delivery_limit: 5,
        }
    }

    fn n(&self, s: &str) -> String {
        format!("{}.{s}", self.prefix)
    }

    /// Exchange sources publish accepted raw messages to (`<format>.<document>` keys).
    pub fn ingress(&self) -> String {
        self.n("ingress")
    }
    /// Exchange vendors publish XML to over AMQP (their broker user may write only here).
    pub fn vendor_in(&self) -> String {
        self.n("vendor.in")
    }
    /// Exchange of canonical documents (`<category>.<document>` keys).
    pub fn canonical(&self) -> String {
        self.n("canonical")
    }
    /// Exchange of rendered outbound messages (key = recipient id).
    pub fn egress(&self) -> String {
        self.n("egress")
    }
    /// Dead-letter exchange (parse/mapping failures, poison messages).
    pub fn dead(&self) -> String {
        self.n("dead")
    }
    /// Quarantine exchange (consent denied, unknown subject).
    pub fn quarantine(&self) -> String {
        self.n("quarantine")
    }
    /// Fanout of consent changes to every hub process.
    pub fn consent(&self) -> String {
        self.n("consent")
    }
    /// Queue of the translate hop.
    pub fn translate_queue(&self) -> String {
        self.n("translate")
    }
    /// Queue of the deliver hop.
    pub fn deliver_queue(&self) -> String {
        self.n("deliver")
    }
    /// Queue of vendor messages awaiting ingress checks.
    pub fn vendor_queue(&self) -> String {
        self.n("vendor")
    }
    /// Dead-letter queue.
    pub fn dead_queue(&self) -> String {
        self.n("dead")
    }
    /// Quarantine queue.
    pub fn quarantine_queue(&self) -> String {
        self.n("quarantine")
    }
    /// A recipient's AMQP queue.
    pub fn out_queue(&self, party: &str) -> String {
        self.n(&format!("out.{party}"))
    }
    /// Exchange of copies waiting to be delivered again (direct; key = the waiting room's
    /// number, see [`Topology::wait_queue`]).
    pub fn wait(&self) -> String {
        self.n("deliver.wait")
    }
    /// Fanout the waiting rooms dead-letter into once a copy's time is up; bound to the deliver
    /// queue.
    pub fn again(&self) -> String {
        self.n("deliver.again")
    }
    /// Waiting room `room` (0, 1, …, [`Topology::wait_rooms`] − 1): a copy whose recipient's
    /// sink failed on its attempt `room + 1` waits here [`Topology::wait_time`]`(room)`, then goes
    /// back to the deliver queue, without holding up anything else.
    pub fn wait_queue(&self, room: u32) -> String {
        self.n(&format!("deliver.wait.{room}"))
    }
    /// How many waiting rooms: one per attempt that may still be followed by another.
    pub fn wait_rooms(&self) -> u32 {
        self.delivery_limit.saturating_sub(1).max(1)
    }
    /// How long a copy waits in room `room`: 0.5 s, 1 s, 2 s, … (the same backoff as every
    /// other retry of the hub, [`crate::pipeline::retry::backoff`]).
    pub fn wait_time(&self, room: u32) -> std::time::Duration {
        crate::pipeline::retry::backoff(room)
    }

    /// Exchanges to declare.
    pub fn exchanges(&self) -> Vec<ExchangeDecl> {
        use ExchangeKind::*;
        [
            (self.ingress(), Topic),
            (self.vendor_in(), Topic),
            (self.canonical(), Topic),
            (self.egress(), Direct),
            (self.dead(), Fanout),
            (self.quarantine(), Fanout),
            (self.consent(), Fanout),
            (self.wait(), Direct),
            (self.again(), Fanout),
        ]
        .into_iter()
        .map(|(name, kind)| ExchangeDecl { name, kind })
        .collect()
    }

    /// Queues to declare (recipient queues come from the parties file, see [`Topology::out_decl`]).
    pub fn queues(&self) -> Vec<QueueDecl> {
        let work = |name: String| QueueDecl {
            name,
            quorum: true,
            dead_letter_exchange: Some(self.dead()),
            delivery_limit: Some(self.delivery_limit),
            message_ttl: None,
        };
        let parking = |name: String| QueueDecl {
            name,
            quorum: true,
            dead_letter_exchange: None,
            delivery_limit: None,
            message_ttl: None,
        };
        let mut queues = vec![
            work(self.translate_queue()),
            work(self.deliver_queue()),
            work(self.vendor_queue()),
            parking(self.dead_queue()),
            parking(self.quarantine_queue()),
        ];
        queues.extend((0..self.wait_rooms()).map(|room| QueueDecl {
            name: self.wait_queue(room),
            quorum: true,
            dead_letter_exchange: Some(self.again()),
            delivery_limit: None,
            message_ttl: Some(self.wait_time(room)),
        }));
        queues
    }

    /// A recipient's queue declaration.
    pub fn out_decl(&self, party: &str) -> (QueueDecl, BindingDecl) {
        (
            QueueDecl {
                name: self.out_queue(party),
                quorum: true,
                dead_letter_exchange: None,
                delivery_limit: None,
                message_ttl: None,
            },
            BindingDecl {
                queue: self.out_queue(party),
                exchange: self.egress(),
                key: party.to_string(),
            },
        )
    }

    /// Bindings to declare.
    pub fn bindings(&self) -> Vec<BindingDecl> {
        let b = |queue: String, exchange: String| BindingDecl {
            queue,
            exchange,
            key: "#".into(),
        };
        let mut bindings = vec![
            b(self.translate_queue(), self.ingress()),
            b(self.deliver_queue(), self.canonical()),
            b(self.deliver_queue(), self.again()),
            b(self.vendor_queue(), self.vendor_in()),
            b(self.dead_queue(), self.dead()),
            b(self.quarantine_queue(), self.quarantine()),
        ];
        bindings.extend((0..self.wait_rooms()).map(|room| BindingDecl {
            queue: self.wait_queue(room),
            exchange: self.wait(),
            key: room.to_string(),
        }));
        bindings
    }
}

/// Does a topic routing key match a binding pattern (`*` one word, `#` zero or more)?
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = if key.is_empty() {
        vec![]
    } else {
        key.split('.').collect()
    };
    go(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let t = Topology::new("t1");
        assert_eq!(t.translate_queue(), "t1.translate");
        assert_eq!(t.out_queue("0300000005"), "t1.out.0300000005");
        assert!(t.exchanges().iter().all(|e| e.name.starts_with("t1.")));
    }

    #[test]
    fn each_attempt_but_the_last_has_a_waiting_room_that_leads_back_to_deliver() {
        let t = Topology::new("t1");
        assert_eq!(t.wait_rooms(), t.delivery_limit - 1);
        let rooms: Vec<QueueDecl> = t
            .queues()
            .into_iter()
            .filter(|q| q.message_ttl.is_some())
            .collect();
        assert_eq!(rooms.len() as u32, t.wait_rooms());
        for (room, q) in (0..).zip(&rooms) {
            assert_eq!(q.name, t.wait_queue(room));
            assert_eq!(q.message_ttl, Some(t.wait_time(room)));
            assert_eq!(q.dead_letter_exchange.as_deref(), Some(t.again().as_str()));
            assert!(
                t.bindings().iter().any(|b| b.queue == q.name
                    && b.exchange == t.wait()
                    && b.key == room.to_string())
            );
        }
        assert!(t.wait_time(1) > t.wait_time(0), "later rooms wait longer");
        assert!(
            t.bindings()
                .iter()
                .any(|b| b.queue == t.deliver_queue() && b.exchange == t.again())
        );
    }

    #[test]
    fn topic_patterns_match_like_rabbitmq() {
        assert!(topic_matches("#", "hl7v2.adt"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("care-plan.*", "care-plan.CarePlan@1"));
        assert!(!topic_matches(
            "care-plan.*",
            "certification.InsuredPerson@1"
        ));
        assert!(topic_matches(
            "*.InsuredPerson@1",
            "certification.InsuredPerson@1"
        ));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
        assert!(!topic_matches("a.*", "a.b.c"));
    }
}
