//! `kaigo-hub claims check`: the 明細書 ⇄ 給付管理票 突合 (claims-csv.md §7, IF-SVC 1.3.1 ②)
//! over the shipped provider file `d0711b.csv` and care-manager file `d0821a.csv`, whose 計画単位数
//! agree (2,684 and 976 for サービス種類 11 at 0300000005); then with the first 給付管理票 line
//! lowered below the 明細書's, which must fail naming both records and no person.

mod common;

use common::*;
use std::process::{Command, Output};

fn check(files: &[(&str, &[u8])], tag: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("kaigo-claims-check-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    c.current_dir(repo())
        .env_remove("KAIGO_MAPPINGS")
        .args(["claims", "check"]);
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("written");
        c.arg(path);
    }
    let o = c.output().expect("kaigo-hub runs");
    let _ = std::fs::remove_dir_all(&dir);
    o
}

#[test]
fn the_shipped_statements_agree_with_the_shipped_sheets() {
    let (s, b) = (sample("claims/d0711b.csv"), sample("claims/d0821a.csv"));
    // In either order.
    for files in [
        [("d0711b.csv", s.as_slice()), ("d0821a.csv", b.as_slice())],
        [("d0821a.csv", b.as_slice()), ("d0711b.csv", s.as_slice())],
    ] {
        let o = check(&files, "agree");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ok\td0711b.csv record 3, line 3: 明細書 7131 2025-10 事業所 0300000005 サービス種類 11: 計画単位数 2684 ≤ 給付計画単位数 2684 (d0821a.csv record 5, line 5, 給付管理票 line 01)"), "{out}");
        assert!(
            lines[1].contains("計画単位数 976 ≤ 給付計画単位数 976"),
            "{out}"
        );
        assert_eq!(
            lines[2],
            "2 集計 record(s) of 2 明細書 against 2 給付管理票: 2 ok, 0 over, 0 without a 給付管理票 line, 0 ambiguous"
        );
    }
}

#[test]
fn a_plan_below_the_statement_fails_naming_the_records_and_no_person() {
    let text = String::from_utf8(sample("claims/d0821a.csv")).expect("ASCII sample");
    let line = "\"0300000005\",\"1\",\"11\",\"2684\"";
    assert_eq!(text.matches(line).count(), 1, "the first sheet's line 01");
    let lowered = text.replacen(line, "\"0300000005\",\"1\",\"11\",\"2000\"", 1);
    // and the second person's 11 line moved to another 事業所: no line for the 明細書.
    let moved = lowered.replacen(
        "\"0300000005\",\"1\",\"11\",\"976\"",
        "\"0300000200\",\"1\",\"11\",\"976\"",
        1,
    );
    let s = sample("claims/d0711b.csv");
    let o = check(
        &[("d0711b.csv", &s), ("d0821a.csv", moved.as_bytes())],
        "over",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("over\td0711b.csv record 3, line 3: 明細書 7131 2025-10 事業所 0300000005 サービス種類 11: 計画単位数 2684 > 給付計画単位数 2000 (d0821a.csv record 5, line 5, 給付管理票 line 01)"), "{out}");
    assert!(
        out.contains("no-plan\td0711b.csv record 7, line 7:"),
        "{out}"
    );
    assert!(
        out.contains("0 ok, 1 over, 1 without a 給付管理票 line"),
        "{out}"
    );
    for personal in [
        "0000012345",
        "0000012399",
        "00131011",
        "19400405",
        "19380212",
    ] {
        assert!(!out.contains(personal), "{personal} in {out}");
    }
    // Only one side given: a usage error saying what is missing.
    let o = check(&[("d0711b.csv", &s)], "one-side");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("found 2 明細書 (ClaimStatement) and 0 給付管理票"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
