//! The 明細書 ⇄ 給付管理票 突合 (claims-csv.md §7, IF-SVC 1.3.1 ②): a 給付費明細書's 10 集計
//! record states the 計画単位数 (item 9) of its サービス種類; it must not exceed the
//! 給付計画単位数 (item 20) the person's 給付管理票 gives that 事業所 for that サービス種類 in
//! that month. In: `ClaimStatement@1` and `BenefitManagement@1` documents (from different
//! senders: the service provider and the care manager, so this runs over two files, not at
//! translate time). Out: one [`Finding`] per 10 集計 record that states a 計画単位数.
//!
//! What the spec does not say, and this check therefore does not do (docs/operating.md): whether
//! a 明細書 without a 給付管理票 line is an error (reported here as [`Verdict::NoPlanLine`], not
//! a failure), how a 修正 or 取消 給付管理票 replaces an earlier one (several sheets for one
//! person, month and plan office are [`Verdict::SeveralPlanLines`], not guessed between), and
//! any rule on 限度額管理対象単位数 or on the units billed. A 集計 without a 計画単位数 (施設
//! 様式) is not compared. A finding names places, offices, service types and units — never a
//! person's number.

use super::benefit_management::BenefitManagement;
use super::claim_statement::ClaimStatement;

/// A document with where it came from (`d0711b.csv record 3, line 3`), value-free.
pub struct Placed<T> {
    /// Where the document came from, for messages.
    pub origin: String,
    /// The document.
    pub doc: T,
}

/// The outcome of one 10 集計 record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 計画単位数 ≤ 給付計画単位数 of the one matching 給付管理票 line (at `plan`).
    Within {
        /// Where the 給付管理票 is, and its line number.
        plan: String,
        /// 給付計画単位数.
        planned: i64,
    },
    /// 計画単位数 > 給付計画単位数: the 突合 fails.
    Exceeds {
        /// Where the 給付管理票 is, and its line number.
        plan: String,
        /// 給付計画単位数.
        planned: i64,
    },
    /// No 給付管理票 line for this person, month, 事業所 and サービス種類 among those given.
    NoPlanLine,
    /// Several lines match (a 新規 and a 修正 sheet, say): not compared.
    SeveralPlanLines(Vec<String>),
}

/// One 10 集計 record compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Where the 明細書 is (its 01 record).
    pub statement: String,
    /// 様式 (交換情報識別番号).
    pub form: String,
    /// サービス提供年月.
    pub service_month: String,
    /// The claiming 事業所.
    pub provider_number: String,
    /// サービス種類コード.
    pub service_type: String,
    /// 計画単位数 stated by the 明細書.
    pub statement_units: i64,
    /// The comparison.
    pub verdict: Verdict,
}

impl Finding {
    /// A short word for the verdict: `ok`, `over`, `no-plan`, `ambiguous`.
    pub fn word(&self) -> &'static str {
        match self.verdict {
            Verdict::Within { .. } => "ok",
            Verdict::Exceeds { .. } => "over",
            Verdict::NoPlanLine => "no-plan",
            Verdict::SeveralPlanLines(_) => "ambiguous",
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\t{}: 明細書 {} {} 事業所 {} サービス種類 {}: 計画単位数 {}",
            self.word(),
            self.statement,
            self.form,
            self.service_month,
            self.provider_number,
            self.service_type,
            self.statement_units
        )?;
        match &self.verdict {
            Verdict::Within { plan, planned } => write!(f, " ≤ 給付計画単位数 {planned} ({plan})"),
            Verdict::Exceeds { plan, planned } => {
                write!(f, " > 給付計画単位数 {planned} ({plan})")
            }
            Verdict::NoPlanLine => {
                f.write_str(", no 給付管理票 line for this 事業所 and サービス種類")
            }
            Verdict::SeveralPlanLines(at) => write!(
                f,
                ", {} 給付管理票 lines match ({}): not compared",
                at.len(),
                at.join("; ")
            ),
        }
    }
}

/// Compares every 10 集計 record that states a 計画単位数 with the 給付管理票 lines of the same
/// person, month, 事業所 and サービス種類. Findings in statement order, then 集計 order.
pub fn check(
    statements: &[Placed<ClaimStatement>],
    sheets: &[Placed<BenefitManagement>],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in statements {
        for t in &s.doc.totals {
            let Some(units) = t.planned_units else {
                continue;
            };
            let matching: Vec<(String, i64)> = sheets
                .iter()
                .filter(|b| {
                    b.doc.subject == s.doc.subject && b.doc.service_month == s.doc.service_month
                })
                .flat_map(|b| {
                    b.doc
                        .lines
                        .iter()
                        .filter(|l| {
                            l.provider_number == s.doc.provider_number
                                && l.service_type == t.service_type
                        })
                        .map(move |l| {
                            (
                                format!("{}, 給付管理票 line {}", b.origin, l.line),
                                l.planned_units,
                            )
                        })
                })
                .collect();
            let verdict = match matching.as_slice() {
                [] => Verdict::NoPlanLine,
                [(plan, planned)] if units <= *planned => Verdict::Within {
                    plan: plan.clone(),
                    planned: *planned,
                },
                [(plan, planned)] => Verdict::Exceeds {
                    plan: plan.clone(),
                    planned: *planned,
                },
                several => Verdict::SeveralPlanLines(several.iter().map(|m| m.0.clone()).collect()),
            };
            out.push(Finding {
                statement: s.origin.clone(),
                form: s.doc.form.code().to_string(),
                service_month: s.doc.service_month.clone(),
                provider_number: s.doc.provider_number.clone(),
                service_type: t.service_type.clone(),
                statement_units: units,
                verdict,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statement(
        insured: &str,
        provider: &str,
        kind: &str,
        planned: Option<i64>,
    ) -> ClaimStatement {
        let mut totals = json!({ "service_type": kind,
            "insurance": { "units": 976, "unit_price": "11.40", "claim": 10013, "user_share": 1113 } });
        if let Some(p) = planned {
            totals["planned_units"] = json!(p);
        }
        serde_json::from_value(json!({
            "document": "ClaimStatement@1", "form": "7131", "service_month": "2025-10",
            "provider_number": provider,
            "subject": { "insurer_number": "131011", "insured_number": insured },
            "card_insurer_number": "00131011",
            "basic": { "birth_date": "1940-04-05", "sex": "male", "care_level": "22",
                "certified_from": "2025-04-01", "certified_to": "2026-03-31",
                "insurance": { "rate": 90, "units": 976, "claim": 10013, "user_share": 1113 } },
            "details": [{ "service_type": kind, "service_item": "1111", "units": 976 }],
            "totals": [totals],
            "file": { "medium": "1", "processing_month": "2025-11", "control_number": "0" }
        }))
        .expect("a statement")
    }

    fn sheet(insured: &str, lines: &[(&str, &str, i64)]) -> BenefitManagement {
        let lines: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, (p, k, u))| {
                json!({ "line": format!("{:02}", i + 1), "provider_number": p,
                "provider_class": "1", "service_type": k, "planned_units": u })
            })
            .collect();
        serde_json::from_value(json!({
            "document": "BenefitManagement@1", "service_month": "2025-10",
            "plan_office": "0300000100",
            "subject": { "insurer_number": "131011", "insured_number": insured },
            "card_insurer_number": "00131011", "creation": "1", "created_on": "2025-11-01",
            "sheet_kind": "3", "birth_date": "1940-04-05", "sex": "male", "care_level": "22",
            "cap_from": "2025-04", "cap_to": "2026-03", "cap_units": 19705, "plan_author": "1",
            "lines": lines, "total": { "planned_units": 9999 },
            "file": { "medium": "1", "processing_month": "2025-11", "control_number": "0" }
        }))
        .expect("a sheet")
    }

    fn placed<T>(origin: &str, doc: T) -> Placed<T> {
        Placed {
            origin: origin.into(),
            doc,
        }
    }

    #[test]
    fn planned_units_are_compared_per_person_month_office_and_service_type() {
        let statements = [
            placed(
                "s.csv record 3",
                statement("0000012345", "0300000005", "11", Some(2684)),
            ),
            placed(
                "s.csv record 7",
                statement("0000012399", "0300000005", "11", Some(1000)),
            ),
            placed(
                "s.csv record 9",
                statement("0000012399", "0300000006", "11", Some(10)),
            ),
            placed(
                "s.csv record 12",
                statement("0000012345", "0300000005", "51", None),
            ),
        ];
        let sheets = [
            placed(
                "b.csv record 5",
                sheet(
                    "0000012345",
                    &[("0300000005", "11", 2684), ("0300000005", "15", 5)],
                ),
            ),
            placed(
                "b.csv record 8",
                sheet("0000012399", &[("0300000005", "11", 976)]),
            ),
        ];
        let found = check(&statements, &sheets);
        let words: Vec<&str> = found.iter().map(Finding::word).collect();
        assert_eq!(
            words,
            ["ok", "over", "no-plan"],
            "the 施設 集計 without 計画単位数 is skipped"
        );
        assert_eq!(
            found[1].verdict,
            Verdict::Exceeds {
                plan: "b.csv record 8, 給付管理票 line 01".into(),
                planned: 976
            }
        );
        let text = found[1].to_string();
        assert_eq!(
            text,
            "over\ts.csv record 7: 明細書 7131 2025-10 事業所 0300000005 サービス種類 11: 計画単位数 1000 > 給付計画単位数 976 (b.csv record 8, 給付管理票 line 01)"
        );
        assert!(!text.contains("0000012399"), "no person's number: {text}");

        // A second sheet for the same person and month: both lines are named, none is chosen.
        let twice = [
            placed(
                "b.csv record 5",
                sheet("0000012345", &[("0300000005", "11", 2684)]),
            ),
            placed(
                "c.csv record 2",
                sheet("0000012345", &[("0300000005", "11", 3000)]),
            ),
        ];
        let found = check(&statements[..1], &twice);
        assert_eq!(found[0].word(), "ambiguous");
        assert!(
            found[0].to_string().contains("2 給付管理票 lines match"),
            "{}",
            found[0]
        );
    }
}
