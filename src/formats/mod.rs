//! Wire formats: bytes in, a navigable tree out, and back. Each format lives in its own file
//! (`hl7v2`, `json` for FHIR and canonical JSON, `xml`, `csv` with `careplan_file_name` for its file names, `charset` for the Japanese
//! encodings, and `mllp` for HL7 v2's TCP framing); `tree` puts them behind one enum so the mapping engine can select values by path
//! without knowing which format it reads. Formats know nothing of mappings or brokers.

pub mod careplan_file_name;
pub mod charset;
pub mod csv;
pub mod hl7v2;
pub mod json;
pub mod mllp;
pub mod tree;
pub mod xml;

pub use tree::{Node, Path, Tree};

use serde::Serialize;

/// A wire format a mapping reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// HL7 v2.x (SS-MIX2), ER7 encoding.
    Hl7v2,
    /// FHIR R4 JSON.
    Fhir,
    /// Canonical JSON documents (outbound mappings read these).
    Canonical,
    /// XML.
    Xml,
    /// CSV (ケアプラン標準仕様 and others).
    Csv,
}

impl Format {
    /// Parses a format name as written in mapping files and on the command line.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "hl7v2" | "hl7" | "er7" => Format::Hl7v2,
            "fhir" | "fhir+json" => Format::Fhir,
            "canonical" | "json" => Format::Canonical,
            "xml" => Format::Xml,
            "csv" => Format::Csv,
            _ => return None,
        })
    }

    /// The name used in mapping files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Hl7v2 => "hl7v2",
            Format::Fhir => "fhir",
            Format::Canonical => "canonical",
            Format::Xml => "xml",
            Format::Csv => "csv",
        }
    }

    /// Guesses the format of raw bytes from their first meaningful characters: `MSH` is HL7 v2,
    /// `<` is XML, `{`/`[` is JSON (FHIR unless it carries a canonical `document` field), anything
    /// else is CSV.
    pub fn sniff(bytes: &[u8]) -> Format {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len());
        let head = &bytes[start..];
        if head.starts_with(b"MSH") {
            Format::Hl7v2
        } else if head.starts_with(b"<") || head.starts_with(b"\xFF\xFE<") {
            Format::Xml
        } else if head.starts_with(b"{") || head.starts_with(b"[") {
            let window = &head[..head.len().min(4096)];
            if window.windows(11).any(|w| w == b"\"document\":")
                || window.windows(12).any(|w| w == b"\"document\" :")
            {
                Format::Canonical
            } else {
                Format::Fhir
            }
        } else {
            Format::Csv
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_tells_formats_apart() {
        assert_eq!(Format::sniff(b"MSH|^~\\&|"), Format::Hl7v2);
        assert_eq!(
            Format::sniff(b"\xEF\xBB\xBF<?xml version='1.0'?><a/>"),
            Format::Xml
        );
        assert_eq!(
            Format::sniff(b" {\"resourceType\":\"Patient\"}"),
            Format::Fhir
        );
        assert_eq!(
            Format::sniff(b"{\"document\":\"CarePlan@1\"}"),
            Format::Canonical
        );
        assert_eq!(Format::sniff(b"202407,131011,0000000001"), Format::Csv);
    }
}
