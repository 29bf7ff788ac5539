//! The `kaigo-hub` command: argument parsing and exit codes only. Each subcommand's work is in
//! `cli/` (presentation) on top of the library (`kaigo_hub::…`), which holds all the logic.
//! Exit codes: 0 success, 1 bad input (or a failed check/test), 2 usage or configuration error,
//! 3 a consent change stored but not acknowledged by every running hub process.

mod cli;

/// mimalloc instead of glibc malloc: measured in `cargo bench --bench translate` (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(cli::Failure { code, message }) => {
            eprintln!("kaigo-hub: {message}");
            ExitCode::from(code)
        }
    }
}
