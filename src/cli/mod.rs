//! Command-line surface: the clap definitions with help texts that teach, and the dispatch to
//! one file per subcommand. Prints; holds no translation logic of its own.

/// `println!` that never panics: a closed pipe (`kaigo-hub schema X | head`) just stops output.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use out;

mod audit;
mod audit_trail;
mod claims;
mod consent;
mod console;
mod inspect;
mod mappings;
mod replay;
mod schema;
mod serve;
mod settings;
mod translate;

use clap::{Parser, Subcommand};
use kaigo_hub::mapping::MappingSet;
use std::path::{Path, PathBuf};

/// A failure to report on stderr with an exit code.
pub struct Failure {
    /// 1 bad input, 2 usage/configuration, 3 a consent change stored but not acknowledged by
    /// every running hub process.
    pub code: u8,
    /// One line (details may follow on further lines).
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

/// kaigo-hub — translate hospital and care-software messages into the 介護情報基盤 canonical
/// documents and back, through declarative mapping files.
#[derive(Parser, Debug)]
#[command(
    name = "kaigo-hub",
    version,
    about,
    after_help = "Examples:\n  kaigo-hub translate samples/hl7v2/adt-a08.hl7\n  kaigo-hub translate --dir ../shared/fixtures/ssmix2/sampleData --out people.jsonl\n  kaigo-hub translate samples/careplan/UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV --to csv\n  kaigo-hub inspect samples/hl7v2/adt-a08.hl7\n  kaigo-hub mappings check && kaigo-hub mappings test\n  kaigo-hub schema InsuredPerson"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Translate a file (or stdin, `-`) into canonical JSON, or into an outbound format with --to.
    ///
    /// Without --mapping the mapping whose `source.match` rule fits the input is chosen; when none
    /// or several fit, the command says which were tried and why. With --dir a whole tree (e.g. an
    /// SS-MIX2 storage) becomes JSON Lines, one line per document, using both cores.
    Translate(translate::Args),
    /// Show the parsed tree of a file with the path of every value, to write mappings by.
    Inspect(inspect::Args),
    /// Check, test or list mapping files.
    Mappings {
        #[command(flatten)]
        mappings: mappings::Dir,
        #[command(subcommand)]
        action: mappings::Action,
    },
    /// Checks over 国保連 claims files: `claims check` compares the 明細書 with the 給付管理票.
    Claims {
        #[command(subcommand)]
        action: claims::Action,
    },
    /// Print the JSON Schema of a canonical document (`InsuredPerson`, `CarePlan@1`, …), or list them.
    Schema(schema::Args),
    /// Run the hub: HTTP (FHIR), MLLP (HL7 v2), file drop and AMQP sources, the translate and
    /// deliver hops, consent at every hop, audit. Without KAIGO_AMQP_URL it runs on the embedded
    /// in-memory bus.
    Serve(serve::Args),
    /// List every setting `serve` reads: key, KAIGO_ variable, default and what it does
    /// (`--markdown`: the README's settings table).
    Settings(settings::Args),
    /// Grant, revoke, list and import consents; link a party's local id to a subject.
    ///
    /// Works on the store `serve` uses (refused when it does not exist). A change is announced to
    /// every running hub process registered in that store, on the bus and prefix it recorded, and
    /// the command waits (consent_ack_secs, default 5 s) for each to acknowledge: exit 0 when all
    /// did, 3 when some did not (named, with the time by which the change is in force there
    /// anyway), 1 when the change was refused, 2 for a usage or configuration error. It logs in
    /// to a broker with the user and password of its own amqp_url (KAIGO_AMQP_URL), else as guest.
    Consent {
        #[command(flatten)]
        config: ConfigFile,
        #[command(subcommand)]
        action: consent::Action,
    },
    /// Verify the audit chains (keyed, checked against the store's checkpoints), or query them.
    Audit {
        #[command(flatten)]
        config: ConfigFile,
        #[command(subcommand)]
        action: audit::Action,
    },
    /// Tools for the web console (`/console`): `hash-password` makes an account's password hash
    /// for the console_accounts file.
    Console {
        #[command(subcommand)]
        action: console::Action,
    },
    /// Re-drive messages from the dead-letter or quarantine queue (RabbitMQ).
    Replay {
        #[command(flatten)]
        config: ConfigFile,
        #[command(flatten)]
        args: replay::Args,
    },
}

/// `--config FILE`, for the commands that read the hub's settings (`serve`, `consent`, `audit`,
/// `replay`); accepted before or after a command's own sub-command.
#[derive(clap::Args, Debug)]
pub struct ConfigFile {
    /// Configuration file (TOML), the one `serve` reads. Default: kaigo-hub.toml in the working
    /// directory, when present; `KAIGO_*` variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Translate(a) => translate::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Mappings { mappings, action } => mappings::run(&mappings.mappings, action),
        Command::Claims { action } => claims::run(action),
        Command::Schema(a) => schema::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Settings(a) => settings::run(a),
        Command::Consent { config, action } => consent::run(config.config, action),
        Command::Audit { config, action } => audit::run(config.config, action),
        Command::Console { action } => console::run(action),
        Command::Replay { config, args } => replay::run(config.config, args),
    }
}

/// Opens the store `cfg` names, which must exist (only `serve` creates one), with what it is for
/// messages ([`kaigo_hub::store::Location::describe`]). A missing store is a usage error naming
/// it and the settings that choose it.
pub async fn open_store(
    cfg: &kaigo_hub::config::Config,
) -> Result<(std::sync::Arc<dyn kaigo_hub::store::Store>, String), Failure> {
    use kaigo_hub::store::{Location, OpenError, open_existing};
    let url = cfg.store_url();
    let chosen_by = match &cfg.database_url {
        Some(_) => "database_url (KAIGO_DATABASE_URL)".to_string(),
        None => format!(
            "data_dir `{}` (KAIGO_DATA_DIR), relative to the working directory {}",
            cfg.data_dir.display(),
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "?".into())
        ),
    };
    match open_existing(&url).await {
        Ok(store) => {
            let place = Location::parse(&url)
                .map(|l| l.describe())
                .unwrap_or_default();
            Ok((store, place))
        }
        Err(e @ OpenError::Missing { .. }) => Err(Failure::usage(format!(
            "{e}; this command uses the store chosen by {chosen_by}: point it at the hub's store \
             with --config FILE, KAIGO_DATA_DIR or KAIGO_DATABASE_URL"
        ))),
        Err(e) => Err(Failure::usage(e.to_string())),
    }
}

/// Loads the mapping directory or fails with every error, one per line.
pub fn load_mappings(dir: &Path) -> Result<MappingSet, Failure> {
    MappingSet::load_dir(dir).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        Failure::usage(format!(
            "{} error(s) in the mappings under {}:\n{}",
            errors.len(),
            dir.display(),
            lines.join("\n")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_line_is_well_formed() {
        // Clap's own checks of every sub-command (e.g. two options with one name), which otherwise
        // only fail when that sub-command is run.
        Cli::command().debug_assert();
    }
}
