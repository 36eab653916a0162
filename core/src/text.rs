//! Characters that hide or reorder text: one list for every place untrusted text is shown
//! (the terminal client, email headers, session labels) or accepted (display names).

/// Whether `c` reorders text or takes no room on screen.
///
/// This is Unicode's `Default_Ignorable_Code_Point` set, which includes every bidirectional
/// control, plus the interlinear annotation controls, minus the variation selectors (they only
/// choose how the character before them is drawn, `❤️` as an emoji, and hide nothing). The
/// zero-width joiner and non-joiner are in it: where they do visible work (emoji sequences,
/// Indic conjuncts, Persian words) is for each caller to decide.
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
