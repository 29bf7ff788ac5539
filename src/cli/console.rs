//! `kaigo-hub console …`: tools for the web console's accounts file. `hash-password` reads a
//! password from stdin (its first line, without the line end) and prints its argon2id PHC
//! string, the `password_hash` of an account in the `console_accounts` file. Prints only the
//! hash; never echoes or keeps the password.

use super::Failure;
use std::io::{BufRead, IsTerminal};

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Read a password from stdin (its first line) and print its argon2id hash (a PHC string)
    /// for the `password_hash` of an account in the console_accounts file.
    ///
    /// Example: `read -rs PW && printf '%s\n' "$PW" | kaigo-hub console hash-password`
    HashPassword,
}

pub fn run(action: Action) -> Result<u8, Failure> {
    match action {
        Action::HashPassword => hash_password(),
    }
}

fn hash_password() -> Result<u8, Failure> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Password (one line; what you type is shown — pipe it in to hide it):");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::input(format!("reading the password from stdin: {e}")))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(Failure::input(
            "no password on stdin: give it as the first line, e.g. `printf '%s\\n' \"$PW\" | kaigo-hub console hash-password`",
        ));
    }
    let hash = kaigo_hub::console::accounts::hash_password(password).map_err(Failure::input)?;
    super::out!("{hash}");
    Ok(0)
}
