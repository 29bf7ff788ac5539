//! Characters and positions of XML text: what is an XML character, whitespace and name; the
//! predefined entities; line and column (1-based, columns in characters) of a byte offset; and
//! clipping of quoted text for error messages. Small pure functions, no parsing state.

use super::*;

/// Maps byte offsets of a text to 1-based (line, column in characters). Cheap
/// for increasing offsets; a smaller offset restarts from the top.
pub(super) struct LineCursor<'a> {
    pub(super) text: &'a str,
    pub(super) offset: usize,
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) after_cr: bool,
}

impl<'a> LineCursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        LineCursor {
            text,
            offset: 0,
            line: 1,
            column: 1,
            after_cr: false,
        }
    }

    pub(super) fn at(&mut self, target: usize) -> (usize, usize) {
        let mut target = target.min(self.text.len());
        while target > 0 && !self.text.is_char_boundary(target) {
            target -= 1;
        }
        if target < self.offset {
            *self = LineCursor::new(self.text);
        }
        if let Some(slice) = self.text.get(self.offset..target) {
            for ch in slice.chars() {
                match ch {
                    '\r' => {
                        self.line += 1;
                        self.column = 1;
                        self.after_cr = true;
                    }
                    '\n' => {
                        if !self.after_cr {
                            self.line += 1;
                            self.column = 1;
                        }
                        self.after_cr = false;
                    }
                    _ => {
                        self.column += 1;
                        self.after_cr = false;
                    }
                }
            }
            self.offset = target;
        }
        (self.line, self.column)
    }
}

pub(super) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Byte offset of `part` inside `base`, when `part` is a sub-slice of it.
pub(super) fn offset_in(base: &str, part: &str) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (offset.checked_add(part.len())? <= base.len()).then_some(offset)
}

/// At most `CLIP` characters of an input-derived string, for messages.
pub(super) fn clip(s: &str) -> String {
    match s.char_indices().nth(CLIP) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or("")),
        None => s.to_string(),
    }
}

pub(super) fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

pub(super) fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub(super) fn trim_xml(s: &str) -> &str {
    s.trim_matches(is_xml_whitespace)
}

pub(super) fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

pub(super) fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// An XML name without colons.
pub(super) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if is_name_start(c)) && chars.all(is_name_char)
}

/// Splits `prefix:local` or `local`; `None` when it is not a qualified name.
pub(super) fn split_qname(s: &str) -> Option<(Option<&str>, &str)> {
    match s.split_once(':') {
        Some((prefix, local)) => {
            (is_ncname(prefix) && is_ncname(local)).then_some((Some(prefix), local))
        }
        None => is_ncname(s).then_some((None, s)),
    }
}
