//! Translate throughput on one core: parse + map + validate + serialize, in messages/s and MB/s,
//! for the three representative inputs of the translation core (SS-MIX2 ADT → InsuredPerson,
//! JP Core Patient → InsuredPerson, ケアプラン UP2KYO CSV → CarePlan), the way back (CarePlan →
//! UP2KYO CSV in MS932, as the deliver hop renders it), plus HL7 v2 parse-only numbers for
//! kaigo-hub's parser and for hl7-parser 0.3 on the same text. Prints numbers; asserts
//! nothing about speed. Run: `cargo bench --bench translate`.

use kaigo_hub::mapping::{Input, MappingSet};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// mimalloc instead of glibc malloc: measured in `cargo bench --bench translate` (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BUDGET: Duration = Duration::from_millis(1500);

fn measure(name: &str, bytes_per_op: usize, mut op: impl FnMut()) {
    // `cargo bench --bench translate -- WORD` runs only the cases whose name contains WORD.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !name.contains(&filter)
    {
        return;
    }
    for _ in 0..200 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < BUDGET {
        for _ in 0..256 {
            op();
        }
        n += 256;
    }
    let secs = start.elapsed().as_secs_f64();
    let per_s = n as f64 / secs;
    println!(
        "{name:<52} {:>10.0} msg/s {:>8.1} MB/s {:>8.2} µs/msg",
        per_s,
        per_s * bytes_per_op as f64 / 1e6,
        1e6 / per_s
    );
}

fn translate_case(set: &MappingSet, name: &str, path: &str, mapping: &str) {
    translate_case_with(set, name, path, mapping, true);
}

/// One case: the input translated with `mapping` (one id, or several: `a,b`), and, when
/// `by_match`, again with the mappings chosen by their match rules (for an input that several
/// mappings read, that runs them all).
fn translate_case_with(set: &MappingSet, name: &str, path: &str, mapping: &str, by_match: bool) {
    let Ok(bytes) = std::fs::read(path) else {
        println!("{name:<52} skipped: {path} not found");
        return;
    };
    let file_name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .map(String::from);
    let input = Input {
        bytes: &bytes,
        file_name: file_name.as_deref(),
    };
    match set.translate(input, Some(mapping)) {
        Ok(t) if !t.documents.is_empty() => {}
        other => {
            println!("{name:<52} skipped: translate failed: {:?}", other.err());
            return;
        }
    }
    measure(name, bytes.len(), || {
        let t = set
            .translate(input, Some(mapping))
            .expect("translated above");
        black_box(t.documents);
    });
    if !by_match {
        return;
    }
    measure(
        &format!("{name} (mapping chosen by match)"),
        bytes.len(),
        || {
            let t = set.translate(input, None).expect("translated above");
            black_box(t.documents);
        },
    );
}

fn main() {
    let set = MappingSet::load_dir(Path::new("mappings")).unwrap_or_else(|e| {
        for x in e {
            eprintln!("{x}");
        }
        std::process::exit(2)
    });
    println!(
        "kaigo-hub translate benchmark, one thread, {} ms per case",
        BUDGET.as_millis()
    );
    translate_case(
        &set,
        "SS-MIX2 ADT^A08 (ISO-2022-JP) -> InsuredPerson",
        "samples/hl7v2/adt-a08.hl7",
        "ssmix2-adt-insured-person",
    );
    translate_case(
        &set,
        "JP Core Patient (FHIR JSON) -> InsuredPerson",
        "samples/fhir/patient-jpcore.json",
        "jpcore-patient-insured-person",
    );
    let up2 = std::fs::read_dir("samples/careplan")
        .ok()
        .and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("UP2KYO_") && n.ends_with(".CSV"))
            })
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "samples/careplan/UP2KYO.CSV".into());
    translate_case(
        &set,
        "ケアプラン UP2KYO CSV (MS932) -> CarePlan",
        &up2,
        "careplan-up2kyo-care-plan",
    );

    // 要介護認定: the 認定支援センター送信 file (3 people, 328 fields each) is read by four
    // mappings; each alone, then all four as the hub runs them (chosen by match).
    let center = "samples/certification/center-transmission-09b.csv";
    for (what, id) in [
        (
            "CertificationApplication",
            "center-transmission-application",
        ),
        ("CertificationSurvey", "center-transmission-survey"),
        ("CertificationDecision", "center-transmission-decision"),
        ("InsuredPerson", "center-transmission-insured-person"),
    ] {
        translate_case_with(
            &set,
            &format!("センター送信 (MS932, 3 records) -> {what}"),
            center,
            id,
            false,
        );
    }
    translate_case_with(
        &set,
        "センター送信 (MS932, 3 records) -> all four, by match",
        center,
        "center-transmission-application,center-transmission-survey,center-transmission-decision,center-transmission-insured-person",
        true,
    );

    translate_case(
        &set,
        "JMA 医見書 CSV (MS932, 2 rows, 121 fields) -> PhysicianOpinion",
        "samples/certification/ikensho-ms932-crlf.csv",
        "jma-ikensho-physician-opinion",
    );

    translate_case(
        &set,
        "国保連 claims CSV (MS932, 2 x 7111) -> ClaimInvoice",
        "samples/claims/d0711a.csv",
        "claims-invoice",
    );

    claims_thousand_statements(&set);

    // The deliver hop renders one document per message, from a document it owns.
    let plan: Option<serde_json::Value> = std::fs::read(up2.replace(".CSV", ".careplan.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
        .and_then(|docs| docs.into_iter().next());
    match plan {
        Some(doc) if set.render(std::slice::from_ref(&doc), "csv", None).is_ok() => {
            let size = doc.to_string().len();
            measure(
                "CarePlan -> ケアプラン UP2KYO CSV (MS932), render",
                size,
                || {
                    let out = set
                        .render_owned(vec![doc.clone()], "csv", None)
                        .expect("rendered above");
                    black_box(out);
                },
            );
        }
        _ => println!("CarePlan -> UP2KYO CSV render: skipped (sample missing or not rendered)"),
    }

    let adt = std::fs::read("samples/hl7v2/adt-a08.hl7").unwrap_or_default();
    measure(
        "HL7 v2 parse only: kaigo-hub (ISO-2022-JP bytes)",
        adt.len(),
        || {
            black_box(kaigo_hub::formats::hl7v2::parse(&adt).ok());
        },
    );
    let text: String = kaigo_hub::formats::hl7v2::parse(&adt)
        .map(|m| m.text().to_string())
        .unwrap_or_default();
    measure(
        "HL7 v2 parse only: kaigo-hub (UTF-8 text)",
        text.len(),
        || {
            black_box(kaigo_hub::formats::hl7v2::parse(text.as_bytes()).ok());
        },
    );
    measure(
        "HL7 v2 parse only: hl7-parser 0.3 (UTF-8 text)",
        text.len(),
        || {
            black_box(hl7_parser::parse_message(&text).ok());
        },
    );
}

/// A 国保連 claims file of 1,000 明細書, made here from the shipped `d0711b.csv`: its 7111 line
/// and its first 明細書 (01 基本, two 02 明細, one 10 集計: 4 records) repeated for 1,000 people
/// (被保険者番号 0000100000…), record numbers and the control record's 件数 recomputed (4,002
/// records, ~1 MB). Read as the hub reads it: the mappings chosen by match (請求書, 明細書 and
/// the 様式第七 one, which finds nothing), and the 明細書 mapping alone.
fn claims_thousand_statements(set: &MappingSet) {
    const PEOPLE: usize = 1000;
    let name = "国保連 claims CSV (MS932, 1,000 明細書 × 4 records) -> ClaimStatement";
    let Ok(sample) = std::fs::read_to_string("samples/claims/d0711b.csv") else {
        println!("{name:<52} skipped: samples/claims/d0711b.csv not found");
        return;
    };
    let inner = |line: &str| line.splitn(3, ',').nth(2).map(str::to_string);
    let lines: Vec<&str> = sample.lines().collect();
    let (Some(control), Some(invoice)) = (lines.first(), lines.get(1).and_then(|l| inner(l)))
    else {
        println!("{name:<52} skipped: d0711b.csv has no control record and 7111 line");
        return;
    };
    let statement: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("\"0000012345\""))
        .filter_map(|l| inner(l))
        .collect();
    let mut records = vec![invoice];
    for i in 0..PEOPLE {
        let person = format!("\"{:010}\"", 100_000 + i);
        records.extend(
            statement
                .iter()
                .map(|r| r.replace("\"0000012345\"", &person)),
        );
    }
    let fields: Vec<&str> = control.split(',').collect();
    let mut text = String::new();
    for (k, f) in fields.iter().enumerate() {
        if k > 0 {
            text.push(',');
        }
        match k {
            3 => text.push_str(&records.len().to_string()),
            _ => text.push_str(f),
        }
    }
    text.push_str("\r\n");
    for (n, r) in records.iter().enumerate() {
        text.push_str(&format!("2,{},{r}\r\n", n + 2));
    }
    text.push_str(&format!("3,{}\r\n", records.len() + 2));
    let bytes = text.into_bytes();
    let input = Input {
        bytes: &bytes,
        file_name: Some("d0711z.csv"),
    };
    let statements = |t: &kaigo_hub::mapping::Translation| {
        t.documents
            .iter()
            .filter(|d| d.mapping.id == "claims-statement")
            .count()
    };
    match set.translate(input, None) {
        Ok(t) if statements(&t) == PEOPLE => {}
        other => {
            println!(
                "{name:<52} skipped: expected {PEOPLE} 明細書, got {:?}",
                other.map(|t| statements(&t)).map_err(|e| e.to_string())
            );
            return;
        }
    }
    for (label, mapping) in [
        (format!("{name} (mappings chosen by match)"), None),
        (name.to_string(), Some("claims-statement")),
    ] {
        measure_file(&label, bytes.len(), PEOPLE, || {
            let t = set.translate(input, mapping).expect("translated above");
            black_box(t.documents);
        });
    }
}

/// [`measure`] for one large input: files/s, MB/s and the time per document.
fn measure_file(name: &str, bytes: usize, documents: usize, mut op: impl FnMut()) {
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !name.contains(&filter)
    {
        return;
    }
    op();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < BUDGET * 2 || n < 3 {
        op();
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64() / n as f64;
    println!(
        "{name}\n{:<52} {:>10.1} files/s {:>8.1} MB/s {:>8.1} ms/file {:>6.1} µs/明細書 ({n} runs)",
        "",
        1.0 / secs,
        bytes as f64 / secs / 1e6,
        secs * 1e3,
        secs * 1e6 / documents as f64
    );
}
