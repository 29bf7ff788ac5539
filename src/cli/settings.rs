//! `kaigo-hub settings`: every setting `serve` reads — key, variable, default and what it does —
//! as `serve --help` lists them, or (`--markdown`) as the README's settings table, which is this
//! command's output. Prints only; the settings are declared in `kaigo_hub::config`.

use super::Failure;
use kaigo_hub::config::{SETTINGS, help, markdown};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the README's settings table (Markdown, what goes between `<!-- settings -->` and
    /// `<!-- /settings -->`).
    #[arg(long)]
    pub markdown: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let text = if a.markdown {
        markdown(SETTINGS)
    } else {
        help(SETTINGS, true)
    };
    super::out!("{}", text.trim_end());
    Ok(0)
}
