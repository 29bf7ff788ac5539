//! What `kaigo-hub … --help` offers: each command its own options and none it ignores (the mapping
//! directory only where mappings are read, `--config` wherever the hub's settings are), and `serve
//! --help` every setting with its variable.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"))
        .args(args)
        .arg("--help")
        .env_remove("KAIGO_MAPPINGS")
        .output()
        .expect("binary runs");
    assert_eq!(o.status.code(), Some(0), "{args:?} --help");
    String::from_utf8(o.stdout).expect("UTF-8 help")
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
    ] {
        assert!(
            help(cmd).contains("--config <FILE>"),
            "{cmd:?} reads the settings"
        );
    }
    for cmd in [
        &["translate"][..],
        &["inspect"],
        &["mappings", "check"],
        &["schema"],
    ] {
        assert!(!help(cmd).contains("--config"), "{cmd:?} reads no settings");
    }
}
