//! Places in an HL7 v2 message: [`Node`] (segment, field, repetition, component, subcomponent)
//! and the compiled [`Path`] grammar of mappings (`PID-5[8=P].1`, relative `.2`). In: path text;
//! out: a [`Path`] or an error that points at the offending character. Knows nothing of a
//! message's bytes.

/// A place in a message: segment, field, repetition, component and
/// subcomponent numbers, each 1-based, 0 meaning "the whole thing".
/// `Node::default()` is the whole message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Node {
    pub(super) seg: u32,
    pub(super) field: u32,
    pub(super) rep: u32,
    pub(super) comp: u32,
    pub(super) sub: u32,
}

impl Node {
    /// Segment index counted from 0 (as for [`Message::segment_name`]);
    /// `None` for the whole message.
    pub fn segment(&self) -> Option<usize> {
        self.seg.checked_sub(1).map(|s| s as usize)
    }
    /// Field number (MSH-1 is the field separator); 0 = whole segment.
    pub fn field(&self) -> u32 {
        self.field
    }
    /// Repetition number; 0 = whole field.
    pub fn repetition(&self) -> u32 {
        self.rep
    }
    /// Component number; 0 = whole repetition.
    pub fn component(&self) -> u32 {
        self.comp
    }
    /// Subcomponent number; 0 = whole component.
    pub fn subcomponent(&self) -> u32 {
        self.sub
    }
    /// The whole field this node is in (all repetitions); unchanged for
    /// segment and message nodes.
    pub fn whole_field(self) -> Node {
        if self.field == 0 {
            return self;
        }
        Node {
            rep: 0,
            comp: 0,
            sub: 0,
            ..self
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Start {
    Segment { name: [u8; 3], which: Sel },
    FromSegment,
    FromField,
}

/// Which of several alike things a `[..]` keeps: the segments of one name (`IN1[2]`,
/// `IN1[2=KAIGO]`) or the repetitions of one field (`PID-5[2]`, `PID-5[8=P]`). One grammar
/// for both; only the level that `place` counts from differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Sel {
    /// `[*]` or no `[..]`: every one.
    All,
    /// `[N]`: the Nth, counted from 1.
    Nth(u32),
    /// `[N.M=TEXT]`: those whose part at `place` equals `value` after escape decoding. The
    /// numbers count one level down from the thing chosen — field, component, subcomponent
    /// for a segment; component, subcomponent for a repetition — 0 meaning the whole part.
    Match { place: [u32; 3], value: String },
}

/// A compiled navigation path. Grammar (numbers are 1-based):
///
/// ```text
/// path     := SEG segs? ('-' field)?       absolute: PID, OBX[2], OBX[*]-5, IN1[2=KAIGO]-36
///           | '-' field                    relative to a segment node: -5, -5[2].1
///           | reps comps? | comps          relative to a field/repetition node: .1, .1.2, [8=P].1
/// SEG      := 3 letters/digits
/// segs     := '[' (N | '*' | N ('.' N ('.' N)?)? '=' TEXT) ']'
///                                          one occurrence of the segment, all, or those
///                                          whose field N (component N.M, subcomponent
///                                          N.M.S) equals TEXT in some repetition
/// field    := N reps? comps?
/// reps     := '[' (N | '*' | N ('.' N)? '=' TEXT) ']'
///                                          one repetition, all, or those whose
///                                          component N (subcomponent N.M) equals TEXT
/// comps    := '.' N ('.' N)?               component, subcomponent
/// ```
///
/// Both selectors are one [`Sel`]: `[N]`, `[*]` or `[place=TEXT]`, the place counted one level
/// below what is chosen. TEXT is compared after escape decoding and has no `]`. A segment or a
/// field without `[..]` selects every occurrence or repetition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub(super) start: Start,
    pub(super) field: u32,
    pub(super) reps: Sel,
    pub(super) comp: u32,
    pub(super) sub: u32,
}

impl Path {
    /// Compiles `s`; the error says what is wrong and shows valid paths.
    pub fn compile(s: &str) -> Result<Path, String> {
        let src = s.trim();
        let mut p = PathParser { src, pos: 0 };
        p.path()
    }

    /// Whether this path starts from a node (`-5`, `.1`, `[8=P].1`) rather
    /// than from the message.
    pub fn is_relative(&self) -> bool {
        !matches!(self.start, Start::Segment { .. })
    }
}

impl std::str::FromStr for Path {
    type Err = String;
    fn from_str(s: &str) -> Result<Path, String> {
        Path::compile(s)
    }
}

pub(super) struct PathParser<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
}

impl PathParser<'_> {
    pub(super) fn err(&self, what: &str) -> String {
        let rest = self.src.get(self.pos..).unwrap_or("");
        let at = if rest.is_empty() {
            "at the end".to_string()
        } else {
            format!("at `{rest}`")
        };
        format!(
            "invalid HL7 path `{}`: {what} ({at}); valid paths look like `PID-5`, `PID-5[2].1`, `PID-5[*]`, `PID-5[8=P].1`, `PID-11.5`, `PID-5.1.2`, `OBX[2]-5`, `OBX[*]-3.2`, `IN1[2.1=KAIGO]-36`, or relative: `-5.1` (from a segment), `.1` or `[8=P].1` (from a field)",
            self.src
        )
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn number(&mut self, what: &str) -> Result<u32, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.src.get(start..self.pos).unwrap_or("");
        if digits.is_empty() {
            return Err(self.err(&format!("expected a {what}")));
        }
        match digits.parse::<u32>() {
            Ok(0) => {
                self.pos = start;
                Err(self.err(&format!("{what}s are counted from 1, not 0")))
            }
            Ok(n) if n <= 1_000_000 => Ok(n),
            _ => {
                self.pos = start;
                Err(self.err(&format!("{what} `{digits}` is too large")))
            }
        }
    }

    pub(super) fn path(&mut self) -> Result<Path, String> {
        if self.src.is_empty() {
            return Err(self.err("the path is empty"));
        }
        let mut path = Path {
            start: Start::FromField,
            field: 0,
            reps: Sel::All,
            comp: 0,
            sub: 0,
        };
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                path.start = Start::FromSegment;
                self.field_part(&mut path)?;
            }
            Some(b'[' | b'.') => {
                self.reps_and_components(&mut path)?;
            }
            _ => {
                let name = match self.src.as_bytes() {
                    [a, b, c, ..]
                        if a.is_ascii_alphanumeric()
                            && b.is_ascii_alphanumeric()
                            && c.is_ascii_alphanumeric() =>
                    {
                        [*a, *b, *c]
                    }
                    _ => {
                        return Err(self.err(
                            "a path starts with a 3-letter/digit segment name such as `PID`, or with `-`, `.` or `[` when relative",
                        ));
                    }
                };
                self.pos = 3;
                if self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.pos = 0;
                    return Err(self.err("segment names are exactly 3 letters or digits"));
                }
                let which = if self.eat(b'[') {
                    self.selector(SEGMENT_SELECTOR)?
                } else {
                    Sel::All
                };
                path.start = Start::Segment { name, which };
                if self.eat(b'-') {
                    self.field_part(&mut path)?;
                } else if self.peek() == Some(b'.') {
                    return Err(self.err(
                        "put `-` between the segment and the field number: `PID-5.1`, not `PID.5.1`",
                    ));
                }
            }
        }
        if self.pos != self.src.len() {
            return Err(self.err("unexpected text"));
        }
        Ok(path)
    }

    pub(super) fn field_part(&mut self, path: &mut Path) -> Result<(), String> {
        path.field = self.number("field number")?;
        self.reps_and_components(path)
    }

    pub(super) fn reps_and_components(&mut self, path: &mut Path) -> Result<(), String> {
        if self.eat(b'[') {
            path.reps = self.selector(REPETITION_SELECTOR)?;
        }
        if self.eat(b'.') {
            path.comp = self.number("component number")?;
            if self.eat(b'.') {
                path.sub = self.number("subcomponent number")?;
            }
        }
        Ok(())
    }

    /// The selector after `[`, up to and including `]`: `*`, `N`, or as many numbers as
    /// `kind.deeper` names, joined by `.`, then `=TEXT`.
    pub(super) fn selector(&mut self, kind: SelectorKind) -> Result<Sel, String> {
        if self.eat(b'*') {
            if !self.eat(b']') {
                return Err(self.err("expected `]` after `[*`"));
            }
            return Ok(Sel::All);
        }
        let n = self.number(kind.first)?;
        if self.eat(b']') {
            return Ok(Sel::Nth(n));
        }
        let mut place = [n, 0, 0];
        for (slot, what) in place.iter_mut().zip(kind.deeper).skip(1) {
            if !self.eat(b'.') {
                break;
            }
            *slot = self.number(what)?;
        }
        if !self.eat(b'=') {
            return Err(self.err(kind.expected));
        }
        let rest = self.src.get(self.pos..).unwrap_or("");
        let Some(close) = rest.find(']') else {
            return Err(self.err("missing `]` after the value to match"));
        };
        let value = rest.get(..close).unwrap_or("").to_string();
        self.pos += close + 1;
        Ok(Sel::Match { place, value })
    }
}

/// What a `[..]` selector chooses among, for its numbers' names and its error.
#[derive(Clone, Copy)]
pub(super) struct SelectorKind {
    first: &'static str,
    /// Names of the place's numbers, outermost first (the first is named by `first`).
    deeper: &'static [&'static str],
    expected: &'static str,
}

const SEGMENT_SELECTOR: SelectorKind = SelectorKind {
    first: "segment occurrence number (or field number before `=`)",
    deeper: &["field number", "component number", "subcomponent number"],
    expected: "expected `]` or `=`: a segment selector is `[2]`, `[*]`, `[2=KAIGO]` or `[2.1=KAIGO]`",
};

const REPETITION_SELECTOR: SelectorKind = SelectorKind {
    first: "repetition number (or component number before `=`)",
    deeper: &["component number", "subcomponent number"],
    expected: "expected `]` or `=`: a repetition selector is `[2]`, `[*]` or `[8=P]`",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::hl7v2::test_support::proptest_config;
    use proptest::prelude::*;

    #[test]
    fn bad_path_syntax_is_explained() {
        for bad in [
            "",
            "PID.5.1",
            "PID-0",
            "PID-",
            "PI",
            "PIDX-1",
            "PID-5[",
            "PID-5[x]",
            "PID-5[7=P",
            "PID-5]",
            "-",
            ".",
            "PID-5.1.2.3",
            "PID-99999999999",
            "OBX[0]",
            "PID-5[*",
            "患者",
            "IN1[2=KAIGO",
            "IN1[2.1.1.1=x]-3",
            "IN1[2x]",
            "IN1[=x]",
            "IN1[2.0=x]",
        ] {
            let err = Path::compile(bad).expect_err(bad);
            assert!(err.contains("valid paths look like"), "{bad}: {err}");
        }
        assert!(Path::compile("PID.5.1").is_err_and(|e| e.contains("`PID-5.1`, not `PID.5.1`")));
        assert!(Path::compile("PID-0").is_err_and(|e| e.contains("counted from 1")));
        for good in [
            "PID",
            "OBX[2]",
            "OBX[*]",
            "PID-5[7=P].1",
            "PID-5[8.1=x]",
            " PID-5 ",
            "Z01-1",
            "[7=]",
            "IN1[2=KAIGO]",
            "IN1[2.1=KAIGO]-36.1",
            "IN1[2.1.2=x]-36[2].1",
            "IN1[2=]-3",
        ] {
            assert!(Path::compile(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn segment_and_repetition_selectors_share_one_grammar() {
        let path = Path::compile("IN1[2.1=KAIGO]-36[8=P].1").expect("compiles");
        let kaigo = Sel::Match {
            place: [2, 1, 0],
            value: "KAIGO".into(),
        };
        assert!(matches!(&path.start, Start::Segment { which, .. } if *which == kaigo));
        assert_eq!(
            path.reps,
            Sel::Match {
                place: [8, 0, 0],
                value: "P".into()
            }
        );
        assert_eq!((path.field, path.comp, path.sub), (36, 1, 0));
        let nth = Path::compile("OBX[2]-5").expect("compiles");
        assert!(matches!(
            nth.start,
            Start::Segment {
                which: Sel::Nth(2),
                ..
            }
        ));
        // A repetition's place is at most component.subcomponent; a segment's goes one deeper.
        assert!(Path::compile("PID-5[8.1.1=x]").is_err());
        let e = Path::compile("IN1[2x]").expect_err("not a selector");
        assert!(
            e.contains("a segment selector is `[2]`, `[*]`, `[2=KAIGO]`"),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn path_compile_never_panics(s in any::<String>()) {
            let _ = Path::compile(&s);
        }
    }
}
