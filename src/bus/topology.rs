//! The RabbitMQ topology of DESIGN §3 as data: exchanges, queues, bindings, all named under a
//! configurable prefix (default `kaigo`) so tests and deployments can share one broker. Each bus
//! implementation declares this description idempotently at start; nothing here talks to a broker.

use std::time::Duration;

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

impl ExchangeKind {
    /// Does a binding with `pattern` take a message published with routing key `key`?
    pub fn routes(self, pattern: &str, key: &str) -> bool {
        match self {
            ExchangeKind::Fanout => true,
            ExchangeKind::Direct => pattern == key,
            ExchangeKind::Topic => topic_matches(pattern, key),
        }
    }
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
    pub message_ttl: Option<Duration>,
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
    /// How long a recipient's copy waits after its sink failed on attempt 1, 2, …; one attempt
    /// more than there are delays, then the copy is dead-lettered. Each distinct delay is a
    /// waiting room of its own ([`Topology::wait_queue`]). Config `retry_delays_ms`.
    pub retry_delays: Vec<Duration>,
}

/// The default of `retry_delays_ms`: six attempts over 12½ minutes, so a recipient that
/// restarts or is briefly unreachable does not see its copies dead-lettered.
pub const DEFAULT_RETRY_DELAYS_MS: &[u64] = &[1_000, 5_000, 30_000, 120_000, 600_000];

impl Topology {
    /// The topology under `prefix`.
    pub fn new(prefix: &str) -> Topology {
        Topology {
            prefix: prefix.to_string(),
            delivery_limit: 5,
            retry_delays: DEFAULT_RETRY_DELAYS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
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
    /// Exchange of copies waiting to be delivered again (direct; key = the waiting time in
    /// milliseconds, see [`Topology::wait_queue`]).
    pub fn wait(&self) -> String {
        self.n("deliver.wait")
    }
    /// Fanout the waiting rooms dead-letter into once a copy's time is up; bound to the deliver
    /// queue.
    pub fn again(&self) -> String {
        self.n("deliver.again")
    }
    /// The waiting room of copies that wait `delay` before the deliver hop tries their recipient
    /// again: a queue nobody consumes whose messages all expire after `delay` (so they leave in
    /// the order they came) into [`Topology::again`]. Named and keyed by the delay, so a changed
    /// `retry_delays_ms` declares new rooms instead of clashing with the old ones' arguments.
    pub fn wait_queue(&self, delay: Duration) -> String {
        self.n(&format!("deliver.wait.{}", Self::wait_key(delay)))
    }
    /// Routing key of a waiting room on [`Topology::wait`]: the delay in milliseconds.
    pub fn wait_key(delay: Duration) -> String {
        delay.as_millis().to_string()
    }
    /// The delay after a sink failed on `attempt` (1, 2, …); `None` when that was the last.
    pub fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        let i = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.retry_delays.get(i).copied()
    }
    /// How many times the deliver hop tries a recipient before dead-lettering its copy.
    pub fn delivery_attempts(&self) -> u32 {
        u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX - 1) + 1
    }
    /// The distinct delays, each one waiting room, shortest first.
    pub fn wait_rooms(&self) -> Vec<Duration> {
        let mut rooms = self.retry_delays.clone();
        rooms.sort();
        rooms.dedup();
        rooms
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
        queues.extend(self.wait_rooms().into_iter().map(|delay| QueueDecl {
            name: self.wait_queue(delay),
            quorum: true,
            dead_letter_exchange: Some(self.again()),
            delivery_limit: None,
            message_ttl: Some(delay),
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
        bindings.extend(self.wait_rooms().into_iter().map(|delay| BindingDecl {
            queue: self.wait_queue(delay),
            exchange: self.wait(),
            key: Self::wait_key(delay),
        }));
        bindings
    }

    /// Would this topology, with `recipients`' queues, route a message published to `exchange`
    /// with `key` to at least one queue? The RabbitMQ bus asks when the broker returned a message
    /// as unroutable: if the declarations say it should have routed, a queue or binding was
    /// deleted under the hub and declaring them again repairs it; if not (a recipient without a
    /// queue, the consent fanout with no hub listening), nothing is missing.
    pub fn routes(&self, exchange: &str, key: &str, recipients: &[String]) -> bool {
        let Some(kind) = self.kind_of(exchange) else {
            return false;
        };
        let outs = recipients.iter().map(|r| self.out_decl(r).1);
        self.bindings()
            .into_iter()
            .chain(outs)
            .any(|b| b.exchange == exchange && kind.routes(&b.key, key))
    }

    /// Is `exchange` a fanout this topology binds no queue to (`kaigo.consent`: only hub
    /// processes' private queues listen, so "no queue" means "no process listening")?
    pub fn subscription_only(&self, exchange: &str) -> bool {
        self.kind_of(exchange) == Some(ExchangeKind::Fanout)
            && !self.bindings().iter().any(|b| b.exchange == exchange)
    }

    fn kind_of(&self, exchange: &str) -> Option<ExchangeKind> {
        self.exchanges()
            .into_iter()
            .find(|e| e.name == exchange)
            .map(|e| e.kind)
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
    fn routes_says_which_messages_the_declarations_bind_to_a_queue() {
        let t = Topology::new("t1");
        let recipients = ["1310000001".to_string()];
        assert!(t.routes("t1.ingress", "csv.care-plan", &[]));
        assert!(t.routes("t1.canonical", "care-plan.first", &[]));
        assert!(t.routes("t1.dead", "", &[]));
        assert!(t.routes("t1.deliver.wait", "1000", &[]));
        assert!(t.routes("t1.egress", "1310000001", &recipients));
        // A recipient with no AMQP queue, a waiting time with no room, the consent fanout
        // (bound only by hub processes' private queues), an exchange of another prefix.
        assert!(!t.routes("t1.egress", "1310000002", &recipients));
        assert!(!t.routes("t1.egress", "1310000001", &[]));
        assert!(!t.routes("t1.deliver.wait", "1001", &[]));
        assert!(!t.routes("t1.consent", "", &recipients));
        assert!(!t.routes("t2.ingress", "csv.care-plan", &[]));
        assert!(t.subscription_only("t1.consent"));
        assert!(
            !t.subscription_only("t1.dead"),
            "a fanout with a declared queue"
        );
        assert!(!t.subscription_only("t1.ingress"));
    }

    #[test]
    fn names_carry_the_prefix() {
        let t = Topology::new("t1");
        assert_eq!(t.translate_queue(), "t1.translate");
        assert_eq!(t.out_queue("0300000005"), "t1.out.0300000005");
        assert!(t.exchanges().iter().all(|e| e.name.starts_with("t1.")));
    }

    #[test]
    fn each_distinct_retry_delay_is_a_waiting_room_that_leads_back_to_deliver() {
        let mut t = Topology::new("t1");
        let ms = Duration::from_millis;
        t.retry_delays = vec![ms(100), ms(2000), ms(100)];
        assert_eq!(t.delivery_attempts(), 4);
        assert_eq!(t.retry_delay(1), Some(ms(100)));
        assert_eq!(t.retry_delay(2), Some(ms(2000)));
        assert_eq!(t.retry_delay(3), Some(ms(100)));
        assert_eq!(t.retry_delay(4), None, "the last attempt");
        assert_eq!(t.retry_delay(0), None);
        let rooms: Vec<QueueDecl> = t
            .queues()
            .into_iter()
            .filter(|q| q.message_ttl.is_some())
            .collect();
        assert_eq!(rooms.len(), 2, "one room per distinct delay");
        for q in &rooms {
            let delay = q.message_ttl.expect("a room");
            assert_eq!(q.name, t.wait_queue(delay));
            assert!(q.name.starts_with("t1.deliver.wait."), "{}", q.name);
            assert_eq!(q.dead_letter_exchange.as_deref(), Some(t.again().as_str()));
            assert!(t.bindings().iter().any(|b| b.queue == q.name
                && b.exchange == t.wait()
                && b.key == Topology::wait_key(delay)));
        }
        assert_eq!(t.wait_queue(ms(2000)), "t1.deliver.wait.2000");
        assert!(
            t.bindings()
                .iter()
                .any(|b| b.queue == t.deliver_queue() && b.exchange == t.again())
        );
        t.retry_delays.clear();
        assert_eq!(
            t.delivery_attempts(),
            1,
            "no retries: the first failure is the last"
        );
        assert!(t.queues().iter().all(|q| q.message_ttl.is_none()));
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
