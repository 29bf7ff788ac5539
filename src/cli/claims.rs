//! `kaigo-hub claims check FILE…`: the 明細書 ⇄ 給付管理票 突合 (IF-SVC 1.3.1 ②) over claims
//! files — a provider's 明細書 file and a care manager's 給付管理票 file, in any order. Each file
//! is read as `translate` reads it (mappings chosen by match); the comparison itself is
//! `kaigo_hub::canonical::plan_check`. Prints one line per 10 集計 record compared and a
//! summary; exit 1 when a 計画単位数 exceeds its 給付計画単位数.

use super::{Failure, load_mappings};
use kaigo_hub::canonical::DocKind;
use kaigo_hub::canonical::plan_check::{self, Placed, Verdict};
use kaigo_hub::mapping::Input;
use kaigo_hub::redact::Disclose;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Compare the 計画単位数 of every 明細書's 10 集計 record with the 給付計画単位数 of the
    /// person's 給付管理票 line for that 事業所 and サービス種類 (IF-SVC 1.3.1 ②).
    ///
    /// Give the claims files in any order: a provider's file of 明細書 (7131/7132/7183) and a care
    /// manager's file of 給付管理票 (8222), or several of each. Prints `ok`, `over`, `no-plan` (no
    /// 給付管理票 line among the files given) or `ambiguous` (several) per 集計 record, naming the
    /// records, never a person's number. Exit 0 when nothing is over, 1 when something is (or a
    /// file cannot be read), 2 for a usage error.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Directory of mapping files (*.yaml), searched recursively.
    #[arg(long, env = "KAIGO_MAPPINGS", default_value = "mappings")]
    pub mappings: PathBuf,
    /// Claims files (MS932 CSV): 明細書 and 給付管理票, in any order.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

pub fn run(action: Action) -> Result<u8, Failure> {
    let Action::Check(a) = action;
    let set = load_mappings(&a.mappings)?;
    let (mut statements, mut sheets) = (Vec::new(), Vec::new());
    for path in &a.files {
        let bytes = std::fs::read(path)
            .map_err(|e| Failure::input(format!("{}: cannot read: {e}", path.display())))?;
        let name = path.file_name().and_then(|n| n.to_str());
        let label = name.unwrap_or("-").to_string();
        let t = set
            .translate(
                Input {
                    bytes: &bytes,
                    file_name: name,
                },
                None,
            )
            .map_err(|e| Failure::input(format!("{}: {}", path.display(), e.for_sender())))?;
        for d in t.documents {
            let origin = format!("{label} {}", d.origin.as_deref().unwrap_or("?"));
            let bad = |e: serde_json::Error| {
                Failure::input(format!("{origin}: not a {}: {e}", d.kind.name()))
            };
            match d.kind {
                DocKind::ClaimStatement => statements.push(Placed {
                    doc: serde_json::from_str(&d.json).map_err(bad)?,
                    origin,
                }),
                DocKind::BenefitManagement => sheets.push(Placed {
                    doc: serde_json::from_str(&d.json).map_err(bad)?,
                    origin,
                }),
                _ => {}
            }
        }
    }
    if statements.is_empty() || sheets.is_empty() {
        return Err(Failure::usage(format!(
            "found {} 明細書 (ClaimStatement) and {} 給付管理票 (BenefitManagement) in the files given; \
             the check needs both: give the provider's claims file and the care manager's",
            statements.len(),
            sheets.len()
        )));
    }
    let findings = plan_check::check(&statements, &sheets);
    let count = |w: &str| findings.iter().filter(|f| f.word() == w).count();
    for f in &findings {
        super::out!("{f}");
    }
    super::out!(
        "{} 集計 record(s) of {} 明細書 against {} 給付管理票: {} ok, {} over, {} without a 給付管理票 line, {} ambiguous",
        findings.len(),
        statements.len(),
        sheets.len(),
        count("ok"),
        count("over"),
        count("no-plan"),
        count("ambiguous")
    );
    let over = findings
        .iter()
        .any(|f| matches!(f.verdict, Verdict::Exceeds { .. }));
    Ok(u8::from(over))
}
