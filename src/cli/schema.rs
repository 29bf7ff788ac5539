//! `kaigo-hub schema NAME`: prints a canonical document's JSON Schema.

use super::Failure;
use kaigo_hub::canonical::{self, DocKind};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Document name, with or without version (`InsuredPerson`, `CarePlan@1`). Omit to list.
    pub name: Option<String>,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let Some(name) = a.name else {
        for k in canonical::ALL {
            super::out!("{}\t{}", k.name(), k.category());
        }
        return Ok(0);
    };
    let kind = DocKind::parse(&name).ok_or_else(|| {
        let known: Vec<&str> = canonical::ALL.iter().map(|k| k.name()).collect();
        Failure::usage(format!(
            "unknown document `{name}`; known: {}",
            known.join(", ")
        ))
    })?;
    super::out!(
        "{}",
        serde_json::to_string_pretty(&kind.schema()).unwrap_or_default()
    );
    Ok(0)
}
