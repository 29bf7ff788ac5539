//! Telling every running hub process of a consent change, and knowing that each one heard. In:
//! changes already stored, the store's process registry ([`crate::store::processes`], written by
//! every `serve`), and — for a change made inside a hub process (`POST /fhir/Consent`,
//! [`super::Hub::grant_consent`]) — that process's own bus. Out: a [`Reach`]: the processes that
//! applied the change, those that did not (why, and by when the change is in force there anyway:
//! when their cached copies expire), those that need no word (the in-memory bus or
//! `consent_cache_secs = 0`: they read the store at every decision), those passed over (no
//! heartbeat for [`SILENT_AFTER`]: their cache answers no more), and the buses and prefixes it
//! announced on.
//!
//! How: the registered processes that may answer from a cached copy are grouped by bus URL and
//! prefix, as they recorded them; on each group's `<prefix>.consent` fanout the changes are
//! announced (on the caller's own connection when that is the group's bus, otherwise on a
//! connection of its own, logging in with the caller's credentials: the registry holds none); each
//! process's consent feed drops its copy, then records the id of the change as applied in the
//! store; this waits, bounded, until every process of every group recorded the last change
//! announced to it. A process's feed reads its events in order, so the last one applied means
//! every earlier one was.
//!
//! Must never: call a process told that did not record the change, or show a credential.

use super::consent_feed::{ConsentChanged, announce};
use super::presence::SILENT_AFTER;
use crate::bus::rabbitmq::{RabbitBus, user_of, with_credentials_of};
use crate::bus::{Bus, Topology};
use crate::store::processes::{ListedProcess, ProcessRecord};
use crate::store::{self, Store};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the store is read for acknowledgements while waiting.
const POLL: Duration = Duration::from_millis(50);

/// Who announces, and how.
pub struct Teller<'a> {
    /// The store whose registry lists the processes (and where they acknowledge).
    pub store: &'a Arc<dyn Store>,
    /// The caller's own bus, when it is a hub process: always announced on (listeners that never
    /// registered, such as a library user's hub, hear it too), and used for the processes
    /// registered on the same bus URL and prefix.
    pub own: Option<OwnBus<'a>>,
    /// A RabbitMQ URL whose user and password log in to the buses of the other groups (the
    /// caller's `amqp_url`); `None`: the broker's default user, `guest`.
    pub credentials: Option<&'a str>,
    /// The caller's own registration, not waited for (it dropped its copy itself).
    pub exclude: Option<&'a str>,
    /// How long to wait for the acknowledgements (`consent_ack_secs`).
    pub wait: Duration,
}

/// A hub process's own bus.
pub struct OwnBus<'a> {
    /// The bus.
    pub bus: &'a dyn Bus,
    /// Its URL without credentials; `None` for the in-memory bus.
    pub url: Option<&'a str>,
    /// Its topology (the prefix).
    pub topology: &'a Topology,
}

/// A process that did not acknowledge a change.
#[derive(Debug, Clone)]
pub struct Unheard {
    /// The process.
    pub process: ProcessRecord,
    /// Why: not told (the broker refused or was unreachable, the reason given) or no answer.
    pub why: String,
}

/// What became of an announcement.
#[derive(Debug, Clone)]
pub struct Reach {
    /// When the change was in the store (the expiry of a cached copy counts from then).
    pub stored_at: SystemTime,
    /// The buses and prefixes announced on ([`bus_text`]).
    pub announced_on: Vec<String>,
    /// Processes that recorded the change as applied.
    pub applied: Vec<ProcessRecord>,
    /// Processes that did not.
    pub unheard: Vec<Unheard>,
    /// Processes that read the store at every decision: nothing to tell them.
    pub store_only: Vec<ProcessRecord>,
    /// Registrations passed over: no heartbeat for [`SILENT_AFTER`].
    pub silent: Vec<ListedProcess>,
    /// Announcements that failed on a bus no registered process listens on (the caller's own).
    pub problems: Vec<String>,
    /// Why the registry could not be read, if it could not: then nobody is known to have heard.
    pub unreadable_registry: Option<String>,
}

/// A bus and prefix, for people: `RabbitMQ amqp://host:5672/%2f, prefix `kaigo`` or `the
/// in-memory bus, prefix `kaigo``.
pub fn bus_text(url: Option<&str>, prefix: &str) -> String {
    match url {
        Some(url) => format!("RabbitMQ {url}, prefix `{prefix}`"),
        None => format!("the in-memory bus, prefix `{prefix}`"),
    }
}

fn bus_of(p: &ProcessRecord) -> String {
    bus_text(p.bus_url.as_deref(), &p.prefix)
}

/// The processes registered on one bus URL and prefix.
struct Group {
    url: Option<String>,
    prefix: String,
    own: bool,
    members: Vec<ProcessRecord>,
}

impl Teller<'_> {
    /// Announces `changes` (stored at `stored_at`) to every live registered process and waits up
    /// to [`Teller::wait`] for each to acknowledge the last of them.
    pub async fn tell(&self, changes: &[ConsentChanged], stored_at: SystemTime) -> Reach {
        let mut reach = Reach {
            stored_at,
            announced_on: Vec::new(),
            applied: Vec::new(),
            unheard: Vec::new(),
            store_only: Vec::new(),
            silent: Vec::new(),
            problems: Vec::new(),
            unreadable_registry: None,
        };
        let groups = self.groups(&mut reach).await;
        if changes.is_empty() {
            return reach;
        }
        let mut published: Vec<String> = Vec::new();
        let waiting = self
            .announce(groups, changes, &mut published, &mut reach)
            .await;
        self.await_acknowledgements(waiting, &mut reach).await;
        if !published.is_empty()
            && let Err(e) = store::call(self.store, move |s| {
                s.processes().forget_changes(&published)
            })
            .await
        {
            tracing::debug!(error = %e, "forgetting acknowledgements of announced changes");
        }
        reach
    }

    /// The live registered processes that keep a consent cache, grouped by bus URL and prefix
    /// (this process's own bus first); the silent ones, those that read the store at every
    /// decision, and an unreadable registry go into `reach`.
    async fn groups(&self, reach: &mut Reach) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        if let Some(own) = &self.own {
            groups.push(Group {
                url: own.url.map(str::to_string),
                prefix: own.topology.prefix.clone(),
                own: true,
                members: Vec::new(),
            });
        }
        let listed = match store::call(self.store, |s| s.processes().registered()).await {
            Err(e) => {
                reach.unreadable_registry = Some(e.to_string());
                return groups;
            }
            Ok(listed) => listed,
        };
        for p in listed {
            if Some(p.record.id.as_str()) == self.exclude {
                continue;
            }
            if p.heartbeat_age > SILENT_AFTER {
                reach.silent.push(p);
            } else if p.record.reads_the_store_at_every_decision() {
                reach.store_only.push(p.record);
            } else {
                let r = p.record;
                match groups
                    .iter_mut()
                    .find(|g| g.url == r.bus_url && g.prefix == r.prefix)
                {
                    Some(g) => g.members.push(r),
                    None => groups.push(Group {
                        url: r.bus_url.clone(),
                        prefix: r.prefix.clone(),
                        own: false,
                        members: vec![r],
                    }),
                }
            }
        }
        groups
    }

    /// Announces `changes` on each group's bus; gives the processes told, each with the id of
    /// the change whose acknowledgement is awaited (those not told go into `reach`).
    async fn announce(
        &self,
        groups: Vec<Group>,
        changes: &[ConsentChanged],
        published: &mut Vec<String>,
        reach: &mut Reach,
    ) -> Vec<(String, ProcessRecord)> {
        let mut waiting: Vec<(String, ProcessRecord)> = Vec::new();
        for g in groups {
            let bus = bus_text(g.url.as_deref(), &g.prefix);
            match self.announce_on(&g, changes, published).await {
                Ok(last) => {
                    reach.announced_on.push(bus);
                    waiting.extend(g.members.into_iter().map(|m| (last.clone(), m)));
                }
                Err(why) if g.members.is_empty() => reach.problems.push(format!("{bus}: {why}")),
                Err(why) => reach
                    .unheard
                    .extend(g.members.into_iter().map(|process| Unheard {
                        process,
                        why: format!("not told: {why}"),
                    })),
            }
        }
        waiting
    }

    /// Reads the acknowledgements until every process told has applied its change or
    /// [`Teller::wait`] is up; the rest are unheard, with why.
    async fn await_acknowledgements(
        &self,
        mut waiting: Vec<(String, ProcessRecord)>,
        reach: &mut Reach,
    ) {
        let deadline = Instant::now() + self.wait;
        let mut trouble: Option<String> = None;
        while !waiting.is_empty() {
            let mut ids: Vec<String> = waiting.iter().map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            for id in ids {
                let change = id.clone();
                match store::call(self.store, move |s| s.processes().applied_by(&change)).await {
                    Ok(by) => {
                        let (done, rest): (Vec<_>, Vec<_>) = waiting
                            .into_iter()
                            .partition(|(c, p)| *c == id && by.contains(&p.id));
                        reach.applied.extend(done.into_iter().map(|(_, p)| p));
                        waiting = rest;
                    }
                    Err(e) => trouble = Some(e.to_string()),
                }
            }
            if waiting.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let silence = match &trouble {
            Some(e) => format!(
                "no acknowledgement within {} s (reading them from the store: {e})",
                self.wait.as_secs_f32()
            ),
            None => format!(
                "no acknowledgement within {} s (paused, overloaded, cut off from its broker or \
                 its store, or stopped without deregistering)",
                self.wait.as_secs_f32()
            ),
        };
        reach
            .unheard
            .extend(waiting.into_iter().map(|(_, process)| Unheard {
                process,
                why: silence.clone(),
            }));
    }

    /// Announces `changes` on `g`'s bus; the id of the last one, or why it could not.
    async fn announce_on(
        &self,
        g: &Group,
        changes: &[ConsentChanged],
        published: &mut Vec<String>,
    ) -> Result<String, String> {
        if g.own
            && let Some(own) = &self.own
        {
            return announce_all(own.bus, own.topology, changes, published).await;
        }
        let Some(url) = &g.url else {
            return Err("a process on the in-memory bus of another process cannot be told".into());
        };
        let login = with_credentials_of(url, self.credentials);
        let user = user_of(&login);
        let topology = Topology::new(&g.prefix);
        let whose = if login != *url {
            "the user of this process's own amqp_url".to_string()
        } else {
            format!(
                "the broker's default, as this process's configuration has no amqp_url with a \
                 user; set amqp_url (KAIGO_AMQP_URL) to a URL whose user may write to `{}`",
                topology.consent()
            )
        };
        let bus = RabbitBus::connect(&login, "kaigo-hub consent announcement")
            .await
            .map_err(|e| {
                format!("cannot connect to RabbitMQ at {url} logging in as `{user}` ({whose}): {e}")
            })?;
        let r = announce_all(&bus, &topology, changes, published).await;
        bus.close().await;
        r
    }
}

async fn announce_all(
    bus: &dyn Bus,
    topology: &Topology,
    changes: &[ConsentChanged],
    published: &mut Vec<String>,
) -> Result<String, String> {
    let mut last = String::new();
    for c in changes {
        last = announce(bus, topology, c)
            .await
            .map_err(|e| format!("announcing on `{}`: {e}", topology.consent()))?;
        published.push(last.clone());
    }
    Ok(last)
}

impl Reach {
    /// True when every process that may answer from a cached copy acknowledged the change.
    pub fn complete(&self) -> bool {
        self.unheard.is_empty() && self.unreadable_registry.is_none()
    }

    /// When the change is in force in every registered process even without their word: the
    /// longest `consent_cache_secs` of those that did not acknowledge, after the change was
    /// stored (no copy read before then outlives it). `None` when the registry could not be read.
    pub fn in_force_everywhere_by(&self) -> Option<SystemTime> {
        if self.unreadable_registry.is_some() {
            return None;
        }
        let longest = self
            .unheard
            .iter()
            .map(|u| u.process.consent_cache_secs)
            .max()
            .unwrap_or(0);
        Some(self.stored_at + Duration::from_secs(longest))
    }

    /// One line per bus announced on and per registered process, for an operator.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for bus in &self.announced_on {
            out.push(format!("announced on {bus}"));
        }
        for p in &self.applied {
            out.push(format!("  applied by {} on {}", p.name(), bus_of(p)));
        }
        for u in &self.unheard {
            out.push(format!(
                "  NOT acknowledged by {} on {} (consent_cache_secs {}): {}",
                u.process.name(),
                bus_of(&u.process),
                u.process.consent_cache_secs,
                u.why
            ));
        }
        for p in &self.store_only {
            let why = if p.bus_url.is_none() {
                "on the in-memory bus"
            } else {
                "consent_cache_secs = 0"
            };
            out.push(format!(
                "{} on {} reads the store at every decision ({why}): nothing to announce",
                p.name(),
                bus_of(p)
            ));
        }
        for p in &self.silent {
            out.push(format!(
                "passed over {} on {}: no heartbeat for {} s, so it answers from no cached copy",
                p.record.name(),
                bus_of(&p.record),
                p.heartbeat_age.as_secs()
            ));
        }
        for p in &self.problems {
            out.push(format!("could not announce on {p}"));
        }
        if self.announced_on.is_empty()
            && self.applied.is_empty()
            && self.unheard.is_empty()
            && self.unreadable_registry.is_none()
        {
            out.push(
                "no running hub process that caches consents is registered in this store: \
                 nothing to announce"
                    .into(),
            );
        }
        out
    }

    /// What is missing, when not [`Reach::complete`]: the processes that did not acknowledge,
    /// why, and when the change is in force there anyway.
    pub fn shortfall(&self) -> Option<String> {
        if let Some(e) = &self.unreadable_registry {
            return Some(format!(
                "the change is stored, but the store's registry of running hub processes could \
                 not be read ({e}), so none of them is known to have heard of it; each sees it \
                 when its cached copies expire, at the latest consent_cache_secs after now"
            ));
        }
        if self.unheard.is_empty() {
            return None;
        }
        let names: Vec<String> = self
            .unheard
            .iter()
            .map(|u| {
                format!(
                    "{} on {} (consent_cache_secs {}): {}",
                    u.process.name(),
                    bus_of(&u.process),
                    u.process.consent_cache_secs,
                    u.why
                )
            })
            .collect();
        let by = self
            .in_force_everywhere_by()
            .map(super::clock::rfc3339)
            .unwrap_or_default();
        Some(format!(
            "the change is stored, but {} hub process{} did not acknowledge it: {}; it is in \
             force in every hub process by {by} at the latest, when their cached copies expire. \
             Running the command again announces it again",
            self.unheard.len(),
            if self.unheard.len() == 1 { "" } else { "es" },
            names.join("; ")
        ))
    }
}
