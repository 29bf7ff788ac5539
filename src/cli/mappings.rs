//! `kaigo-hub mappings check|test|list`: loads the mapping directory and reports every error
//! (`file:line:column: …`), runs the golden tests, or lists what is loaded. Exit codes: 2 for a
//! mapping that does not load or a golden test file that is not there (configuration), 1 for a
//! golden test that runs and fails, 0 otherwise.

use super::{Failure, load_mappings};
use kaigo_hub::mapping::{MappingSet, testing};
use std::path::{Path, PathBuf};

/// The mapping directory, for the commands that read mappings (`translate`, `mappings …`); `serve`
/// takes it as the setting `mappings` (`KAIGO_MAPPINGS`, or `mappings` in its file), and the
/// commands that read no mappings do not offer it.
#[derive(clap::Args, Debug)]
pub struct Dir {
    /// Directory of mapping files (*.yaml), searched recursively.
    #[arg(
        long = "mappings",
        global = true,
        env = "KAIGO_MAPPINGS",
        default_value = "mappings",
        value_name = "DIR"
    )]
    pub mappings: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Compile every mapping file and report all errors with file:line:column.
    Check {
        /// Directory (default: --mappings).
        dir: Option<PathBuf>,
    },
    /// Run every mapping's golden tests (input → expected output).
    Test {
        /// Directory (default: --mappings).
        dir: Option<PathBuf>,
    },
    /// List the loaded mappings: id, version, source → target, category.
    List {
        /// Directory (default: --mappings).
        dir: Option<PathBuf>,
    },
}

pub fn run(default_dir: &Path, action: Action) -> Result<u8, Failure> {
    match action {
        Action::Check { dir } => {
            let dir = dir.unwrap_or_else(|| default_dir.to_path_buf());
            let set = load_mappings(&dir)?;
            missing_test_files(&set, &dir)?;
            let tests: usize = set.mappings.iter().map(|m| m.tests.len()).sum();
            super::out!(
                "{} mapping(s) OK under {} ({tests} golden test(s))",
                set.mappings.len(),
                dir.display()
            );
            Ok(0)
        }
        Action::Test { dir } => {
            let dir = dir.unwrap_or_else(|| default_dir.to_path_buf());
            let set = load_mappings(&dir)?;
            let outcomes = testing::run_all(&set);
            let mut failed = 0;
            for o in &outcomes {
                match &o.failure {
                    None => super::out!("ok     {} {}", o.mapping, o.input),
                    Some(why) => {
                        failed += 1;
                        super::out!("FAILED {} {} ({})\n       {why}", o.mapping, o.input, o.at);
                    }
                }
            }
            super::out!("{} passed, {failed} failed", outcomes.len() - failed);
            missing_test_files(&set, &dir)?;
            Ok(if failed == 0 && !outcomes.is_empty() {
                0
            } else {
                1
            })
        }
        Action::List { dir } => {
            let dir = dir.unwrap_or_else(|| default_dir.to_path_buf());
            let set = load_mappings(&dir)?;
            for m in &set.mappings {
                super::out!(
                    "{}\tv{}\t{} → {}\t{}\t{}",
                    m.id,
                    m.version,
                    m.source.format.name(),
                    m.target.name(),
                    m.category.as_deref().unwrap_or("-"),
                    m.description
                );
            }
            Ok(0)
        }
    }
}

/// A usage failure (exit 2) naming every golden test file the mappings under `dir` name but
/// that is not there, each with the test's `file:line:column`.
fn missing_test_files(set: &MappingSet, dir: &Path) -> Result<(), Failure> {
    let missing = testing::missing_files(set);
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing.iter().map(ToString::to_string).collect();
    Err(Failure::usage(format!(
        "{} golden test file(s) missing for the mappings under {}:\n{}",
        missing.len(),
        dir.display(),
        lines.join("\n")
    )))
}
