//! The decoded HL7 v2 message and its flat `u32` offset indexes of segments and fields: built
//! once from the text, then navigated by compiled [`Path`]s into [`Node`]s, values escape-decoded
//! on demand. In: decoded text and delimiters; out: values, raw text, locations, a walk of every
//! value. Must never panic on any node, however out of range, and never grow beyond the
//! structural bounds [`MAX_SEGMENTS`] and [`MAX_FIELDS`].

use super::path::{Sel, Start};
use super::*;

#[derive(Clone, Copy, Debug)]
pub(super) struct Seg {
    /// Byte range of the segment in `text` (without terminator).
    pub(super) start: u32,
    pub(super) end: u32,
    /// Index into `bounds` of this segment's first field separator.
    pub(super) first: u32,
    /// Number of field separators in this segment.
    pub(super) parts: u32,
}

/// A decoded HL7 v2 message: UTF-8 text plus flat offset indexes.
#[derive(Clone, Debug)]
pub struct Message {
    pub(super) text: String,
    pub(super) charset: Charset,
    pub(super) seps: Separators,
    pub(super) segs: Vec<Seg>,
    /// Byte offsets of every field separator, segment after segment.
    pub(super) bounds: Vec<u32>,
}

pub(super) struct IndexBuilder {
    pub(super) segs: Vec<Seg>,
    pub(super) bounds: Vec<u32>,
    pub(super) first: usize,
}

impl IndexBuilder {
    pub(super) fn close(
        &mut self,
        text: &str,
        fs: u8,
        start: usize,
        end: usize,
        line: usize,
    ) -> Result<(), Hl7Error> {
        let seg = text.as_bytes().get(start..end).unwrap_or_default();
        let index = self.segs.len() + 1;
        let name_ok = match seg {
            [a, b, c, rest @ ..] => {
                a.is_ascii_alphanumeric()
                    && b.is_ascii_alphanumeric()
                    && c.is_ascii_alphanumeric()
                    && rest.first().is_none_or(|&d| d == fs)
            }
            _ => false,
        };
        if !name_ok {
            let shown: String = text
                .get(start..end)
                .unwrap_or("")
                .chars()
                .take(24)
                .collect();
            return Err(Hl7Error::BadSegmentName {
                index,
                line,
                found: Quoted::new(shown.escape_debug().to_string()),
            });
        }
        if self.segs.len() >= MAX_SEGMENTS {
            return Err(Hl7Error::TooManySegments {
                index,
                line,
                max: MAX_SEGMENTS,
            });
        }
        let parts = self.bounds.len() - self.first;
        self.segs.push(Seg {
            start: start as u32,
            end: end as u32,
            first: self.first as u32,
            parts: parts as u32,
        });
        self.first = self.bounds.len();
        Ok(())
    }

    /// One pass over the text: segment ranges, field separator offsets and
    /// name checks. Returns whether the text is already canonical (segments
    /// joined by single CRs, nothing empty).
    pub(super) fn run(&mut self, text: &str, fs: u8) -> Result<bool, Hl7Error> {
        let b = text.as_bytes();
        let mut canonical = true;
        let mut line = 1usize;
        let mut seg_start = 0usize;
        let mut seg_line = 1usize;
        for (i, &c) in b.iter().enumerate() {
            if c == fs {
                if self.bounds.len() >= MAX_FIELDS {
                    let name = text.get(seg_start..seg_start + 3).unwrap_or("").to_string();
                    return Err(Hl7Error::TooManyFields {
                        index: self.segs.len() + 1,
                        name,
                        line: seg_line,
                        max: MAX_FIELDS,
                    });
                }
                self.bounds.push(i as u32);
            } else if c == CR || c == LF {
                if i > seg_start {
                    self.close(text, fs, seg_start, i, seg_line)?;
                } else {
                    canonical = false;
                }
                if c == LF {
                    canonical = false;
                    line += 1;
                } else if b.get(i + 1) == Some(&LF) {
                    canonical = false;
                } else {
                    line += 1;
                }
                seg_start = i + 1;
                seg_line = line;
            }
        }
        if b.len() > seg_start {
            self.close(text, fs, seg_start, b.len(), seg_line)?;
        } else if !b.is_empty() {
            canonical = false;
        }
        Ok(canonical)
    }
}

impl Message {
    pub(super) fn from_text(
        text: String,
        charset: Charset,
        seps: Separators,
    ) -> Result<Message, Hl7Error> {
        if text.len() > u32::MAX as usize {
            return Err(Hl7Error::TooLarge {
                size: text.len(),
                max: u32::MAX as usize,
            });
        }
        let mut ix = IndexBuilder {
            segs: Vec::with_capacity(16),
            bounds: Vec::with_capacity(text.len() / 8 + 16),
            first: 0,
        };
        let canonical = ix.run(&text, seps.field)?;
        let text = if canonical {
            text
        } else {
            let mut joined = String::with_capacity(text.len());
            for (k, s) in ix.segs.iter().enumerate() {
                if k > 0 {
                    joined.push('\r');
                }
                joined.push_str(text.get(s.start as usize..s.end as usize).unwrap_or(""));
            }
            ix.segs.clear();
            ix.bounds.clear();
            ix.first = 0;
            ix.run(&joined, seps.field)?;
            joined
        };
        Ok(Message {
            text,
            charset,
            seps,
            segs: ix.segs,
            bounds: ix.bounds,
        })
    }

    /// Character set the bytes were decoded from.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// Delimiters from MSH-1 and MSH-2.
    pub fn separators(&self) -> &Separators {
        &self.seps
    }

    /// The whole decoded message, segments joined by `\r` (no trailing `\r`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of segments (empty lines are not segments).
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// Name of segment `seg`, counted from 0 as in `0..segment_count()`;
    /// `""` when out of range.
    pub fn segment_name(&self, seg: usize) -> &str {
        self.segs
            .get(seg)
            .and_then(|s| self.text.get(s.start as usize..s.start as usize + 3))
            .unwrap_or("")
    }

    /// Node of segment `seg` (counted from 0).
    pub fn segment_node(&self, seg: usize) -> Option<Node> {
        (seg < self.segs.len()).then(|| Node {
            seg: seg as u32 + 1,
            ..Node::default()
        })
    }

    /// Number of fields of segment `seg` (counted from 0); for MSH this
    /// counts MSH-1, so `MSH|^~\&|A` has 3.
    pub fn field_count(&self, seg: usize) -> usize {
        let Some(s) = self.segs.get(seg) else {
            return 0;
        };
        let msh_extra = usize::from(self.is_msh(s) && s.end - s.start >= 4);
        s.parts as usize + msh_extra
    }

    /// MSH-9 as written, e.g. `ADT^A08^ADT_A01`; empty when absent.
    pub fn message_type(&self) -> String {
        self.field_range(0, 9)
            .and_then(|(s, e)| self.text.get(s..e))
            .unwrap_or("")
            .to_string()
    }

    /// MSH-10, escape-decoded; `None` when empty.
    pub fn control_id(&self) -> Option<String> {
        let node = Node {
            seg: 1,
            field: 10,
            ..Node::default()
        };
        self.value(node).map(Cow::into_owned)
    }

    /// The whole message.
    pub fn root(&self) -> Node {
        Node::default()
    }

    /// Pushes every node `path` selects, in document order. Absolute paths
    /// search the whole message whatever `from` is; relative ones start at
    /// `from` and select nothing from the wrong kind of node.
    pub fn select(&self, from: Node, path: &Path, out: &mut Vec<Node>) {
        self.visit(from, path, &mut |n| {
            out.push(n);
            true
        });
    }

    /// The first node `path` selects from `from`, if any.
    pub fn first(&self, from: Node, path: &Path) -> Option<Node> {
        let mut found = None;
        self.visit(from, path, &mut |n| {
            found = Some(n);
            false
        });
        found
    }

    /// Value of the first node an absolute `path` selects (`PID` = first
    /// PID, `PID-5` = its first repetition); `None` when absent or empty.
    pub fn value_at(&self, path: &Path) -> Option<Cow<'_, str>> {
        self.first(self.root(), path).and_then(|n| self.value(n))
    }

    /// The text of `node` exactly as written (no escape decoding).
    pub fn raw(&self, node: Node) -> Option<&str> {
        let (s, e) = self.span(node)?;
        self.text.get(s..e)
    }

    /// Escape-decoded text of exactly `node`'s span. Separators inside the
    /// span are kept as they are (`PID-5[1]` gives `患者^太郎^^^^^L^I`; use
    /// `.1` for parts). MSH-1 and MSH-2 are returned as written. `None` when
    /// the node is absent or its text is empty. Borrowed when nothing needed
    /// decoding.
    pub fn value(&self, node: Node) -> Option<Cow<'_, str>> {
        let raw = self.raw(node)?;
        if raw.is_empty() {
            return None;
        }
        let si = node.seg.checked_sub(1)? as usize;
        if node.field > 0 && self.is_atomic(si, node.field) {
            return Some(Cow::Borrowed(raw));
        }
        let v = unescape(raw, &self.seps);
        (!v.is_empty()).then_some(v)
    }

    /// Where `node` is, e.g. `PID-5[2].1 (segment 3)`.
    pub fn location(&self, node: Node) -> String {
        if node.seg == 0 {
            return "message".to_string();
        }
        let si = node.seg as usize - 1;
        let Some(seg) = self.segs.get(si) else {
            return format!("segment {} (not in this message)", node.seg);
        };
        let name = self.name_of(seg);
        let mut occurrence = 0;
        let mut total = 0;
        for (k, s) in self.segs.iter().enumerate() {
            if self.name_of(s) == name {
                total += 1;
                if k <= si {
                    occurrence += 1;
                }
            }
        }
        let mut out = String::new();
        out.push_str(self.segment_name(si));
        if total > 1 {
            let _ = write!(out, "[{occurrence}]");
        }
        if node.field > 0 {
            let _ = write!(out, "-{}", node.field);
            if node.rep > 0 {
                let reps = self
                    .field_range(si, node.field)
                    .map(|r| self.count_pieces(r, self.rep_sep(si, node.field)))
                    .unwrap_or(1);
                if reps > 1 || node.rep > 1 {
                    let _ = write!(out, "[{}]", node.rep);
                }
            }
            if node.comp > 0 {
                let _ = write!(out, ".{}", node.comp);
            }
            if node.sub > 0 {
                let _ = write!(out, ".{}", node.sub);
            }
        }
        let _ = write!(out, " (segment {})", node.seg);
        out
    }

    /// Calls `f(path, value)` for every non-empty leaf in document order.
    /// `path` is the shortest path that selects the leaf again, e.g.
    /// `PID-5[2].1`, `OBX[2]-5`, `PID-7`.
    pub fn walk(&self, f: &mut dyn FnMut(&str, &str)) {
        let b = self.text.as_bytes();
        let mut totals: HashMap<&[u8], u32> = HashMap::new();
        for s in &self.segs {
            *totals.entry(self.name_of(s)).or_insert(0) += 1;
        }
        let mut seen: HashMap<&[u8], u32> = HashMap::new();
        let mut path = String::with_capacity(32);
        for (si, seg) in self.segs.iter().enumerate() {
            let name = self.name_of(seg);
            let occurrence = {
                let n = seen.entry(name).or_insert(0);
                *n += 1;
                *n
            };
            let multi_seg = totals.get(name).copied().unwrap_or(1) > 1;
            for field in 1..=self.field_count(si) as u32 {
                let Some(fr) = self.field_range(si, field) else {
                    continue;
                };
                let atomic = self.is_atomic(si, field);
                let rsep = self.rep_sep(si, field);
                let csep = (!atomic).then_some(self.seps.component);
                let ssep = (!atomic).then_some(self.seps.subcomponent);
                let nreps = self.count_pieces(fr, rsep);
                for (r, rr) in Pieces::new(b, fr, rsep).enumerate() {
                    let ncomps = self.count_pieces(rr, csep);
                    for (c, cr) in Pieces::new(b, rr, csep).enumerate() {
                        let nsubs = self.count_pieces(cr, ssep);
                        for (s, sr) in Pieces::new(b, cr, ssep).enumerate() {
                            let Some(raw) = self.text.get(sr.0..sr.1) else {
                                continue;
                            };
                            if raw.is_empty() {
                                continue;
                            }
                            let v = if atomic {
                                Cow::Borrowed(raw)
                            } else {
                                unescape(raw, &self.seps)
                            };
                            if v.is_empty() {
                                continue;
                            }
                            path.clear();
                            path.push_str(self.segment_name(si));
                            if multi_seg {
                                let _ = write!(path, "[{occurrence}]");
                            }
                            let _ = write!(path, "-{field}");
                            if nreps > 1 {
                                let _ = write!(path, "[{}]", r + 1);
                            }
                            if ncomps > 1 || nsubs > 1 {
                                let _ = write!(path, ".{}", c + 1);
                            }
                            if nsubs > 1 {
                                let _ = write!(path, ".{}", s + 1);
                            }
                            f(&path, &v);
                        }
                    }
                }
            }
        }
    }

    // --- internals -------------------------------------------------------

    pub(super) fn name_of(&self, seg: &Seg) -> &[u8] {
        let s = seg.start as usize;
        self.text.as_bytes().get(s..s + 3).unwrap_or_default()
    }

    pub(super) fn is_msh(&self, seg: &Seg) -> bool {
        self.name_of(seg) == b"MSH"
    }

    /// MSH-1 and MSH-2 hold the delimiters themselves: never split, never
    /// escape-decoded.
    pub(super) fn is_atomic(&self, si: usize, field: u32) -> bool {
        field <= 2 && self.segs.get(si).is_some_and(|s| self.is_msh(s))
    }

    pub(super) fn rep_sep(&self, si: usize, field: u32) -> Option<u8> {
        (!self.is_atomic(si, field)).then_some(self.seps.repetition)
    }

    pub(super) fn field_range(&self, si: usize, field: u32) -> Option<(usize, usize)> {
        let seg = self.segs.get(si)?;
        let (start, end) = (seg.start as usize, seg.end as usize);
        let part = if self.is_msh(seg) {
            if field == 1 {
                return (end >= start + 4).then_some((start + 3, start + 4));
            }
            field.checked_sub(1)?
        } else {
            field
        };
        if part == 0 || part > seg.parts {
            return None;
        }
        let at = seg.first as usize + part as usize - 1;
        let from = *self.bounds.get(at)? as usize + 1;
        let to = if part < seg.parts {
            *self.bounds.get(at + 1)? as usize
        } else {
            end
        };
        (from <= to).then_some((from, to))
    }

    pub(super) fn count_pieces(&self, range: (usize, usize), sep: Option<u8>) -> usize {
        match (sep, self.text.as_bytes().get(range.0..range.1)) {
            (Some(sep), Some(bytes)) => 1 + bytes.iter().filter(|&&b| b == sep).count(),
            _ => 1,
        }
    }

    pub(super) fn span(&self, n: Node) -> Option<(usize, usize)> {
        if n.seg == 0 {
            let whole = n.field == 0 && n.rep == 0 && n.comp == 0 && n.sub == 0;
            return whole.then_some((0, self.text.len()));
        }
        let si = n.seg as usize - 1;
        let seg = self.segs.get(si)?;
        if n.field == 0 {
            let whole = n.rep == 0 && n.comp == 0 && n.sub == 0;
            return whole.then_some((seg.start as usize, seg.end as usize));
        }
        let fr = self.field_range(si, n.field)?;
        if n.rep == 0 {
            return (n.comp == 0 && n.sub == 0).then_some(fr);
        }
        let b = self.text.as_bytes();
        let atomic = self.is_atomic(si, n.field);
        let rr = nth_piece(b, fr, self.rep_sep(si, n.field), n.rep)?;
        if n.comp == 0 {
            return (n.sub == 0).then_some(rr);
        }
        let cr = nth_piece(b, rr, (!atomic).then_some(self.seps.component), n.comp)?;
        if n.sub == 0 {
            return Some(cr);
        }
        nth_piece(b, cr, (!atomic).then_some(self.seps.subcomponent), n.sub)
    }

    /// Calls `f` for each node `path` selects, in document order, until `f` returns false.
    /// Returns false when stopped early. Allocates nothing.
    pub fn visit<F: FnMut(Node) -> bool>(&self, from: Node, path: &Path, f: &mut F) -> bool {
        match &path.start {
            Start::Segment { name, which } => {
                let mut seen = 0u32;
                for (si, seg) in self.segs.iter().enumerate() {
                    if self.name_of(seg) != name.as_slice() {
                        continue;
                    }
                    seen += 1;
                    match which {
                        Sel::All => {}
                        Sel::Nth(n) if seen < *n => continue,
                        Sel::Nth(n) if seen > *n => break,
                        Sel::Nth(_) => {}
                        Sel::Match { place, value } => {
                            if !self.segment_matches(si, place, value) {
                                continue;
                            }
                        }
                    }
                    if !self.visit_in_segment(si, path, f) {
                        return false;
                    }
                }
                true
            }
            Start::FromSegment => {
                if from.seg == 0 || from.field != 0 {
                    return true;
                }
                let si = from.seg as usize - 1;
                if si >= self.segs.len() {
                    return true;
                }
                self.visit_in_segment(si, path, f)
            }
            Start::FromField => {
                if from.seg == 0 || from.field == 0 || from.comp != 0 || from.sub != 0 {
                    return true;
                }
                let si = from.seg as usize - 1;
                let Some(fr) = self.field_range(si, from.field) else {
                    return true;
                };
                let only = (from.rep > 0).then_some(from.rep);
                self.visit_reps(si, from.field, fr, only, path, f)
            }
        }
    }

    pub(super) fn visit_in_segment<F: FnMut(Node) -> bool>(
        &self,
        si: usize,
        path: &Path,
        f: &mut F,
    ) -> bool {
        if path.field == 0 {
            return f(Node {
                seg: si as u32 + 1,
                ..Node::default()
            });
        }
        match self.field_range(si, path.field) {
            Some(fr) => self.visit_reps(si, path.field, fr, None, path, f),
            None => true,
        }
    }

    pub(super) fn visit_reps<F: FnMut(Node) -> bool>(
        &self,
        si: usize,
        field: u32,
        fr: (usize, usize),
        only: Option<u32>,
        path: &Path,
        f: &mut F,
    ) -> bool {
        let b = self.text.as_bytes();
        let atomic = self.is_atomic(si, field);
        let csep = (!atomic).then_some(self.seps.component);
        let ssep = (!atomic).then_some(self.seps.subcomponent);
        let mut r = 0u32;
        for rr in Pieces::new(b, fr, self.rep_sep(si, field)) {
            r += 1;
            if let Some(only) = only {
                if r < only {
                    continue;
                }
                if r > only {
                    break;
                }
            }
            let keep = match &path.reps {
                Sel::All => true,
                Sel::Nth(n) => r == *n,
                Sel::Match { place, value } => {
                    self.part_is(si, field, rr, place[0], place[1], value)
                }
            };
            if !keep {
                if matches!(path.reps, Sel::Nth(n) if r > n) {
                    break;
                }
                continue;
            }
            let node = Node {
                seg: si as u32 + 1,
                field,
                rep: r,
                comp: 0,
                sub: 0,
            };
            if path.comp == 0 {
                if !f(node) {
                    return false;
                }
                continue;
            }
            let Some(cr) = nth_piece(b, rr, csep, path.comp) else {
                continue;
            };
            if path.sub == 0 {
                if !f(Node {
                    comp: path.comp,
                    ..node
                }) {
                    return false;
                }
                continue;
            }
            if nth_piece(b, cr, ssep, path.sub).is_some()
                && !f(Node {
                    comp: path.comp,
                    sub: path.sub,
                    ..node
                })
            {
                return false;
            }
        }
        true
    }
}

impl Message {
    /// Whether segment `si` has, in some repetition of field `place[0]`, the part at component
    /// `place[1]`, subcomponent `place[2]` (0 = whole) equal to `value`: what `IN1[2.1=KAIGO]`
    /// asks. An absent field counts as one empty repetition.
    pub(super) fn segment_matches(&self, si: usize, place: &[u32; 3], value: &str) -> bool {
        let [field, comp, sub] = *place;
        let Some(fr) = self.field_range(si, field) else {
            return value.is_empty();
        };
        let b = self.text.as_bytes();
        Pieces::new(b, fr, self.rep_sep(si, field))
            .any(|rr| self.part_is(si, field, rr, comp, sub, value))
    }

    /// Whether the part of repetition `rr` (of field `field` in segment `si`) at component
    /// `comp`, subcomponent `sub` (0 = whole) equals `value` after escape decoding; an absent
    /// part counts as empty.
    pub(super) fn part_is(
        &self,
        si: usize,
        field: u32,
        rr: (usize, usize),
        comp: u32,
        sub: u32,
        value: &str,
    ) -> bool {
        let b = self.text.as_bytes();
        let atomic = self.is_atomic(si, field);
        let piece = |range, sep, n| match n {
            0 => Some(range),
            n => nth_piece(b, range, (!atomic).then_some(sep), n),
        };
        let part = piece(rr, self.seps.component, comp)
            .and_then(|cr| piece(cr, self.seps.subcomponent, sub));
        let raw = part.and_then(|(s, e)| self.text.get(s..e)).unwrap_or("");
        if atomic {
            raw == value
        } else {
            unescape(raw, &self.seps) == value
        }
    }
}

/// Splits a byte range on `sep` (or yields it whole when `sep` is `None`).
/// An empty range yields one empty piece.
pub(super) struct Pieces<'a> {
    pub(super) b: &'a [u8],
    pub(super) pos: usize,
    pub(super) end: usize,
    pub(super) sep: Option<u8>,
    pub(super) done: bool,
}

impl<'a> Pieces<'a> {
    pub(super) fn new(b: &'a [u8], range: (usize, usize), sep: Option<u8>) -> Self {
        Pieces {
            b,
            pos: range.0,
            end: range.1,
            sep,
            done: range.0 > range.1,
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let start = self.pos;
        let found = match self.sep {
            Some(sep) => self
                .b
                .get(start..self.end)
                .and_then(|s| s.iter().position(|&c| c == sep)),
            None => None,
        };
        match found {
            Some(k) => {
                self.pos = start + k + 1;
                Some((start, start + k))
            }
            None => {
                self.done = true;
                Some((start, self.end))
            }
        }
    }
}

/// The `n`th (1-based) piece of `range`.
pub(super) fn nth_piece(
    b: &[u8],
    range: (usize, usize),
    sep: Option<u8>,
    n: u32,
) -> Option<(usize, usize)> {
    let k = n.checked_sub(1)? as usize;
    Pieces::new(b, range, sep).nth(k)
}

impl Message {
    /// A field of segment `si` (from 0) rewritten for delimiters `target`.
    pub(super) fn field_as(&self, si: usize, field: u32, target: &Separators) -> String {
        let Some(fr) = self.field_range(si, field) else {
            return String::new();
        };
        let raw = self.text.get(fr.0..fr.1).unwrap_or("");
        if self.seps.same_delimiters(target) || self.is_atomic(si, field) {
            return raw.to_string();
        }
        let b = self.text.as_bytes();
        let mut out = String::with_capacity(raw.len());
        for (r, rr) in Pieces::new(b, fr, Some(self.seps.repetition)).enumerate() {
            if r > 0 {
                out.push(char::from(target.repetition));
            }
            for (c, cr) in Pieces::new(b, rr, Some(self.seps.component)).enumerate() {
                if c > 0 {
                    out.push(char::from(target.component));
                }
                for (s, sr) in Pieces::new(b, cr, Some(self.seps.subcomponent)).enumerate() {
                    if s > 0 {
                        out.push(char::from(target.subcomponent));
                    }
                    let part = self.text.get(sr.0..sr.1).unwrap_or("");
                    out.push_str(&escape(&unescape(part, &self.seps), target));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::hl7v2::test_support::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[test]
    fn adt00_patient_fields_are_reachable_by_path() {
        let m = adt00();
        assert_eq!(m.segment_count(), 11);
        assert_eq!(m.segment_name(2), "PID");
        assert_eq!(m.segment_name(99), "");
        // XPN-7 is the name type (L), XPN-8 the representation (I/P).
        assert_eq!(v(&m, "PID-5[8=I].1").as_deref(), Some("患者"));
        assert_eq!(v(&m, "PID-5[8=I].2").as_deref(), Some("太郎"));
        assert_eq!(v(&m, "PID-5[8=P].1").as_deref(), Some("カンジャ"));
        assert_eq!(v(&m, "PID-5[8=P].2").as_deref(), Some("タロウ"));
        assert!(all(&m, m.root(), "PID-5[7=I].1").is_empty());
        assert_eq!(all(&m, m.root(), "PID-5[7=L].1"), ["患者", "カンジャ"]);
        assert_eq!(all(&m, m.root(), "PID-5.1"), ["患者", "カンジャ"]);
        assert_eq!(v(&m, "PID-5[2].1").as_deref(), Some("カンジャ"));
        assert_eq!(v(&m, "PID-5").as_deref(), Some("患者^太郎^^^^^L^I"));
        assert_eq!(v(&m, "PID-7").as_deref(), Some("19480405"));
        assert_eq!(v(&m, "PID-8").as_deref(), Some("M"));
        assert_eq!(v(&m, "PID-11.5").as_deref(), Some("422-8033"));
        // JIS 0x215D decodes to U+FF0D (WHATWG / Windows mapping), not U+2212.
        assert_eq!(
            v(&m, "PID-11.8").as_deref(),
            Some("静岡県静岡市登呂１\u{ff0d}３\u{ff0d}５")
        );
        assert_eq!(v(&m, "PID-4"), None);
        assert_eq!(v(&m, "PID-99"), None);
        assert_eq!(all(&m, m.root(), "PID-13").len(), 2);
        assert_eq!(v(&m, "PID-13[1].2").as_deref(), Some("PRN"));
        assert_eq!(v(&m, "PID-13[2].2").as_deref(), Some("EMR"));
        assert_eq!(
            all(&m, m.root(), "PID-13.12"),
            ["054-000-0000", "03-5999-9999"]
        );
        assert_eq!(all(&m, m.root(), "PID-13[*].3"), ["PH", "PH"]);
        assert_eq!(v(&m, "PID-14.12").as_deref(), Some("03-3599-9993"));
        // MSH numbering: MSH-1 is the separator itself.
        assert_eq!(v(&m, "MSH-1").as_deref(), Some("|"));
        assert_eq!(v(&m, "MSH-2").as_deref(), Some("^~\\&"));
        assert_eq!(v(&m, "MSH-3").as_deref(), Some("HIS123"));
        assert_eq!(v(&m, "MSH-9").as_deref(), Some("ADT^A08^ADT_A01"));
        assert_eq!(v(&m, "MSH-9.1").as_deref(), Some("ADT"));
        assert_eq!(m.message_type(), "ADT^A08^ADT_A01");
        assert_eq!(m.control_id().as_deref(), Some("20111220000001"));
        assert_eq!(
            v(&m, "MSH-18"),
            None,
            "first repetition of `~ISO IR87` is empty"
        );
        assert_eq!(v(&m, "MSH-18[2]").as_deref(), Some("ISO IR87"));
        // Repeating segments.
        assert_eq!(all(&m, m.root(), "OBX").len(), 3);
        assert_eq!(v(&m, "OBX[2]-5").as_deref(), Some("63.5"));
        assert_eq!(
            all(&m, m.root(), "OBX-3.2"),
            ["身長", "体重", "血液型-ABO式"]
        );
        assert_eq!(all(&m, m.root(), "OBX[*]-6.1"), ["cm", "kg", ""]);
        assert_eq!(v(&m, "AL1-3.2").as_deref(), Some("ペニシリン"));
        assert!(v(&m, "PID").is_some_and(|s| s.starts_with("PID|0001||9999013")));
    }

    #[test]
    fn location_names_the_path_and_segment_number() {
        let m = adt00();
        let loc = |path: &str| m.first(m.root(), &p(path)).map(|n| m.location(n));
        assert_eq!(loc("PID-5[2].1").as_deref(), Some("PID-5[2].1 (segment 3)"));
        assert_eq!(loc("PID-11.5").as_deref(), Some("PID-11.5 (segment 3)"));
        assert_eq!(loc("PID-7").as_deref(), Some("PID-7 (segment 3)"));
        assert_eq!(loc("OBX[2]-5").as_deref(), Some("OBX[2]-5 (segment 8)"));
        assert_eq!(loc("PID").as_deref(), Some("PID (segment 3)"));
        assert_eq!(m.location(m.root()), "message");
    }

    #[test]
    fn walk_paths_select_the_same_values_again() {
        for f in fixture_files() {
            let Ok(m) = parse(&std::fs::read(&f).expect("readable")) else {
                continue;
            };
            let mut leaves = Vec::new();
            m.walk(&mut |path, value| leaves.push((path.to_string(), value.to_string())));
            assert!(leaves.len() > 10, "{}", f.display());
            for (path, value) in &leaves {
                assert_eq!(
                    v(&m, path).as_deref(),
                    Some(value.as_str()),
                    "{path} in {}",
                    f.display()
                );
            }
        }
        let m = adt00();
        let mut leaves = Vec::new();
        m.walk(&mut |path, value| leaves.push(format!("{path}={value}")));
        for want in [
            "MSH-1=|",
            "MSH-9.2=A08",
            "PID-5[2].1=カンジャ",
            "PID-7=19480405",
            "OBX[3]-3.2=血液型-ABO式",
        ] {
            assert!(leaves.iter().any(|l| l == want), "missing {want}");
        }
    }

    #[test]
    fn relative_paths_navigate_from_segment_and_repetition_nodes() {
        let m = adt00();
        let mut obx = Vec::new();
        m.select(m.root(), &p("OBX"), &mut obx);
        let values: Vec<String> = obx
            .iter()
            .filter_map(|&n| {
                m.first(n, &p("-5"))
                    .and_then(|x| m.value(x))
                    .map(Cow::into_owned)
            })
            .collect();
        assert_eq!(values, ["167.8", "63.5", "A^A^JSHR002"]);
        assert_eq!(all(&m, obx[2], "-5.2"), ["A"]);

        let mut names = Vec::new();
        m.select(m.root(), &p("PID-5"), &mut names);
        assert_eq!(names.len(), 2);
        assert!(all(&m, names[0], "[8=P].1").is_empty());
        assert_eq!(all(&m, names[1], "[8=P].1"), ["カンジャ"]);
        assert_eq!(all(&m, names[0], ".2"), ["太郎"]);
        assert_eq!(all(&m, names[1], "[2]"), ["カンジャ^タロウ^^^^^L^P"]);
        // From the whole field, a repetition selector chooses among repetitions.
        assert_eq!(all(&m, names[0].whole_field(), "[8=P].1"), ["カンジャ"]);
        assert_eq!(all(&m, names[0].whole_field(), ".1"), ["患者", "カンジャ"]);

        // The wrong kind of node selects nothing.
        assert!(all(&m, m.root(), "-5").is_empty());
        assert!(all(&m, m.root(), ".1").is_empty());
        assert!(all(&m, obx[0], ".1").is_empty());
        assert!(all(&m, names[0], "-5").is_empty());
        let comp = m.first(m.root(), &p("PID-5.1")).expect("component");
        assert!(all(&m, comp, ".1").is_empty());
        // Absolute paths ignore `from`.
        assert_eq!(all(&m, obx[0], "PID-7"), ["19480405"]);

        assert!(p("-5").is_relative());
        assert!(p(".1").is_relative());
        assert!(p("[8=P].1").is_relative());
        assert!(!p("PID-5").is_relative());
    }

    /// A patient with medical insurance first and 介護保険 second, as an ADT may carry them.
    fn two_insurances() -> Message {
        parse(&utf8_msg(
            &[
                MSH_UTF8,
                "PID|1||00000010^^^^PI||患者^太郎^^^^^L^I",
                "IN1|1|67^国民健康保険^JHSD0001|67999991|||||||||||||||||||||||||||||||||0123456",
                "IN1|2|KAIGO^介護保険|131011|||||||||||||||||||||||||||||||||0000012345~X&Y",
                "IN1|3|KAIGO|999999|||||||||||||||||||||||||||||||||0000099999",
                "IN1|4|A\\T\\B~KAIGO^介護保険|888888",
            ],
            "\r",
        ))
        .expect("parses")
    }

    #[test]
    fn segment_is_chosen_by_a_field_value() {
        let m = two_insurances();
        // The naive path reads the first IN1: the medical insurance.
        assert_eq!(v(&m, "IN1-36").as_deref(), Some("0123456"));
        assert_eq!(v(&m, "IN1[2.1=KAIGO]-36").as_deref(), Some("0000012345"));
        assert_eq!(v(&m, "IN1[2.1=KAIGO]-36.1").as_deref(), Some("0000012345"));
        assert_eq!(v(&m, "IN1[2.1=KAIGO]-36[2].1.2").as_deref(), Some("Y"));
        assert_eq!(v(&m, "IN1[2.2=介護保険]-3").as_deref(), Some("131011"));
        // The whole field must equal the value: only IN1[3] has IN1-2 = KAIGO alone.
        assert_eq!(v(&m, "IN1[2=KAIGO]-36").as_deref(), Some("0000099999"));
        // Any repetition of the field may match; the value is escape-decoded first.
        assert_eq!(
            all(&m, m.root(), "IN1[2.1=KAIGO]-3"),
            ["131011", "999999", "888888"]
        );
        assert_eq!(all(&m, m.root(), "IN1[2=A&B]-3"), ["888888"]);
        let second = m
            .first(m.root(), &p("IN1[1=2]"))
            .expect("IN1 whose IN1-1 is 2");
        assert_eq!(m.location(second), "IN1[2] (segment 4)");
        // A value no segment has selects nothing; an empty value matches an absent field.
        assert!(all(&m, m.root(), "IN1[2.1=ROUSAI]-36").is_empty());
        assert_eq!(all(&m, m.root(), "IN1[36=]-3"), ["888888"]);
        assert!(all(&m, m.root(), "IN1[99=x]").is_empty());
        // MSH fields keep the standard's numbers.
        assert_eq!(v(&m, "MSH[9.1=ADT]-10").as_deref(), Some("C1"));
        assert!(v(&m, "MSH[9.1=ORU]-10").is_none());
        assert_eq!(v(&m, "MSH[1=|]-10").as_deref(), Some("C1"));
        // As an `each`, the selector keeps only the matching segments; relative paths then read them.
        let mut kaigo = Vec::new();
        m.select(m.root(), &p("IN1[2.1=KAIGO]"), &mut kaigo);
        assert_eq!(kaigo.len(), 3);
        assert_eq!(all(&m, kaigo[0], "-1"), ["2"]);
        assert_eq!(m.location(kaigo[1]), "IN1[3] (segment 5)");
    }

    #[test]
    fn fixtures_have_the_same_fields_as_hl7_parser_finds() {
        for f in fixture_files() {
            let bytes = std::fs::read(&f).expect("readable");
            let Ok(m) = parse(&bytes) else {
                continue;
            };
            let text = charset::decode_exact(&bytes, charset::Charset::Iso2022Jp)
                .expect("every fixture that parses is ISO-2022-JP");
            let text = text.trim_end_matches(['\r', '\u{1c}']);
            let theirs = hl7_parser::parse_message_with_lenient_newlines(text).expect("hl7-parser");
            let their_segs: Vec<_> = theirs.segments().collect();
            // hl7-parser silently stops at the first segment that has no
            // field separator (`AL1` alone); this module keeps them.
            assert!(their_segs.len() <= m.segment_count(), "{}", f.display());
            if their_segs.len() < m.segment_count() {
                assert_eq!(m.field_count(their_segs.len()), 0, "{}", f.display());
            }
            for (si, seg) in their_segs.iter().enumerate() {
                assert_eq!(seg.name, m.segment_name(si));
                let first_field = if seg.name == "MSH" { 3 } else { 1 };
                for field in first_field..=m.field_count(si) {
                    let node = Node {
                        seg: si as u32 + 1,
                        field: field as u32,
                        ..Node::default()
                    };
                    let theirs = seg.field(field).map(|x| x.raw_value()).unwrap_or("");
                    assert_eq!(
                        m.raw(node).unwrap_or(""),
                        theirs,
                        "{} in {}",
                        m.location(node),
                        f.display()
                    );
                }
            }
        }
    }

    #[test]
    fn nodes_out_of_range_give_none_not_panics() {
        let m = adt00();
        for seg in [0, 1, 3, 11, 12, u32::MAX] {
            for field in [0, 1, 2, 5, 40, u32::MAX] {
                for rep in [0, 1, 3] {
                    for comp in [0, 1, 9, u32::MAX] {
                        for sub in [0, 1, 2] {
                            let n = Node {
                                seg,
                                field,
                                rep,
                                comp,
                                sub,
                            };
                            let _ = m.value(n);
                            let _ = m.location(n);
                            let _ = m.raw(n);
                        }
                    }
                }
            }
        }
        let n = Node {
            seg: 99,
            ..Node::default()
        };
        assert_eq!(m.value(n), None);
        assert_eq!(m.location(n), "segment 99 (not in this message)");
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn parse_and_navigation_never_panic_on_random_bytes(
            body in vec(any::<u8>(), 0..600),
            header in 0usize..3,
        ) {
            let mut input = match header {
                0 => Vec::new(),
                1 => b"MSH|^~\\&|".to_vec(),
                _ => b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|1|P|2.5||||||~ISO IR87\rPID|".to_vec(),
            };
            input.extend_from_slice(&body);
            exercise(&input);
        }

        #[test]
        fn parse_and_navigation_never_panic_on_mutated_fixtures(
            which in 0usize..22,
            edits in vec((any::<usize>(), any::<u8>(), 0u8..4), 1..12),
        ) {
            let files = fixture_files();
            let mut bytes = std::fs::read(&files[which % files.len()]).expect("readable");
            for (at, byte, op) in edits {
                let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
                match op {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if !bytes.is_empty() => { bytes.remove(at); }
                    _ => bytes.insert(at, [b'|', b'^', b'~', b'\\', b'&', CR, ESC][usize::from(byte) % 7]),
                }
            }
            exercise(&bytes);
        }
    }
}
