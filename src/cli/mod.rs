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
mod consent;
mod inspect;
mod mappings;
mod replay;
mod schema;
mod serve;
mod translate;

use clap::{Parser, Subcommand};
use kaigo_hub::mapping::MappingSet;
use std::path::{Path, PathBuf};

/// A failure to report on stderr with an exit code.
pub struct Failure {
    /// 1 bad input, 2 usage/configuration.
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
    /// Directory of mapping files (*.yaml), searched recursively.
    #[arg(
        long,
        global = true,
        env = "KAIGO_MAPPINGS",
        default_value = "mappings"
    )]
    pub mappings: PathBuf,
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
        #[command(subcommand)]
        action: mappings::Action,
    },
    /// Print the JSON Schema of a canonical document (`InsuredPerson`, `CarePlan@1`, …), or list them.
    Schema(schema::Args),
    /// Run the hub: HTTP (FHIR), MLLP (HL7 v2), file drop and AMQP sources, the translate and
    /// deliver hops, consent at every hop, audit. Without KAIGO_AMQP_URL it runs on the embedded
    /// in-memory bus.
    Serve(serve::Args),
    /// Grant, revoke, list and import consents; link a party's local id to a subject.
    Consent {
        /// Configuration file (for the database location).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: consent::Action,
    },
    /// Verify the audit chains (keyed, checked against the store's checkpoints), or query them.
    Audit {
        /// Configuration file (for the audit log location).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: audit::Action,
    },
    /// Re-drive messages from the dead-letter or quarantine queue (RabbitMQ).
    Replay {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: replay::Args,
    },
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Translate(a) => translate::run(&cli.mappings, a),
        Command::Inspect(a) => inspect::run(a),
        Command::Mappings { action } => mappings::run(&cli.mappings, action),
        Command::Schema(a) => schema::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Consent { config, action } => consent::run(config, action),
        Command::Audit { config, action } => audit::run(config, action),
        Command::Replay { config, args } => replay::run(config, args),
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
