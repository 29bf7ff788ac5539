//! A setting of `kaigo-hub serve`, declared once: `declare_settings!` (used in `config/mod.rs`)
//! takes each setting's key, doc comment, type and default, and makes from that one line the
//! `Config` field and its default, the `KAIGO_<KEY>` variable's parsing, and the [`Setting`] row
//! that `serve --help`, `kaigo-hub settings` and the README's settings table are rendered from.
//! In: the declaration; out: text. Holds no setting of its own, and never names a variable by
//! hand: a setting's variable is always `KAIGO_` and its key in capitals.

use super::Config;
use std::path::PathBuf;

/// Declares the settings: a struct of `/// doc` + `key: Type = default;` lines (optionally
/// `=> parser`, a `fn(&str, String) -> Result<Type, String>` for a variable that is not read
/// the usual way for its type, [`FromVar`]). Makes the struct (serde, unknown keys refused), its
/// `Default`, and `SETTINGS`, one [`Setting`] per line in declaration order.
macro_rules! declare_settings {
    (
        $(#[$meta:meta])*
        pub struct $config:ident {
            $(
                $(#[doc = $doc:literal])*
                $key:ident : $ty:ty = $default:expr $(=> $parse:path)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $config {
            $( $(#[doc = $doc])* pub $key: $ty, )*
        }

        impl Default for $config {
            fn default() -> Self {
                $config { $( $key: $default, )* }
            }
        }

        /// Every setting, in the order `serve --help` and the README list them.
        pub const SETTINGS: &[setting::Setting] = &[$(
            setting::Setting {
                key: stringify!($key),
                doc: concat!($($doc, "\n",)*),
                shown: |c: &$config| setting::Shown::shown(&c.$key),
                apply: |c: &mut $config, var: &str, value: String| {
                    c.$key = declare_settings!(@parse $ty $(, $parse)?)(var, value)?;
                    Ok(())
                },
            },
        )*];
    };
    (@parse $ty:ty) => { <$ty as setting::FromVar>::from_var };
    (@parse $ty:ty, $parse:path) => { $parse };
}
pub(super) use declare_settings;

/// One setting, as declared.
pub struct Setting {
    /// The field and the configuration file's key, e.g. `http_addr`.
    pub key: &'static str,
    /// What it is for: the field's doc comment, a line per doc line.
    pub doc: &'static str,
    /// The setting's value in a configuration, written as in a file or variable (`unset`).
    pub shown: fn(&Config) -> String,
    /// Sets the field from its variable's value; the error names the variable.
    pub apply: fn(&mut Config, &str, String) -> Result<(), String>,
}

/// The environment variable of the setting `key`: `KAIGO_` and the key in capitals.
pub fn variable(key: &str) -> String {
    format!("KAIGO_{}", key.to_ascii_uppercase())
}

impl Setting {
    /// Its environment variable ([`variable`]).
    pub fn env(&self) -> String {
        variable(self.key)
    }

    /// Its default, as [`Setting::shown`] writes it.
    pub fn default_shown(&self) -> String {
        (self.shown)(&Config::default())
    }

    /// The doc comment as one paragraph.
    pub fn text(&self) -> String {
        let lines: Vec<&str> = self.doc.lines().map(str::trim).collect();
        lines.join(" ").trim().to_string()
    }

    /// The doc comment's first sentence.
    pub fn summary(&self) -> String {
        let text = self.text();
        let end = text
            .match_indices(". ")
            .map(|(i, _)| i)
            .find(|&i| !text[..i].ends_with("e.g") && !text[..i].ends_with("i.e"));
        match end {
            Some(i) => text[..=i].to_string(),
            None => text,
        }
    }
}

/// A setting's value read from its environment variable.
pub trait FromVar: Sized {
    /// `value` of the variable `var` (named in the error when it does not fit).
    fn from_var(var: &str, value: String) -> Result<Self, String>;
}

impl FromVar for String {
    fn from_var(_: &str, value: String) -> Result<Self, String> {
        Ok(value)
    }
}

impl FromVar for PathBuf {
    fn from_var(_: &str, value: String) -> Result<Self, String> {
        Ok(value.into())
    }
}

/// An optional setting: an empty variable unsets it.
impl<T: FromVar> FromVar for Option<T> {
    fn from_var(var: &str, value: String) -> Result<Self, String> {
        match value.is_empty() {
            true => Ok(None),
            false => T::from_var(var, value).map(Some),
        }
    }
}

impl FromVar for u64 {
    fn from_var(var: &str, value: String) -> Result<Self, String> {
        value
            .parse::<u64>()
            .map_err(|_| format!("{var}=`{value}` is not a number"))
    }
}

impl FromVar for usize {
    fn from_var(var: &str, value: String) -> Result<Self, String> {
        u64::from_var(var, value).map(|n| n as usize)
    }
}

impl FromVar for bool {
    fn from_var(var: &str, value: String) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(format!("{var}=`{value}` is not true or false")),
        }
    }
}

/// A list of numbers, comma-separated (spaces and empty entries ignored).
impl FromVar for Vec<u64> {
    fn from_var(var: &str, value: String) -> Result<Self, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| u64::from_var(var, n.to_string()))
            .collect()
    }
}

/// A setting's value written as in a file or variable.
pub trait Shown {
    /// The value as text; `unset` for an optional setting that is not set.
    fn shown(&self) -> String;
}

impl Shown for String {
    fn shown(&self) -> String {
        self.clone()
    }
}

impl Shown for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> String {
        self.as_ref().map_or_else(|| "unset".to_string(), T::shown)
    }
}

macro_rules! shown_by_display {
    ($($t:ty),*) => { $(impl Shown for $t { fn shown(&self) -> String { self.to_string() } })* };
}
shown_by_display!(u64, u16, usize, bool);

impl Shown for Vec<u64> {
    fn shown(&self) -> String {
        let parts: Vec<String> = self.iter().map(u64::to_string).collect();
        parts.join(",")
    }
}

/// The README's settings block (between `<!-- settings -->` and `<!-- /settings -->`): a line
/// saying where it comes from, then a table of every setting.
pub fn markdown(settings: &[Setting]) -> String {
    let mut out = String::from(
        "Generated from the declaration in `src/config/mod.rs` by `kaigo-hub settings --markdown` \
         (a test checks that this table is its output).\n\n\
         | setting | variable | default | what it does |\n|---|---|---|---|\n",
    );
    for s in settings {
        let default = match s.default_shown() {
            unset if unset == "unset" => unset,
            value => format!("`{value}`"),
        };
        out += &format!(
            "| `{}` | `{}` | {default} | {} |\n",
            s.key,
            s.env(),
            s.text().replace('|', "\\|")
        );
    }
    out
}

/// The settings as `serve --help` lists them: each key, its variable and default, then its
/// whole doc (`long`) or first sentence, wrapped.
pub fn help(settings: &[Setting], long: bool) -> String {
    let mut out = String::from(
        "Settings come from defaults, then kaigo-hub.toml (or --config), then the environment\n\
         (an empty variable unsets an optional setting):\n",
    );
    for s in settings {
        out += &format!("  {} ({}) [{}]\n", s.key, s.env(), s.default_shown());
        let text = if long { s.text() } else { s.summary() };
        for line in wrap(&text, 92) {
            out += &format!("      {line}\n");
        }
    }
    out
}

/// `text` in lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SETTINGS;

    #[test]
    fn each_setting_has_its_variable_its_doc_and_one_row() {
        for s in SETTINGS {
            assert!(s.env().starts_with("KAIGO_") && s.env().ends_with(&s.key.to_uppercase()));
            assert!(
                s.text().ends_with('.'),
                "{}: a doc of whole sentences",
                s.key
            );
            assert!(
                !s.text().contains("Env `KAIGO_"),
                "{}: the variable is not written by hand",
                s.key
            );
        }
        let table = markdown(SETTINGS);
        assert_eq!(
            table.lines().filter(|l| l.starts_with("| `")).count(),
            SETTINGS.len()
        );
        assert!(table.contains("| `body_limit` | `KAIGO_BODY_LIMIT` | `33554432` |"));
        assert!(table.contains("| `amqp_url` | `KAIGO_AMQP_URL` | unset |"));
        assert!(table.contains("`1000,5000,30000,120000,600000`"));
    }

    #[test]
    fn the_summary_is_the_first_sentence_and_help_lines_are_wrapped() {
        let s = SETTINGS
            .iter()
            .find(|s| s.key == "amqp_url")
            .expect("declared");
        assert!(
            s.summary().starts_with("RabbitMQ URL, e.g. `amqp://"),
            "{}",
            s.summary()
        );
        assert!(s.summary().ends_with('.'));
        let long = help(SETTINGS, true);
        assert!(long.lines().all(|l| l.chars().count() <= 100), "{long}");
        assert!(long.len() > help(SETTINGS, false).len());
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
    }
}
