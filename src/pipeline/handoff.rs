//! Ingress already ran the mapping to learn a message's subject, document and category; when the
//! translate hop of the same process takes that message, it takes ingress's result from here
//! instead of running the same mapping on the same bytes again. Keyed by envelope id (minted by
//! ingress, so no two messages share one) and tied to the mapping set that made it: after
//! `serve --watch` put another set in force, or when the message reaches another process or comes
//! back after a restart, nothing is found and the hop maps as before. Bounded by the bytes of
//! the documents held; the oldest entries go first, which only costs a mapping run.

use crate::mapping::{Document, Input, MappingSet, TranslateError, Translation};
use crate::redact::ErrorText;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// Messages up to this size are mapped on the hop's own thread: a mapping run is tens of µs
/// there (`cargo bench --bench translate`), less than the two thread switches of a hand-off to
/// the blocking pool. Larger ones (FHIR Bundles of MiBs) go to the pool so they never hold up
/// the other tasks of a runtime thread.
pub const INLINE_MAPPING_BYTES: usize = 32 * 1024;

/// What a mapping run made of one message.
pub struct Mapped {
    /// The set the mapping came from (the entry counts only while that set is in force).
    pub set: Arc<MappingSet>,
    /// `id@version` of each mapping applied (one, or several that each make another document),
    /// comma-separated: the `x-kaigo-mapping` header.
    pub label: String,
    /// The mappings' platform category, as written (the same for all: see [`Mapped::run`]).
    pub category: Option<String>,
    /// The canonical documents.
    pub documents: Vec<Document>,
    /// What the mappings' `warn:` rules found, with each mapping's id (value-free).
    pub warnings: Vec<(String, crate::mapping::Warning)>,
}

impl Mapped {
    /// Maps a message's `bytes` with `set` (with `mapping` when the message names it, otherwise
    /// the one whose rules match): inline when small, on the blocking pool when large. The
    /// error's `Display` names where and why without the message's values (for logs, headers and
    /// side files); its sender's rendering adds them ([`crate::redact::Disclose`]).
    pub async fn run(
        set: Arc<MappingSet>,
        bytes: &[u8],
        file_name: Option<&str>,
        mapping: Option<&str>,
    ) -> Result<Mapped, ErrorText> {
        let made = |set: Arc<MappingSet>, t: Result<Translation, TranslateError>| {
            let t = t.map_err(|e| ErrorText::of(&e))?;
            Ok(Mapped {
                set,
                label: t.label(),
                category: one_category(&t)?,
                documents: t.documents,
                warnings: t.warnings,
            })
        };
        if bytes.len() <= INLINE_MAPPING_BYTES {
            let t = set.translate(Input { bytes, file_name }, mapping);
            return made(set, t);
        }
        let (bytes, file_name) = (bytes.to_vec(), file_name.map(String::from));
        let mapping = mapping.map(String::from);
        tokio::task::spawn_blocking(move || {
            let t = set.translate(
                Input {
                    bytes: &bytes,
                    file_name: file_name.as_deref(),
                },
                mapping.as_deref(),
            );
            made(set.clone(), t)
        })
        .await
        // A panic's message could quote the input: it is not repeated.
        .unwrap_or_else(|_| Err(ErrorText::plain("the mapping run stopped unexpectedly")))
    }

    /// The mapping's platform category; a mapping that names none (or none the platform knows)
    /// maps nothing the hub may forward, and the error says which mapping it is.
    pub fn category(&self) -> Result<crate::consent::Category, String> {
        self.category
            .as_deref()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("mapping `{}` names no platform category", self.ids()))
    }

    /// The mappings' ids, comma-separated, as [`Mapped::run`] takes them.
    pub fn ids(&self) -> String {
        label_ids(&self.label).unwrap_or_default().join(",")
    }

    fn bytes(&self) -> usize {
        self.documents.iter().map(|d| d.json.len()).sum::<usize>() + 256
    }
}

/// The mapping ids of an `x-kaigo-mapping` label (`a@1,b@2` → `[a, b]`): the one reader of
/// the label [`Mapped::label`] writes; `None` when a part is not `id@version`.
pub fn label_ids(label: &str) -> Option<Vec<&str>> {
    label
        .split(',')
        .map(|l| l.rsplit_once('@').map(|(id, _)| id))
        .collect()
}

/// The one category of an input's documents: mappings that make documents of one input and name
/// different categories are a mapping-set error (one message is consented and routed as one
/// category). A mapping that fits the input but makes no document of it does not speak for it: a
/// 国保連 file's control record fits every claims-file mapping, and a 受給者異動連絡票 file (5311,
/// certification) makes no 請求書 (claims). An input of no document keeps the first mapping's.
fn one_category(t: &Translation) -> Result<Option<String>, ErrorText> {
    let mut making = t.documents.iter().map(|d| &d.mapping);
    let Some(first) = making.next() else {
        return Ok(t.mapping.category.clone());
    };
    match making.find(|m| m.category != first.category) {
        None => Ok(first.category.clone()),
        Some(other) => Err(ErrorText::plain(format!(
            "mappings `{}` and `{}` both read this input but name different categories; give them one category",
            first.id, other.id
        ))),
    }
}

/// Results waiting for their translate hop, at most `capacity` bytes of documents.
pub struct Handoff {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    held: usize,
    entries: HashMap<String, Mapped>,
    /// Ids in the order they came; a taken id stays until tidied away.
    order: VecDeque<String>,
}

impl Inner {
    /// Keeps `order` from growing past the entries it is for (amortised: a full pass only when
    /// it holds twice as many ids as entries).
    fn tidy(&mut self) {
        while let Some(front) = self.order.front() {
            if self.entries.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|id| entries.contains_key(id));
        }
    }
}

impl Handoff {
    /// Holds at most `capacity` bytes of documents (0: holds nothing).
    pub fn new(capacity: usize) -> Handoff {
        Handoff {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keeps `mapped` for the envelope's translate hop (before ingress publishes it, so the hop
    /// cannot look before it is here).
    pub fn put(&self, envelope: &str, mapped: Mapped) {
        let size = mapped.bytes();
        if size > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.held + size > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.held -= gone.bytes();
            }
        }
        if let Some(old) = inner.entries.insert(envelope.to_string(), mapped) {
            inner.held -= old.bytes();
        } else {
            inner.order.push_back(envelope.to_string());
        }
        inner.held += size;
    }

    /// Takes the result kept for `envelope`, if it was made by `set` (the set in force for this
    /// message now); otherwise `None`, and the caller maps.
    pub fn take(&self, envelope: &str, set: &Arc<MappingSet>) -> Option<Mapped> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mapped = inner.entries.remove(envelope)?;
        inner.held -= mapped.bytes();
        inner.tidy();
        Arc::ptr_eq(&mapped.set, set).then_some(mapped)
    }

    /// Drops what is kept for `envelope` (ingress could not publish it).
    pub fn forget(&self, envelope: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gone) = inner.entries.remove(envelope) {
            inner.held -= gone.bytes();
        }
        inner.tidy();
    }

    /// Entries and document bytes held now.
    pub fn held(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.entries.len(), inner.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Arc<MappingSet> {
        Arc::new(MappingSet::default())
    }

    fn mapped(set: &Arc<MappingSet>, json_len: usize) -> Mapped {
        let m = crate::mapping::compile::compile_str(
            "id: m\nversion: 1\nsource: { format: csv }\ntarget: InsuredPerson@1\nfields: {}\n",
            std::path::Path::new("m.yaml"),
        )
        .expect("a mapping");
        Mapped {
            set: set.clone(),
            label: "m@1".into(),
            category: Some("care-plan".into()),
            documents: vec![Document {
                kind: crate::canonical::ALL[0],
                json: "x".repeat(json_len),
                mapping: Arc::new(m),
                origin: None,
            }],
            warnings: Vec::new(),
        }
    }

    #[tokio::test]
    async fn mappings_that_read_one_input_give_one_label_and_must_share_a_category() {
        let roster = |id: &str, target: &str, category: &str| {
            let yaml = format!(
                "id: {id}\nversion: 3\nsource: {{ format: csv, charset: utf-8, header: true }}\ndocuments: {{ each: \"*\" }}\ntarget: {target}\ncategory: {category}\nfields:\n  subject.insurer_number: 保険者番号\n  subject.insured_number: 被保険者番号\n"
            );
            Arc::new(
                crate::mapping::compile::compile_str(&yaml, std::path::Path::new("r.yaml"))
                    .expect("compiles"),
            )
        };
        let bytes = "保険者番号,被保険者番号\n131011,0000012345\n".as_bytes();
        let set = Arc::new(MappingSet {
            mappings: vec![
                roster("a", "InsuranceCard@1", "certification"),
                roster("b", "InsuredPerson@1", "certification"),
            ],
        });
        let m = Mapped::run(set, bytes, None, None).await.expect("maps");
        assert_eq!((m.label.as_str(), m.ids().as_str()), ("a@3,b@3", "a,b"));
        assert_eq!(m.category().expect("one category").code(), "certification");
        let set = Arc::new(MappingSet {
            mappings: vec![
                roster("a", "InsuranceCard@1", "certification"),
                roster("b", "InsuredPerson@1", "care-plan"),
            ],
        });
        let e = Mapped::run(set, bytes, None, None)
            .await
            .err()
            .expect("two categories are refused")
            .to_string();
        assert!(e.contains("`a` and `b`") && e.contains("categories"), "{e}");
    }

    #[tokio::test]
    async fn a_mapping_that_fits_but_makes_no_document_does_not_set_the_category() {
        // `a` keeps only rows of kind A, `b` only rows of kind B: both fit, one makes documents.
        let kept = |id: &str, target: &str, category: &str, kind: &str| {
            let yaml = format!(
                "id: {id}\nversion: 1\nsource: {{ format: csv, charset: utf-8, header: true }}\ndocuments: {{ each: \"*\", when: {{ 種別: {kind} }} }}\ntarget: {target}\ncategory: {category}\nfields:\n  subject.insurer_number: 保険者番号\n  subject.insured_number: 被保険者番号\n"
            );
            Arc::new(
                crate::mapping::compile::compile_str(&yaml, std::path::Path::new("k.yaml"))
                    .expect("compiles"),
            )
        };
        let set = Arc::new(MappingSet {
            mappings: vec![
                kept("a", "InsuranceCard@1", "claims", "A"),
                kept("b", "InsuredPerson@1", "certification", "B"),
            ],
        });
        let bytes = "種別,保険者番号,被保険者番号\nB,131011,0000012345\n".as_bytes();
        let m = Mapped::run(set.clone(), bytes, None, None)
            .await
            .expect("maps");
        assert_eq!(m.documents.len(), 1);
        assert_eq!(m.category().expect("one category").code(), "certification");
        // Both making documents: still refused.
        let both = "種別,保険者番号,被保険者番号\nA,131011,0000012345\nB,131011,0000012345\n";
        let e = Mapped::run(set, both.as_bytes(), None, None)
            .await
            .err()
            .expect("two categories are refused")
            .to_string();
        assert!(e.contains("`a` and `b`") && e.contains("categories"), "{e}");
    }

    #[tokio::test]
    async fn a_mapping_error_keeps_the_value_for_the_sender() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let set = Arc::new(MappingSet::load_dir(&root.join("mappings")).expect("mappings load"));
        let adt = std::fs::read(root.join("samples/hl7v2/adt-a01-utf8.hl7")).expect("sample");
        let bad = String::from_utf8(adt).expect("UTF-8 sample");
        let pid7 = bad
            .split('\r')
            .find(|s| s.starts_with("PID"))
            .and_then(|pid| pid.split('|').nth(7))
            .expect("PID-7")
            .to_string();
        let bad = bad.replacen(&format!("|{pid7}|"), "|19480405x|", 1);
        for big in [false, true] {
            // Inline and on the blocking pool alike.
            let bytes = if big {
                let mut b = bad.clone().into_bytes();
                b.extend(std::iter::repeat_n(b'\r', INLINE_MAPPING_BYTES));
                b
            } else {
                bad.clone().into_bytes()
            };
            let e = match Mapped::run(set.clone(), &bytes, None, None).await {
                Err(e) => e,
                Ok(_) => panic!("19480405x is not an HL7 date"),
            };
            let plain = e.to_string();
            assert!(!plain.contains("19480405x"), "{plain}");
            assert!(
                plain.contains("PID-7") && plain.contains("birth_date"),
                "{plain}"
            );
            use crate::redact::Disclose;
            assert!(e.for_sender().to_string().contains("`19480405x`"), "{e:?}");
        }
    }

    #[test]
    fn a_result_is_taken_once_and_only_with_the_set_that_made_it() {
        let (a, b) = (set(), set());
        let h = Handoff::new(1 << 20);
        h.put("e1", mapped(&a, 10));
        h.put("e2", mapped(&a, 10));
        assert!(h.take("e1", &a).is_some());
        assert!(h.take("e1", &a).is_none(), "taken twice");
        // Another set in force (serve --watch reloaded): the hop maps again.
        assert!(h.take("e2", &b).is_none());
        assert_eq!(h.held(), (0, 0));
        h.put("e3", mapped(&a, 10));
        h.forget("e3");
        assert!(h.take("e3", &a).is_none());
        assert_eq!(h.held(), (0, 0));
    }

    #[test]
    fn the_oldest_go_first_when_the_bytes_run_out() {
        let a = set();
        let one = mapped(&a, 1000).bytes();
        let h = Handoff::new(3 * one);
        for i in 0..5 {
            h.put(&format!("e{i}"), mapped(&a, 1000));
        }
        assert_eq!(h.held(), (3, 3 * one));
        assert!(h.take("e0", &a).is_none());
        assert!(h.take("e1", &a).is_none());
        for i in 2..5 {
            assert!(h.take(&format!("e{i}"), &a).is_some(), "e{i}");
        }
        // Larger than the whole budget: not kept at all.
        h.put("big", mapped(&a, 4 * one));
        assert_eq!(h.held(), (0, 0));
        assert!(Handoff::new(0).take("big", &a).is_none());
    }

    #[test]
    fn taken_ids_do_not_pile_up() {
        let a = set();
        let h = Handoff::new(1 << 20);
        h.put("first", mapped(&a, 1));
        for i in 0..10_000 {
            let id = format!("e{i}");
            h.put(&id, mapped(&a, 1));
            assert!(h.take(&id, &a).is_some());
        }
        let order = h.inner.lock().unwrap().order.len();
        assert!(order <= 2 + 64, "{order} ids kept for 1 entry");
    }
}
