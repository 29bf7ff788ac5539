//! CSV columns read by their header name (`氏名`): a name exists only in the file that is read,
//! so it is checked there, once, before the first record is read, for every path of a mapping
//! that names a column (rules, `join`, `when`, `each`, `documents`). A name the header lacks is a
//! translation error naming the rule, where it is written and the header's line (a rule that read
//! nothing would otherwise drop its field in silence); in `source.match` it makes the mapping not
//! fit. A mapping without `source.header: true` cannot name a column at all: that is found when
//! it loads.
//!
//! Privacy: the missing name is the mapping's own text, but the header's names are the file's.
//! They are usually column titles, yet a header row may be a person's record (a file sent without
//! one is the likeliest reason a column is missing), so `Display` gives only their count and the
//! sender alone reads them.

use super::error::{MapError, MappingError, Reason};
use super::plan::{Cond, Loc, Mapping, Src, Step, StepKind};
use crate::formats::Path;
use crate::formats::csv::CsvFile;
use crate::formats::tree::CsvPath;
use crate::redact::ErrorText;

/// A path that reads a CSV column by its header name.
struct Named<'m> {
    /// The header name.
    column: &'m str,
    /// The rule that reads it (`documents` for `documents:`).
    rule: &'m str,
    /// Where that rule is written.
    loc: &'m Loc,
}

/// Checks every column a mapping reads by name against the header of `f`, unless the file has
/// no record to read. The first missing one (in file order) is the error, naming its rule; the
/// others missing are named with it.
pub(crate) fn check(m: &Mapping, f: &CsvFile) -> Result<(), MapError> {
    if f.header().is_none() || f.record_count() == 0 {
        return Ok(());
    }
    let named = named_columns(m);
    let mut missing = named.iter().filter(|n| f.column_index(n.column).is_none());
    let Some(first) = missing.next() else {
        return Ok(());
    };
    let mut names = vec![first.column];
    for n in missing {
        if !names.contains(&n.column) {
            names.push(n.column);
        }
    }
    Err(MapError {
        at: None,
        rule: first.rule.to_string(),
        loc: first.loc.clone(),
        reason: Reason::Structure(Box::new(missing_columns(f, &names))),
    })
}

/// Why a CSV file does not have the column `name`: value-free, with the header's names for the
/// sender only. `None` when it has it (or has no header, where no name is read).
pub(crate) fn why_missing(f: &CsvFile, name: &str) -> Option<ErrorText> {
    f.header()?;
    f.column_index(name)
        .is_none()
        .then(|| missing_columns(f, &[name]))
}

/// "the header (line 1) has no column named `氏名`, nor `住所` (…)": the names are the mapping's;
/// the header's own names go to the sender only.
fn missing_columns(f: &CsvFile, names: &[&str]) -> ErrorText {
    let header = f.header().unwrap_or_default();
    let line = f.header_line().unwrap_or(0);
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let said = format!(
        "the header (line {line}) has no column named {}",
        names.join(", nor ")
    );
    let advice = "check the name in the mapping, and that the file has this header row";
    ErrorText::quoting(
        format!("{said} ({} columns there); {advice}", header.len()),
        format!("{said} (columns there: {}); {advice}", header.join(", ")),
    )
}

/// A mapping loaded without `source.header: true` that reads a column by name: the name can
/// never be found.
pub(crate) fn check_header_is_read(m: &Mapping, source: &Loc) -> Result<(), MappingError> {
    if m.source.parse.csv.header {
        return Ok(());
    }
    let from_match = m.source.matches.iter().find_map(|c| named(&c.src));
    let (column, loc) = match from_match {
        Some(column) => (column, source),
        None => match named_columns(m).into_iter().next() {
            Some(n) => (n.column, n.loc),
            None => return Ok(()),
        },
    };
    Err(MappingError {
        loc: loc.clone(),
        message: format!(
            "`{column}` reads a CSV column by its header name, but the source has no header row: set `header: true` under `source:`, or read the column by its number"
        ),
    })
}

/// Every path of `m` (outside `source.match`) that reads a column by name, in file order.
fn named_columns(m: &Mapping) -> Vec<Named<'_>> {
    let mut out = Vec::new();
    if let Some(d) = &m.documents {
        let paths = d.each.iter().chain(&d.group_by).filter_map(named_path);
        let conds = d.when.iter().chain(&d.head).filter_map(|c| named(&c.src));
        for column in paths.chain(conds) {
            out.push(Named {
                column,
                rule: "documents",
                loc: &d.loc,
            });
        }
    }
    steps(&m.steps, &mut out);
    out
}

fn steps<'m>(list: &'m [Step], out: &mut Vec<Named<'m>>) {
    for step in list {
        let (columns, inner): (Vec<&str>, &[Step]) = match &step.kind {
            StepKind::Value(rule) => {
                let joined = rule.join.iter().flat_map(|(s, _)| s);
                let paths = rule.sources.iter().chain(joined).filter_map(named);
                (paths.chain(conds(&rule.when)).collect(), &[])
            }
            StepKind::Each {
                select,
                when,
                steps: inner,
                ..
            } => {
                let paths = select.iter().filter_map(named);
                (paths.chain(conds(when)).collect(), inner)
            }
        };
        out.extend(columns.into_iter().map(|column| Named {
            column,
            rule: &step.name,
            loc: &step.loc,
        }));
        steps(inner, out);
    }
}

fn conds(list: &[Cond]) -> impl Iterator<Item = &str> {
    list.iter().filter_map(|c| named(&c.src))
}

/// The header name a source reads, if it reads one.
pub(crate) fn named(src: &Src) -> Option<&str> {
    match src {
        Src::Path(p, _) => named_path(p),
        _ => None,
    }
}

fn named_path(p: &Path) -> Option<&str> {
    match p {
        Path::Csv(CsvPath::Named(n)) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::mapping::{Input, MappingSet, TranslateError, compile::compile_str};
    use crate::redact::Disclose;
    use std::path::Path;
    use std::sync::Arc;

    fn set(yaml: &str) -> MappingSet {
        let m = compile_str(yaml, Path::new("m.yaml")).expect("compiles");
        MappingSet {
            mappings: vec![Arc::new(m)],
        }
    }

    fn translate(
        set: &MappingSet,
        csv: &str,
        mapping: Option<&str>,
    ) -> Result<crate::mapping::Translation, TranslateError> {
        let input = Input {
            bytes: csv.as_bytes(),
            file_name: None,
        };
        set.translate(input, mapping)
    }

    /// Reads 氏名 only under a `when` no record meets, and 住所 in an `each`: both are checked.
    const ROSTER: &str = r#"
id: roster
version: 1
source: { format: csv, charset: utf-8, header: true }
documents: { each: "*", group_by: [被保険者番号] }
target: InsuredPerson@1
fields:
  subject.insurer_number: 保険者番号
  subject.insured_number: 被保険者番号
  name.kanji.text: { from: 氏名, when: { 保険者番号: "999999" } }
  addresses[+]:
    each: "@group"
    fields:
      text: { join: [都道府県, 住所], sep: "" }
"#;

    #[test]
    fn a_column_the_header_lacks_stops_the_run_naming_the_rule_and_the_names_for_the_sender() {
        let set = set(ROSTER);
        // In file order: `documents` (its group_by) first, then the rules. The header row is a person's record: the file came without its header.
        let csv = "131011,0000012345,介護 太郎,東京都\n131011,0000012346,介護 花子,静岡県\n";
        for mapping in [None, Some("roster")] {
            let e = translate(&set, csv, mapping).expect_err("no such columns");
            assert!(matches!(e, TranslateError::Map(_)), "{e}");
            assert_eq!(
                e.to_string(),
                "the header (line 1) has no column named `被保険者番号`, nor `保険者番号`, nor \
                 `氏名`, nor `都道府県`, nor `住所` (4 columns there); check the name in the \
                 mapping, and that the file has this header row (rule `documents` in m.yaml:5:12)"
            );
            assert!(!format!("{e:?}").contains("介護"), "{e:?}");
            assert!(
                e.for_sender()
                    .to_string()
                    .contains("(columns there: 131011, 0000012345, 介護 太郎, 東京都)"),
                "{}",
                e.for_sender()
            );
        }
        // One column missing, read only where no record goes: still found, with its own rule.
        let csv = "保険者番号,被保険者番号,都道府県,住所\n131011,0000012345,東京都,千代田区\n";
        let e = translate(&set, csv, None).expect_err("no 氏名");
        let e = e.to_string();
        assert!(
            e.starts_with("the header (line 1) has no column named `氏名` (4 columns there)")
                && e.ends_with("(rule `name.kanji.text` in m.yaml:10:3)"),
            "{e}"
        );
        // With every column there, it translates.
        let csv = "保険者番号,被保険者番号,都道府県,住所,氏名\n131011,0000012345,東京都,千代田区,介護 太郎\n";
        assert_eq!(translate(&set, csv, None).expect("fits").documents.len(), 1);
        // A file with a header and no record reads no column: nothing is wrong with it.
        let t = translate(&set, "a,b\n", None).expect("nothing to read");
        assert!(t.documents.is_empty());
    }

    #[test]
    fn in_a_match_rule_a_missing_column_does_not_fit() {
        // `氏名: ""` (no value) held for a file without the column; now the column must exist.
        let set = set(r#"
id: no-name-roster
version: 1
source: { format: csv, charset: utf-8, header: true, match: { 氏名: "" } }
documents: { each: "*" }
target: InsuredPerson@1
fields:
  subject.insurer_number: "1"
  subject.insured_number: "2"
"#);
        let e = translate(&set, "保険者番号,被保険者番号\n131011,0000012345\n", None)
            .expect_err("no 氏名 column");
        assert_eq!(
            e.to_string(),
            "no mapping fits this csv input\n  - no-name-roster: the header (line 1) has no \
             column named `氏名` (2 columns there); check the name in the mapping, and that the \
             file has this header row"
        );
        assert!(
            e.for_sender()
                .to_string()
                .contains("(columns there: 保険者番号, 被保険者番号)")
        );
        let t = translate(
            &set,
            "保険者番号,被保険者番号,氏名\n131011,0000012345,\n",
            None,
        )
        .expect("the column is there, empty");
        assert_eq!(t.documents.len(), 1);
    }

    #[test]
    fn a_column_read_by_name_without_a_header_row_is_refused_at_load() {
        let yaml = |source: &str, field: &str| {
            format!(
                "id: t\nversion: 1\nsource: {source}\ntarget: InsuredPerson@1\nfields:\n  \
                 subject.insurer_number: \"1\"\n  subject.insured_number: {field}\n"
            )
        };
        let e = compile_str(
            &yaml("{ format: csv, charset: utf-8 }", "被保険者番号"),
            Path::new("m.yaml"),
        )
        .expect_err("no header row");
        assert_eq!(
            e.to_string(),
            "m.yaml:7:3: `被保険者番号` reads a CSV column by its header name, but the source has \
             no header row: set `header: true` under `source:`, or read the column by its number"
        );
        let e = compile_str(
            &yaml("{ format: csv, match: { 種別: \"1\" } }", "\"2\""),
            Path::new("m.yaml"),
        )
        .expect_err("no header row");
        assert!(e.to_string().starts_with("m.yaml:3:9: `種別` reads"), "{e}");
        compile_str(
            &yaml("{ format: csv, header: true }", "被保険者番号"),
            Path::new("m.yaml"),
        )
        .expect("a header row is read");
    }
}
