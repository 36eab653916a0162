//! Untrusted text from the server is made harmless before it reaches the terminal.
//!
//! A subject, body or name must not be able to move the cursor, change colours, set the
//! window title or ring the bell: every control character (C0, DEL, C1), which is how escape
//! sequences start, is shown as a visible symbol instead, and bidirectional overrides (which can
//! disguise text) are dropped. Bodies keep their line breaks; tabs become spaces.

/// Neutralises a single-line field (subject, name): line breaks are shown, not obeyed.
pub fn line(text: &str) -> String {
    clean(text, false)
}

/// Neutralises a multi-line body: line breaks are kept.
pub fn body(text: &str) -> String {
    clean(text, true)
}

fn clean(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\r' if keep_newlines => {}
            '\t' => out.push_str("    "),
            // C0 controls become their Unicode "control picture" (ESC shows as ␛).
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('�')),
            '\u{7f}' => out.push('␡'),
            // C1 controls (including the one-byte CSI, U+009B) have no picture.
            '\u{80}'..='\u{9f}' => out.push('�'),
            // Bidirectional embeddings, overrides and isolates.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(line("a\nb"), "a␊b");
        assert_eq!(line("abc\u{202e}fdp.exe"), "abcfdp.exe");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let text = "Grüße 漢字 🦀 — ok";
        assert_eq!(line(text), text);
    }
}
