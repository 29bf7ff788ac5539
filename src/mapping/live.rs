//! The mapping set a running hub uses, and `serve --watch`: the set can be replaced while messages
//! flow. In: the mapping directory (polled for changes) and a set loaded at start. Out: the set in
//! force ([`LiveMappings::current`]), which each message takes once and keeps to its end, so a
//! message is never handled half by the old and half by the new files; and one [`Reload`] report
//! per change seen.
//!
//! Must never: replace a working set with one that failed to load (a broken edit is reported with
//! `file:line:column` and the old set stays in force), or drop a message while swapping.

use super::{MappingError, MappingSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The mapping set in force, replaceable.
pub struct LiveMappings {
    current: RwLock<Arc<MappingSet>>,
}

impl LiveMappings {
    /// Starts with `set`.
    pub fn new(set: MappingSet) -> LiveMappings {
        LiveMappings {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The set in force now. Take it once per message and use that copy throughout.
    pub fn current(&self) -> Arc<MappingSet> {
        // A replace is a single pointer store; a panicking writer cannot leave it half-done.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `set` in force for every message that starts from now on.
    pub fn replace(&self, set: MappingSet) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

/// What one look at a changed mapping directory led to.
#[derive(Debug)]
pub enum Reload {
    /// The new files are in force: how many mappings they hold.
    Loaded { mappings: usize },
    /// The new files do not load; the previous set stays in force.
    Refused { errors: Vec<MappingError> },
}

/// What the directory looks like: every mapping file [`MappingSet::load_dir`] would read, with a
/// hash of its bytes. Contents, not modification times: two saves within the file system's
/// timestamp granularity that keep the size would otherwise look alike. The mapping directory is
/// a few dozen small files.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64)> {
    use std::hash::{Hash, Hasher};
    let mut files = Vec::new();
    // An unreadable directory shows as no files; loading it then reports why.
    super::collect_yaml(dir, &mut files, &mut Vec::new());
    let mut out: Vec<(PathBuf, u64)> = files
        .into_iter()
        .map(|path| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&path).ok().hash(&mut h);
            (path, h.finish())
        })
        .collect();
    out.sort();
    out
}

/// Polls `dir` every `every` until shutdown; when its YAML files change, loads them and puts them
/// in force if they load, reporting each outcome to `report`. The files are read once here, when
/// the watch is set up, so an edit made before the returned future first runs is not missed.
pub fn watch(
    dir: PathBuf,
    live: Arc<LiveMappings>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut report: impl FnMut(Reload) + Send,
) -> impl std::future::Future<Output = ()> + Send {
    let mut seen = fingerprint(&dir);
    async move {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = {
                let d = dir.clone();
                match tokio::task::spawn_blocking(move || fingerprint(&d)).await {
                    Ok(f) => f,
                    Err(_) => continue,
                }
            };
            if now == seen {
                continue;
            }
            seen = now;
            let d = dir.clone();
            let loaded = tokio::task::spawn_blocking(move || MappingSet::load_dir(&d)).await;
            match loaded {
                Ok(Ok(set)) => {
                    let mappings = set.mappings.len();
                    live.replace(set);
                    report(Reload::Loaded { mappings });
                }
                Ok(Err(errors)) => report(Reload::Refused { errors }),
                Err(e) => report(Reload::Refused {
                    errors: vec![MappingError::at(
                        &dir,
                        0,
                        0,
                        format!("loading the mappings stopped: {e}"),
                    )],
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPPING: &str = "jpcore-patient-insured-person";

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kaigo-live-{tag}-{}-{}",
            std::process::id(),
            crate::pipeline::clock::envelope_id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("mappings/{MAPPING}.yaml")),
        )
        .expect("shipped mapping");
        std::fs::write(dir.join(format!("{MAPPING}.yaml")), text).expect("copy");
        dir
    }

    fn version(live: &LiveMappings) -> u32 {
        live.current().get(MAPPING).expect("the mapping").version
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Reload>) -> Reload {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a reload report within 10 s")
            .expect("the watcher runs")
    }

    #[tokio::test]
    async fn an_edit_is_put_in_force_and_a_broken_edit_is_refused_keeping_the_last_good_set() {
        let dir = scratch("edit");
        let file = dir.join(format!("{MAPPING}.yaml"));
        let live = Arc::new(LiveMappings::new(
            MappingSet::load_dir(&dir).expect("the copy loads"),
        ));
        assert_eq!(version(&live), 1);
        let held = live.current();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(watch(
            dir.clone(),
            live.clone(),
            Duration::from_millis(20),
            shutdown,
            move |r| {
                let _ = tx.send(r);
            },
        ));

        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(&file, text.replace("\nversion: 1\n", "\nversion: 2\n")).expect("edit");
        match next(&mut rx).await {
            Reload::Loaded { mappings } => assert_eq!(mappings, 1),
            r => panic!("{r:?}"),
        }
        assert_eq!(version(&live), 2, "the edit is in force");
        assert_eq!(
            held.get(MAPPING).expect("held").version,
            1,
            "a message that took the old set keeps it to its end"
        );

        std::fs::write(&file, text.replace("\nversion: 1\n", "\nversion: two\n")).expect("break");
        match next(&mut rx).await {
            Reload::Refused { errors } => {
                let e = errors[0].to_string();
                assert!(e.contains(&format!("{MAPPING}.yaml:")), "{e}");
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(version(&live), 2, "the last good set stays in force");

        stop.send(true).expect("stop");
        task.await.expect("the watcher stops");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
