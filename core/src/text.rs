//! Untrusted text made harmless wherever it is shown or accepted: one list of the characters
//! that hide or reorder text, and one cleaning of what other people wrote, for the terminal
//! client, the emails, the email headers and session labels, and the checks on display names
//! and subjects.
//!
//! [`shown_line`] and [`shown_body`] make a subject, body or name unable to move a terminal's
//! cursor, change colours, set the window title or ring the bell: every control character (C0,
//! DEL, C1), which is how escape sequences start, is shown as a visible symbol instead. Nor may
//! it disguise itself: characters that reorder text (bidirectional embeddings, overrides,
//! isolates and marks) or that take no room on screen (zero-width spaces and joiners, word
//! joiners, soft hyphens, byte-order marks, tags, Hangul fillers and the other
//! default-ignorable code points) are removed, so that `"pay\u{200b}pal"` shows as the `paypal`
//! it pretends to be and `"abc\u{202e}fdp.exe"` cannot pose as `abcexe.pdf`. Bodies keep their
//! line breaks; tabs become spaces.
//!
//! Two kinds of invisible character are kept where they do visible, harmless work:
//! - a variation selector right after a character it can choose the look of ([`selects`]:
//!   `❤️` as an emoji, a keycap `1️⃣`, a variant of a Chinese character); anywhere else (after a
//!   Latin letter, a run of them, at the start, after a space), where it draws nothing and can
//!   carry a hidden byte, it is removed;
//! - the zero-width joiner (U+200D) where it joins two visible characters into one grapheme
//!   cluster, as in emoji sequences (`👩‍💻`, a family) and Indic conjuncts. Anywhere else (at the
//!   start, between letters, doubled, before a combining mark) it is removed.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthChar;

/// Whether `c` reorders text or takes no room on screen.
///
/// This is Unicode's `Default_Ignorable_Code_Point` set, which includes every bidirectional
/// control, plus the interlinear annotation controls, minus the variation selectors
/// ([`is_variation_selector`]: they choose how the character before them is drawn, and are
/// kept only there). The zero-width joiner and non-joiner are in it: where they do visible
/// work (emoji sequences, Indic conjuncts, Persian words) is for each caller to decide.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'                      // soft hyphen
        | '\u{034f}'                    // combining grapheme joiner
        | '\u{061c}'                    // Arabic letter mark
        | '\u{115f}'..='\u{1160}'       // Hangul choseong and jungseong fillers
        | '\u{17b4}'..='\u{17b5}'       // Khmer inherent vowels
        | '\u{180e}'                    // Mongolian vowel separator
        | '\u{200b}'..='\u{200f}'       // zero-width space, (non-)joiner, LRM, RLM
        | '\u{202a}'..='\u{202e}'       // bidirectional embeddings and overrides
        | '\u{2060}'..='\u{206f}'       // word joiner, invisible operators, isolates, …
        | '\u{3164}'                    // Hangul filler
        | '\u{feff}'                    // byte-order mark, zero-width no-break space
        | '\u{ffa0}'                    // halfwidth Hangul filler
        | '\u{fff0}'..='\u{fffb}'       // reserved, interlinear annotation controls
        | '\u{1bca0}'..='\u{1bca3}'     // shorthand format controls
        | '\u{1d173}'..='\u{1d17a}'     // musical symbol format controls
        | '\u{e0000}'..='\u{e00ff}'     // tags (invisible ASCII), reserved
        | '\u{e01f0}'..='\u{e0fff}'     // reserved
    )
}

/// Whether `c` is a joiner that legitimate text needs between visible characters: the
/// zero-width joiner (emoji sequences, Indic conjuncts) and non-joiner (Persian, Indic).
pub fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200c}' | '\u{200d}')
}

/// Whether `c` is a variation selector: it draws nothing, and chooses how the character before
/// it is drawn (U+FE00–FE0F, the ideographic ones U+E0100–E01EF, the Mongolian free ones).
pub fn is_variation_selector(c: char) -> bool {
    matches!(
        c,
        '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}' | '\u{180b}'..='\u{180d}' | '\u{180f}'
    )
}

/// Whether variation selector `selector` can choose the look of `base`, roughly as Unicode's
/// variation sequences allow: an ideographic one after a CJK ideograph, a Mongolian one after a
/// Mongolian letter, the others after a visible character outside ASCII (emoji, symbols) or a
/// keycap's digit, `#` or `*`; never after a Latin letter, a space, a joiner or another
/// selector, where it would only hide a byte.
pub fn selects(base: char, selector: char) -> bool {
    match selector {
        '\u{e0100}'..='\u{e01ef}' => matches!(
            base,
            '\u{3400}'..='\u{4dbf}'
                | '\u{4e00}'..='\u{9fff}'
                | '\u{f900}'..='\u{faff}'
                | '\u{20000}'..='\u{3ffff}'
        ),
        '\u{180b}'..='\u{180d}' | '\u{180f}' => matches!(base, '\u{1800}'..='\u{18af}'),
        _ => {
            matches!(base, '0'..='9' | '#' | '*')
                || (!base.is_ascii()
                    && !base.is_whitespace()
                    && !base.is_control()
                    && !is_invisible(base)
                    && !is_variation_selector(base))
        }
    }
}

const ZWJ: char = '\u{200d}';

/// A single-line field (subject, name) as it may be shown: line breaks are shown, not obeyed.
pub fn shown_line(text: &str) -> String {
    clean(text, false)
}

/// A multi-line body as it may be shown: line breaks are kept.
pub fn shown_body(text: &str) -> String {
    clean(text, true)
}

fn clean(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\r' if keep_newlines => {}
            // Unicode's own line and paragraph separators are line breaks too.
            '\u{2028}' | '\u{2029}' if keep_newlines => out.push('\n'),
            '\u{2028}' | '\u{2029}' => out.push('␤'),
            '\t' => out.push_str("    "),
            // C0 controls become their Unicode "control picture" (ESC shows as ␛).
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('�')),
            '\u{7f}' => out.push('␡'),
            // C1 controls (including the one-byte CSI, U+009B) have no picture.
            '\u{80}'..='\u{9f}' => out.push('�'),
            // Whether a joiner stays depends on its neighbours once the rest is clean.
            ZWJ => out.push(ZWJ),
            c if is_invisible(c) => {}
            c if is_variation_selector(c) => {
                if out.chars().next_back().is_some_and(|base| selects(base, c)) {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    if out.contains(ZWJ) {
        out = keep_joining_zwjs(&out);
    }
    out
}

/// Keeps each zero-width joiner that joins the visible character after it into the same
/// grapheme cluster (an emoji ZWJ sequence, an Indic conjunct); removes the others.
fn keep_joining_zwjs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for cluster in text.graphemes(true) {
        let mut chars = cluster.chars().peekable();
        while let Some(c) = chars.next() {
            let joins = c == ZWJ
                && chars
                    .peek()
                    .is_some_and(|next| next.width().unwrap_or(0) > 0);
            if c != ZWJ || joins {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{shown_body as body, shown_line as line, *};
    use proptest::prelude::*;

    #[test]
    fn a_variation_selector_is_kept_only_after_what_it_selects() {
        for text in [
            "❤\u{fe0f}",
            "1\u{fe0f}\u{20e3}",
            "葛\u{e0100}",
            "🏳\u{fe0f}\u{200d}🌈",
            "ᠠ\u{180b}",
        ] {
            assert_eq!(line(text), text);
        }
        // Hidden bytes, one selector each, after innocent letters.
        assert_eq!(line("h\u{e0158}i\u{e0159}"), "hi");
        assert_eq!(line("葛\u{e0100}\u{e0101}"), "葛\u{e0100}");
        assert_eq!(line("\u{fe0f}start \u{fe0f}x\u{fe0f}"), "start x");
        assert_eq!(line("mongol\u{180b}"), "mongol");
    }

    #[test]
    fn escape_sequences_cannot_reach_the_terminal() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred\u{9b}1m\u{7f}";
        let shown = line(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains("␛]0;pwned␇"));
        assert!(shown.contains("red"));
    }

    #[test]
    fn bodies_keep_lines_and_subjects_do_not() {
        assert_eq!(body("a\r\nb\tc"), "a\nb    c");
        assert_eq!(body("a\u{2028}b\u{2029}c"), "a\nb\nc");
        assert_eq!(line("a\nb"), "a␊b");
        assert_eq!(line("a\u{2028}b"), "a␤b");
    }

    #[test]
    fn bidirectional_controls_are_removed() {
        assert_eq!(line("abc\u{202e}fdp.exe"), "abcfdp.exe");
        assert_eq!(line("\u{2067}evil\u{2069} \u{202a}x\u{202c}"), "evil x");
        assert_eq!(line("\u{200e}alice\u{200f}\u{61c}"), "alice");
    }

    #[test]
    fn invisible_characters_are_removed() {
        assert_eq!(line("pay\u{200b}pal"), "paypal");
        assert_eq!(line("pay\u{ad}pal\u{feff}"), "paypal");
        assert_eq!(line("\u{2060}ad\u{200c}min\u{180e}"), "admin");
        assert_eq!(line("\u{3164}\u{ffa0}"), "", "a name of fillers is empty");
        // Tag characters spell hidden ASCII ("hi") that some tools would read.
        assert_eq!(body("ok\u{e0068}\u{e0069}"), "ok");
    }

    #[test]
    fn a_joiner_is_kept_only_where_it_joins_a_sequence() {
        let technologist = "👩\u{200d}💻";
        let family = "👨\u{200d}👩\u{200d}👧";
        let rainbow_flag = "🏳\u{fe0f}\u{200d}🌈";
        let conjunct = "क्\u{200d}ष";
        for text in [technologist, family, rainbow_flag, conjunct] {
            assert_eq!(line(text), text);
        }
        assert_eq!(line("ad\u{200d}min"), "admin");
        assert_eq!(line("\u{200d}x\u{200d}"), "x");
        assert_eq!(line("👨\u{200d}\u{200d}👩"), "👨👩");
        assert_eq!(
            line("👨\u{200d}\u{301}"),
            "👨\u{301}",
            "not before a combining mark"
        );
        assert_eq!(
            line("👨\u{200d}\u{200b}👩"),
            "👨\u{200d}👩",
            "once the rest is gone"
        );
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let text = "Grüße 漢字 🦀 ❤\u{fe0f} مرحبا שלום — ok";
        assert_eq!(line(text), text);
    }

    /// Written out from the specification, independently of [`is_invisible`].
    fn must_not_be_shown(c: char) -> bool {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}');
        let invisible = matches!(
            c,
            '\u{200b}' | '\u{200c}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{180e}' | '\u{ad}'
        );
        let tag = matches!(c, '\u{e0000}'..='\u{e007f}');
        bidi || invisible || tag
    }

    /// Strings rich in the characters that matter here, among any others.
    fn hostile() -> impl Strategy<Value = String> {
        let special = prop::sample::select(
            "\u{1b}\u{7}\u{9b}\u{7f}\n\r\t\u{2028}\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\
             \u{200b}\u{200c}\u{200d}\u{2060}\u{2064}\u{feff}\u{180e}\u{ad}\u{e0041}\u{3164}\
             \u{fe0f}\u{fe00}\u{e0100}\u{180b}\u{301}\u{94d}क👨👩🏳a "
                .chars()
                .collect::<Vec<_>>(),
        );
        prop::collection::vec(prop_oneof![special, any::<char>()], 0..48)
            .prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn nothing_that_controls_or_hides_survives(text in hostile()) {
            for (shown, newlines) in [(line(&text), false), (body(&text), true)] {
                for c in shown.chars() {
                    prop_assert!(!must_not_be_shown(c), "{c:?} in {shown:?}");
                    prop_assert!(!c.is_control() || (newlines && c == '\n'), "{c:?} in {shown:?}");
                }
            }
        }

        #[test]
        fn every_joiner_left_joins_two_visible_characters(text in hostile()) {
            let shown: Vec<char> = line(&text).chars().collect();
            for (i, _) in shown.iter().enumerate().filter(|(_, c)| **c == ZWJ) {
                prop_assert!(i > 0 && shown[i - 1] != ZWJ, "{shown:?}");
                prop_assert!(shown.get(i + 1).is_some_and(|c| c.width().unwrap_or(0) > 0));
            }
        }

        #[test]
        fn no_run_of_selectors_survives(text in hostile()) {
            let shown: Vec<char> = body(&text).chars().collect();
            for pair in shown.windows(2) {
                prop_assert!(!(is_variation_selector(pair[0]) && is_variation_selector(pair[1])), "{shown:?}");
            }
            prop_assert!(!shown.first().is_some_and(|c| is_variation_selector(*c)));
        }

        #[test]
        fn cleaning_twice_changes_nothing(text in hostile()) {
            prop_assert_eq!(line(&line(&text)), line(&text));
            prop_assert_eq!(body(&body(&text)), body(&text));
        }

        #[test]
        fn visible_text_is_kept_as_it_is(text in "\\PC*") {
            prop_assume!(!text.chars().any(|c| {
                is_invisible(c) || is_variation_selector(c) || matches!(c, '\u{2028}' | '\u{2029}')
            }));
            prop_assert_eq!(line(&text), text.clone());
            prop_assert_eq!(body(&text), text);
        }
    }
}
