//! 給付費明細書 (`ClaimStatement@1`, issue 17) from a provider's 国保連 claims file: the shipped
//! sample `samples/claims/d0711b.csv` holds one 7111 請求書 line and two 7131 明細書 (01 基本,
//! 02 明細, 10 集計, and a 12 社会福祉法人軽減 on the second). Its goldens are checked here
//! against the spec's arithmetic (claims-csv.md §4, §5.5), recomputed from the goldens
//! themselves, so a golden regenerated with a wrong amount fails.

mod common;

use common::*;
use serde_json::Value;

fn docs(rel: &str) -> Vec<Value> {
    match json(&sample(rel)) {
        Value::Array(docs) => docs,
        one => vec![one],
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("an integer: {v}"))
}

/// `"11.40"` → 1140 (hundredths of a yen), exactly.
fn hundredths(price: &Value) -> i64 {
    let text = price.as_str().expect("a decimal text");
    let (yen, sen) = text.split_once('.').expect("a point");
    assert_eq!(sen.len(), 2, "{text}");
    yen.parse::<i64>().expect("yen") * 100 + sen.parse::<i64>().expect("sen")
}

/// Per 10 集計: 費用 = ⌊単位数合計 × 単価⌋, 保険請求額 = ⌊費用 × 保険給付率 / 100⌋, 利用者負担額 =
/// 費用 − 保険請求額 (no 公費 here); 02 lines: サービス単位数 = 単位数 × 回数, summing to the 10's
/// 単位数合計 and the 01's 保険 サービス単位数; 12 軽減: 軽減後 = 総額 − 軽減額. The 7111 保険
/// line: 件数 = the 明細書, 単位数 = Σ 01 #33, 保険請求額 = Σ 01 #34, 費用合計 = Σ 費用,
/// 利用者負担 = Σ 01 #35, and 費用合計 = 保険 + 公費 + 利用者.
///
/// By hand (claims-csv §5.5): 0000012345: 244 × 8 + 183 × 4 = 2,684 units × 11.40 = 30,597.6 →
/// 30,597 円; × 90% = 27,537.3 → 27,537; user 3,060. 0000012399: 244 × 4 = 976 × 11.40 =
/// 11,126.4 → 11,126; × 80% = 8,900.8 → 8,900; user 2,226; 軽減 556 → 1,670. 請求書: 2 明細書,
/// 3,660 units, 41,723 = 36,437 + 0 + 5,286.
#[test]
fn the_goldens_add_up_as_the_spec_says() {
    let statements = docs("claims/d0711b.claim-statement.json");
    let invoices = docs("claims/d0711b.claim-invoice.json");
    assert_eq!(statements.len(), 2);
    let (mut units, mut claim, mut user, mut cost) = (0, 0, 0, 0);
    let mut by_hand = Vec::new();
    for s in &statements {
        assert_eq!(s["document"], "ClaimStatement@1");
        let basic = &s["basic"]["insurance"];
        let rate = int(&basic["rate"]);
        let lines: i64 = s["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| {
                assert_eq!(int(&d["unit_value"]) * int(&d["count"]), int(&d["units"]));
                int(&d["units"])
            })
            .sum();
        let totals = s["totals"].as_array().expect("totals");
        assert_eq!(totals.len(), 1, "one サービス種類");
        let t = &totals[0]["insurance"];
        assert_eq!(lines, int(&t["units"]));
        assert_eq!(int(&basic["units"]), int(&t["units"]));
        let spent = int(&t["units"]) * hundredths(&t["unit_price"]) / 100;
        let insured = spent * rate / 100;
        assert_eq!(int(&t["claim"]), insured, "保険請求額 = ⌊費用 × 給付率⌋");
        assert_eq!(int(&t["user_share"]), spent - insured);
        assert_eq!(int(&basic["claim"]), insured);
        assert_eq!(int(&basic["user_share"]), spent - insured);
        for r in s["reductions"].as_array().into_iter().flatten() {
            assert_eq!(int(&r["user_share_due"]), spent - insured);
            let after = int(&r["user_share_due"]) - int(&r["reduction"]);
            assert_eq!(int(&r["user_share_after"]), after);
        }
        by_hand.push((spent, insured));
        units += int(&basic["units"]);
        claim += int(&basic["claim"]);
        user += int(&basic["user_share"]);
        cost += spent;
    }
    assert_eq!(by_hand, [(30_597, 27_537), (11_126, 8_900)]);
    let insurance: Vec<&Value> = invoices.iter().filter(|i| i["payer"] == "1").collect();
    assert_eq!(insurance.len(), 1);
    let line = &insurance[0]["services"];
    assert_eq!(int(&line["count"]), statements.len() as i64);
    assert_eq!(int(&line["units"]), units);
    assert_eq!(int(&line["insurance_claim"]), claim);
    assert_eq!(int(&line["user_share"]), user);
    assert_eq!(int(&line["total_cost"]), cost);
    let parts = int(&line["insurance_claim"]) + int(&line["public_claim"]) + user;
    assert_eq!(int(&line["total_cost"]), parts);
}
