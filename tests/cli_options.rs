//! What `kaigo-hub … --help` offers: each command its own options and none it ignores (the mapping
//! directory only where mappings are read, `--config` wherever the hub's settings are); `serve
//! --help` every setting with its variable and default; and the README's settings table, which is
//! `kaigo-hub settings --markdown` — all from the one declaration in `config/mod.rs`.

use kaigo_hub::config::SETTINGS;
use std::process::Command;

/// The standard output of `kaigo-hub ARGS`, which must succeed.
fn run(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"))
        .args(args)
        .env_remove("KAIGO_MAPPINGS")
        .output()
        .expect("binary runs");
    assert_eq!(o.status.code(), Some(0), "{args:?}");
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

fn help(args: &[&str]) -> String {
    run(&[args, &["--help"]].concat())
}

#[test]
fn serve_help_lists_every_setting_with_its_variable_and_default() {
    for flag in ["--help", "-h"] {
        let text = run(&["serve", flag]);
        for s in SETTINGS {
            let line = format!("  {} ({}) [{}]", s.key, s.env(), s.default_shown());
            assert!(text.contains(&line), "serve {flag} lists {line}");
        }
    }
    let long = help(&["serve"]);
    assert!(
        long.contains("`<data_dir>/kaigo-hub.sqlite`"),
        "--help: whole docs"
    );
    assert!(long.contains("SIGHUP reads the parties file"));
}

#[test]
fn the_readme_settings_table_is_what_the_declaration_generates() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let (start, end) = ("<!-- settings -->\n", "<!-- /settings -->");
    let from = readme.find(start).expect("README has <!-- settings -->") + start.len();
    let to = readme[from..].find(end).expect("and <!-- /settings -->") + from;
    let generated = run(&["settings", "--markdown"]);
    assert_eq!(
        readme[from..to].trim_end(),
        generated.trim_end(),
        "README's settings table is stale: put the output of `kaigo-hub settings --markdown` \
         between its markers"
    );
    for s in SETTINGS {
        assert!(generated.contains(&format!("| `{}` | `{}` |", s.key, s.env())));
    }
}

#[test]
fn only_the_commands_that_read_mappings_offer_mappings() {
    for cmd in [
        &["translate"][..],
        &["mappings"],
        &["mappings", "check"],
        &["mappings", "test"],
        &["mappings", "list"],
    ] {
        assert!(
            help(cmd).contains("--mappings <DIR>"),
            "{cmd:?} reads mappings"
        );
    }
    for cmd in [
        &["audit", "verify"][..],
        &["audit", "query"],
        &["audit", "set-aside-torn-tail"],
        &["consent", "grant"],
        &["consent", "list"],
        &["replay"],
        &["serve"],
        &["inspect"],
        &["schema"],
    ] {
        assert!(
            !help(cmd).contains("--mappings"),
            "{cmd:?} reads no mappings"
        );
    }
}

#[test]
fn the_commands_that_read_the_settings_take_config_after_their_sub_command() {
    for cmd in [
        &["serve"][..],
        &["audit", "verify"],
        &["audit", "query"],
        &["consent", "grant"],
        &["consent", "link"],
        &["replay"],
        // `--to fhir` keys its resource ids with the deployment's subject key (docs/fhir.md).
        &["translate"],
    ] {
        assert!(
            help(cmd).contains("--config <FILE>"),
            "{cmd:?} reads the settings"
        );
    }
    for cmd in [&["inspect"][..], &["mappings", "check"], &["schema"]] {
        assert!(!help(cmd).contains("--config"), "{cmd:?} reads no settings");
    }
}
