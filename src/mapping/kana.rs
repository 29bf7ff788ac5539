//! Kana and width normalisation for Japanese names and codes: half-width katakana ⇄ full-width
//! (composing ｶﾞ → ガ and ﾊﾟ → パ), hiragana ⇄ katakana, full-width ASCII → ASCII. Pure string
//! functions; characters outside these ranges pass through unchanged.

const HALF_START: u32 = 0xFF61;
/// Full-width equivalents of U+FF61..=U+FF9F, in order.
const FULL: &str = "。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン゛゜";

fn full_of(c: char) -> Option<char> {
    let i = (c as u32).checked_sub(HALF_START)?;
    FULL.chars().nth(i as usize)
}

fn voiced(base: char) -> Option<char> {
    match base {
        'ウ' => Some('ヴ'),
        'カ'..='ト' | 'ハ'..='ホ' => {
            // Voiceable kana sit on odd offsets from カ/ハ in Unicode; +1 is the voiced form.
            let c = base as u32;
            let ok = matches!(
                base,
                'カ' | 'キ'
                    | 'ク'
                    | 'ケ'
                    | 'コ'
                    | 'サ'
                    | 'シ'
                    | 'ス'
                    | 'セ'
                    | 'ソ'
                    | 'タ'
                    | 'チ'
                    | 'ツ'
                    | 'テ'
                    | 'ト'
                    | 'ハ'
                    | 'ヒ'
                    | 'フ'
                    | 'ヘ'
                    | 'ホ'
            );
            if ok { char::from_u32(c + 1) } else { None }
        }
        _ => None,
    }
}

fn semi_voiced(base: char) -> Option<char> {
    match base {
        'ハ' | 'ヒ' | 'フ' | 'ヘ' | 'ホ' => char::from_u32(base as u32 + 2),
        _ => None,
    }
}

/// Half-width katakana (and punctuation) to full width, composing sound marks.
pub fn to_fullwidth_kana(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let Some(f) = full_of(c) else {
            out.push(c);
            continue;
        };
        let composed = match chars.peek() {
            Some('\u{FF9E}') => voiced(f),
            Some('\u{FF9F}') => semi_voiced(f),
            _ => None,
        };
        match composed {
            Some(v) => {
                chars.next();
                out.push(v);
            }
            None => out.push(f),
        }
    }
    out
}

/// Full-width katakana to half width (ガ → ｶﾞ); other characters unchanged.
pub fn to_halfwidth_kana(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if let Some(h) = FULL
            .chars()
            .position(|f| f == c)
            .and_then(|i| char::from_u32(HALF_START + i as u32))
        {
            out.push(h);
            continue;
        }
        let plain = FULL.chars().enumerate().find_map(|(i, f)| {
            if voiced(f) == Some(c) {
                Some((i, '\u{FF9E}'))
            } else if semi_voiced(f) == Some(c) {
                Some((i, '\u{FF9F}'))
            } else {
                None
            }
        });
        match plain.and_then(|(i, m)| char::from_u32(HALF_START + i as u32).map(|h| (h, m))) {
            Some((h, m)) => {
                out.push(h);
                out.push(m);
            }
            None => out.push(c),
        }
    }
    out
}

/// Hiragana to katakana.
pub fn to_katakana(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Katakana to hiragana.
pub fn to_hiragana(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Full-width ASCII (Ａ, １, －) to ASCII, and half-width kana to full width: the usual
/// normalisation before comparing or validating codes typed by hand.
pub fn normalize_width(s: &str) -> String {
    let ascii: String = s
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    to_fullwidth_kana(&ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halfwidth_kana_become_fullwidth_with_sound_marks_composed() {
        assert_eq!(to_fullwidth_kana("ｶﾝｼﾞｬ ﾀﾛｳ"), "カンジャ タロウ");
        assert_eq!(to_fullwidth_kana("ｶﾞｷﾞﾊﾟﾋﾟｳﾞ"), "ガギパピヴ");
        assert_eq!(to_fullwidth_kana("ｱﾞ"), "ア゛");
        assert_eq!(to_fullwidth_kana("ｰ｡"), "ー。");
    }

    #[test]
    fn fullwidth_kana_become_halfwidth_with_separate_marks() {
        assert_eq!(to_halfwidth_kana("ガッコウ"), "ｶﾞｯｺｳ");
        assert_eq!(to_halfwidth_kana("パン"), "ﾊﾟﾝ");
        assert_eq!(
            to_fullwidth_kana(&to_halfwidth_kana("ヴァイオリン")),
            "ヴァイオリン"
        );
    }

    #[test]
    fn hiragana_and_katakana_convert_both_ways() {
        assert_eq!(to_katakana("かんじゃ たろう"), "カンジャ タロウ");
        assert_eq!(to_hiragana("カンジャ"), "かんじゃ");
    }

    #[test]
    fn width_normalisation_fixes_hand_typed_codes() {
        assert_eq!(normalize_width("４３５０７３"), "435073");
        assert_eq!(normalize_width("Ｈ１２３"), "H123");
        assert_eq!(normalize_width("漢字"), "漢字");
    }
}
