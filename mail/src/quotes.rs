//! The new text of an email reply: what the person wrote, without the quoted original, the
//! attribution line above it, forwarded or "original message" blocks, the signature and the
//! "Sent from my phone" footers that mail clients add.
//!
//! Line rules over the plain text (HTML is converted first, its blockquotes as `> ` lines):
//! 1. **Cut**: everything from the first line that starts an unquoted original goes — an
//!    `-----Original Message-----` or forwarded-message separator, an Outlook header block
//!    (`From:` followed by `Sent:`/`To:`/`Subject:`, in several languages, with the rule line
//!    above it), or a dated attribution (`On ... wrote:`) not followed by `>` lines.
//! 2. **Quotes**: each block of `>` lines goes with the attribution right above it (one to
//!    three lines, as Gmail wraps long ones); answers written between blocks stay, in order,
//!    one blank line apart.
//! 3. **Signature and footers**: from a `-- ` line to the end, and trailing "Sent from my
//!    iPhone"-style lines.
//!
//! Against false positives: an attribution must end like one (`wrote:`, `a écrit :`, ...), and
//! a text made only of `>` lines, with no attribution anywhere, is someone's text, kept.

/// The new text of a reply: the quoted original, attribution line, forwarded/original-message
/// blocks and the signature removed; trailing/leading blank lines trimmed; inline-posted
/// answers kept (quoted lines between them removed, the answers kept in order).
pub fn new_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let cut = find_cut(&lines);
    let body = &lines[..cut.unwrap_or(lines.len())];
    let kept = drop_quotes(body);
    let out = join(&drop_signature_and_footers(kept));
    if out.is_empty() && cut.is_none() && !has_attribution(&lines) {
        // Only `>` lines and nothing saying they quote anyone: the person's own text.
        return join(&drop_signature_and_footers(body.to_vec()));
    }
    out
}

/// How sure a line is to introduce a quoted original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attribution {
    /// `On <date>, X wrote:` and its translations, `* X <x> [date]:`: the original follows,
    /// quoted or not.
    Dated,
    /// `X wrote:`: an attribution only when `>` lines follow.
    Bare,
}

/// The index of the first line of an unquoted original, if there is one.
fn find_cut(lines: &[&str]) -> Option<usize> {
    for i in 0..lines.len() {
        let line = lines[i];
        if is_quoted(line) {
            continue;
        }
        if is_separator(line) {
            return Some(i);
        }
        if starts_header_block(lines, i) {
            return Some(rule_above(lines, i));
        }
        if let Some((n, Attribution::Dated)) = attribution_at(lines, i) {
            let next = next_non_blank(lines, i + n);
            if next.is_none_or(|k| !is_quoted(lines[k])) {
                return Some(i);
            }
        }
    }
    None
}

/// `body` without its quote blocks and their attributions; a blank line where a block was
/// between two answers.
fn drop_quotes<'a>(body: &[&'a str]) -> Vec<&'a str> {
    // Each kept line with its index in `body` (`None` for a blank line standing for a block).
    let mut kept: Vec<(Option<usize>, &str)> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if !is_quoted(body[i]) {
            kept.push((Some(i), body[i]));
            i += 1;
            continue;
        }
        // The block: quoted lines, and blank lines between them.
        let mut end = i;
        let mut j = i;
        while j < body.len() {
            if is_quoted(body[j]) {
                end = j + 1;
            } else if !body[j].trim().is_empty() {
                break;
            }
            j += 1;
        }
        // `>` lines right above an attribution are not a quote: quotes come after attributions.
        if next_non_blank(body, end).is_some_and(|k| attribution_at(body, k).is_some()) {
            kept.extend((i..end).map(|k| (Some(k), body[k])));
            i = end;
            continue;
        }
        pop_blank(&mut kept);
        for n in (1..=3.min(kept.len())).rev() {
            let tail = &kept[kept.len() - n..];
            let Some(start) = tail[0].0 else { break };
            let contiguous = tail
                .iter()
                .enumerate()
                .all(|(k, (index, _))| *index == Some(start + k));
            if contiguous && attribution_at(body, start).is_some_and(|(len, _)| len == n) {
                kept.truncate(kept.len() - n);
                break;
            }
        }
        pop_blank(&mut kept);
        if !kept.is_empty() {
            kept.push((None, ""));
        }
        i = end;
        while i < body.len() && body[i].trim().is_empty() {
            i += 1;
        }
    }
    kept.into_iter().map(|(_, line)| line).collect()
}

fn pop_blank(kept: &mut Vec<(Option<usize>, &str)>) {
    while kept.last().is_some_and(|(_, l)| l.trim().is_empty()) {
        kept.pop();
    }
}

/// `lines` without the signature (from a `-- ` line on) and trailing mobile footers.
fn drop_signature_and_footers(mut lines: Vec<&str>) -> Vec<&str> {
    if let Some(sig) = lines.iter().position(|l| l.trim_end() == "--") {
        let after = lines[sig + 1..]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .count();
        // A signature is short; a long text after `--` is the person's text after a divider.
        if after <= MAX_SIGNATURE_LINES {
            lines.truncate(sig);
        }
    }
    loop {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        match lines.last() {
            Some(last) if is_footer(last) => {
                lines.pop();
            }
            _ => return lines,
        }
    }
}

/// The most non-blank lines a signature has.
const MAX_SIGNATURE_LINES: usize = 12;

/// Lines joined, each without trailing whitespace, without leading or trailing blank lines.
fn join(lines: &[&str]) -> String {
    let start = lines.iter().position(|l| !l.trim().is_empty());
    let end = lines.iter().rposition(|l| !l.trim().is_empty());
    match (start, end) {
        (Some(start), Some(end)) => lines[start..=end]
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn next_non_blank(lines: &[&str], from: usize) -> Option<usize> {
    (from..lines.len()).find(|&k| !lines[k].trim().is_empty())
}

/// Whether any line, quoted or not, attributes a quote (iOS Mail quotes its own attribution).
fn has_attribution(lines: &[&str]) -> bool {
    let unquoted: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_start().trim_start_matches(['>', ' ']))
        .collect();
    (0..unquoted.len()).any(|i| {
        attribution_at(&unquoted, i).is_some()
            || is_separator(unquoted[i])
            || starts_header_block(&unquoted, i)
    })
}

/// The attribution starting at line `i`: how many lines it spans (Gmail wraps long ones) and
/// how sure it is.
fn attribution_at(lines: &[&str], i: usize) -> Option<(usize, Attribution)> {
    let mut joined = String::new();
    for n in 1..=3 {
        let line = *lines.get(i + n - 1)?;
        if line.trim().is_empty() || is_quoted(line) {
            return None;
        }
        if n > 1 {
            joined.push(' ');
        }
        joined.push_str(line.trim());
        if joined.chars().count() > 300 {
            return None;
        }
        match attribution(&joined) {
            // A bare "X wrote:" over several lines must be wrapped for a long address; else it
            // may end a sentence of the person's own.
            Some(Attribution::Bare) if n > 1 && !joined.contains('@') => return None,
            Some(kind) => return Some((n, kind)),
            None => {}
        }
    }
    None
}

/// Whether one (joined) line reads as an attribution.
fn attribution(line: &str) -> Option<Attribution> {
    let lower = line
        .replace(['\u{a0}', '\u{202f}', '\u{2009}'], " ")
        .trim()
        .to_lowercase()
        .replace('：', ":")
        .replace(" :", ":");
    let has_digit = lower.chars().any(|c| c.is_ascii_digit());
    // mutt's `* Alice Liddell <alice@example.com> [2026-12-01 10:00]:`.
    if lower.starts_with("* ") && lower.ends_with("]:") && lower.contains('[') {
        return (has_digit || lower.contains('@')).then_some(Attribution::Dated);
    }
    if !lower.ends_with(':') {
        return None;
    }
    const ENDINGS: &[&str] = &[
        "wrote:",
        "writes:",
        "a écrit:",
        "escribió:",
        "ha scritto:",
        "scrisse:",
        "escreveu:",
        "skrev:",
        "kirjoitti:",
        "napisał:",
        "napisał(a):",
        "пишет:",
        "написал:",
        "написала:",
        "написал(а):",
        "写道:",
        "작성:",
    ];
    // German and Dutch put the name after the verb: "Am ... schrieb Alice <a@b>:".
    const VERBS: &[&str] = &[" schrieb ", " schreef "];
    let reads_as_one = ENDINGS.iter().any(|e| lower.ends_with(e))
        || VERBS.iter().any(|v| lower.contains(v))
        || lower.ends_with(" schrieb:")
        || lower.ends_with(" schreef:");
    if !reads_as_one {
        // Gmail in languages with no verb at the end (Japanese, Russian): "<date> X <x@y>:".
        let dated_address = lower.ends_with(">:") && lower.contains('@') && has_digit;
        return (dated_address && lower.chars().count() <= 200).then_some(Attribution::Bare);
    }
    const DATED_STARTS: &[&str] = &["on ", "le ", "am ", "el ", "il ", "op ", "em ", "den "];
    if DATED_STARTS.iter().any(|s| lower.starts_with(s)) && has_digit {
        Some(Attribution::Dated)
    } else if lower.chars().count() <= 200 {
        Some(Attribution::Bare)
    } else {
        None
    }
}

/// `-----Original Message-----`, `---------- Forwarded message ---------`, `Begin forwarded
/// message:` and their translations.
fn is_separator(line: &str) -> bool {
    let trimmed = line.trim();
    let lower = trimmed.to_lowercase().replace(" :", ":");
    const RULED: &[&str] = &[
        "original message",
        "forwarded message",
        "ursprüngliche nachricht",
        "originalnachricht",
        "weitergeleitete nachricht",
        "message d'origine",
        "message d’origine",
        "message original",
        "message transféré",
        "mensaje original",
        "mensaje reenviado",
        "messaggio originale",
        "messaggio inoltrato",
        "oorspronkelijk bericht",
        "origineel bericht",
        "doorgestuurd bericht",
        "mensagem original",
        "mensagem encaminhada",
        "ursprungligt meddelande",
    ];
    const INTRODUCED: &[&str] = &[
        "begin forwarded message:",
        "début du message réexpédié:",
        "début du message transféré:",
        "anfang der weitergeleiteten nachricht:",
        "inicio del mensaje reenviado:",
        "inizio messaggio inoltrato:",
        "begin doorgestuurd bericht:",
        "início da mensagem reencaminhada:",
        "início da mensagem encaminhada:",
    ];
    if trimmed.starts_with("--") || trimmed.starts_with("__") {
        let inner = lower.trim_matches(|c: char| matches!(c, '-' | '_' | ' ' | '*'));
        return RULED.contains(&inner);
    }
    INTRODUCED.contains(&lower.as_str())
}

/// Whether an Outlook-style header block (`From:` then at least two of `Sent:`, `To:`,
/// `Subject:`, ...) starts at line `i`.
fn starts_header_block(lines: &[&str], i: usize) -> bool {
    const FROM: &[&str] = &["from", "de", "von", "da", "van", "från", "fra", "od"];
    const OTHERS: &[&str] = &[
        "sent",
        "date",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "importance",
        "envoyé",
        "à",
        "objet",
        "répondre à",
        "gesendet",
        "datum",
        "an",
        "betreff",
        "antwort an",
        "enviado",
        "enviado el",
        "fecha",
        "para",
        "asunto",
        "inviato",
        "data",
        "a",
        "oggetto",
        "verzonden",
        "aan",
        "onderwerp",
        "enviada em",
        "enviado em",
        "assunto",
        "skickat",
        "till",
        "ämne",
    ];
    if !header_key(lines[i]).is_some_and(|k| FROM.contains(&k.as_str())) {
        return false;
    }
    let mut headers = 0;
    for line in lines[i + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .take(6)
    {
        if header_key(line).is_some_and(|k| OTHERS.contains(&k.as_str())) {
            headers += 1;
        } else {
            break;
        }
    }
    headers >= 2
}

/// The lower-case name of a `Name: value` line (Gmail writes `*From:*`), if it is one.
fn header_key(line: &str) -> Option<String> {
    let line = line.trim_start().trim_start_matches('*');
    let colon = line.find(':')?;
    let key = line[..colon].trim().trim_end_matches('*').trim();
    let fits = !key.is_empty()
        && key.chars().count() <= 20
        && key
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == '-');
    fits.then(|| key.to_lowercase())
}

/// The line to cut from for a header block at `i`: the rule line right above it if there is
/// one (Outlook's `________________________________`, an HTML `<hr>`).
fn rule_above(lines: &[&str], i: usize) -> usize {
    match (0..i).rev().find(|&k| !lines[k].trim().is_empty()) {
        Some(k) => {
            let t = lines[k].trim();
            let is_rule =
                t.chars().count() >= 3 && t.chars().all(|c| matches!(c, '-' | '_' | '=' | '*'));
            if is_rule { k } else { i }
        }
        None => i,
    }
}

/// "Sent from my iPhone", "Get Outlook for iOS" and their kin, in several languages.
fn is_footer(line: &str) -> bool {
    const STARTS: &[&str] = &[
        "sent from ",
        "sent with ",
        "sent via ",
        "sent using ",
        "get outlook for ",
        "envoyé de mon ",
        "envoyé depuis ",
        "envoyé à partir de ",
        "obtenir outlook pour ",
        "télécharger outlook pour ",
        "von meinem ",
        "gesendet von ",
        "gesendet mit ",
        "outlook für ",
        "enviado desde ",
        "enviado de mi ",
        "enviado do meu ",
        "enviado a partir do ",
        "obtener outlook para ",
        "inviato da ",
        "inviato dal mio ",
        "scarica outlook per ",
        "verzonden vanaf ",
        "verstuurd vanaf ",
        "verzonden met ",
        "outlook voor ",
        "skickat från ",
    ];
    let lower = line.trim().to_lowercase();
    lower.chars().count() <= 100
        && lower.split_whitespace().count() <= 14
        && STARTS.iter().any(|s| lower.starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::new_text;

    #[test]
    fn a_one_line_answer_stays_intact() {
        assert_eq!(new_text("Noon works for me.\n"), "Noon works for me.");
    }

    #[test]
    fn a_top_posted_answer_loses_the_attribution_and_the_quote() {
        let text = "Yes, noon.\n\nOn Tue, Dec 1, 2026 at 10:00 AM Alice <a@example.com> wrote:\n\n\
                    > Shall we meet at noon?\n";
        assert_eq!(new_text(text), "Yes, noon.");
    }

    #[test]
    fn an_attribution_wrapped_over_two_lines_is_removed_whole() {
        let text = "Yes.\n\nOn Tue, Dec 1, 2026 at 10:00 AM Alice Liddell via Convos <\n\
                    notifications@convos.test> wrote:\n\n> Shall we meet at noon?\n";
        assert_eq!(new_text(text), "Yes.");
    }

    #[test]
    fn inline_answers_stay_in_order_one_blank_line_apart() {
        let text = "On 01/12/2026 10:00, Alice wrote:\n> Noon?\nYes.\n> Where?\n\n\
                    The usual place.\n\n> Bye\n";
        assert_eq!(new_text(text), "Yes.\n\nThe usual place.");
    }

    #[test]
    fn a_line_starting_with_on_that_is_no_attribution_is_kept() {
        let text = "On Monday I will bring the slides.\nOn Tuesday, the cake.\n";
        assert_eq!(new_text(text), text.trim_end());
    }

    #[test]
    fn the_text_above_an_attribution_is_kept_even_if_it_starts_with_a_quote_sign() {
        let text = "> 1pm is too late for me\n\nOn Tue, 1 Dec 2026, Alice wrote:\n> Noon?\n";
        assert_eq!(new_text(text), "> 1pm is too late for me");
    }

    #[test]
    fn a_lone_quoted_looking_line_with_no_attribution_is_the_persons_text() {
        assert_eq!(new_text("> 3 people confirmed\n"), "> 3 people confirmed");
    }

    #[test]
    fn a_reply_that_only_quotes_is_empty() {
        let text = "Sent from my iPhone\n\n> On Dec 1, 2026, at 10:00, Alice <a@x.test> wrote:\n\
                    > \n> Noon?\n";
        assert_eq!(new_text(text), "");
    }

    #[test]
    fn the_signature_after_the_dash_dash_space_line_goes() {
        let text = "Sounds good.\n\n-- \nBob Example\nLunch Department\n";
        assert_eq!(new_text(text), "Sounds good.");
    }

    #[test]
    fn a_dash_dash_divider_followed_by_a_long_text_is_not_a_signature() {
        let mut text = String::from("Part one.\n--\n");
        for n in 0..20 {
            text.push_str(&format!("line {n}\n"));
        }
        assert_eq!(new_text(&text), text.trim_end());
    }

    #[test]
    fn mobile_footers_go_in_several_languages() {
        for footer in [
            "Sent from my iPhone",
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Envoyé de mon iPhone",
            "Von meinem iPhone gesendet",
            "Enviado desde mi iPhone",
            "Inviato da iPhone",
            "Verzonden vanaf mijn iPhone",
            "Enviado do meu iPhone",
        ] {
            assert_eq!(new_text(&format!("Oui.\n\n{footer}\n")), "Oui.", "{footer}");
        }
    }

    #[test]
    fn an_original_message_separator_cuts_everything_below() {
        let text = "Yes.\n\n-----Original Message-----\nFrom: Alice\nSent: Tuesday\n\nNoon?\n";
        assert_eq!(new_text(text), "Yes.");
    }

    #[test]
    fn an_outlook_header_block_and_its_rule_line_cut_everything_below() {
        let text = "Ja.\n\n________________________________\nVon: Alice <a@x.test>\n\
                    Gesendet: Dienstag, 1. Dezember 2026 10:00\nAn: Bob\nBetreff: Mittag\n\nNoon?\n";
        assert_eq!(new_text(text), "Ja.");
    }

    #[test]
    fn a_from_line_alone_is_the_persons_text() {
        let text = "From: the kitchen, two sandwiches.\nTo me that is lunch.\n";
        assert_eq!(new_text(text), text.trim_end());
    }

    #[test]
    fn a_dated_attribution_cuts_an_unquoted_original() {
        let text = "Oui.\n\nLe mar. 1 déc. 2026 à 10:00, Alice <a@x.test> a écrit :\n\nMidi ?\n";
        assert_eq!(new_text(text), "Oui.");
    }

    #[test]
    fn a_bare_attribution_goes_only_with_its_quote() {
        assert_eq!(
            new_text("Alice <a@x.test> wrote:\n> Noon?\n\nYes.\n"),
            "Yes."
        );
        assert_eq!(
            new_text("This is what Bob wrote:\nnothing at all.\n"),
            "This is what Bob wrote:\nnothing at all."
        );
    }

    #[test]
    fn attributions_without_a_verb_end_with_the_address() {
        let ja = "はい。\n\n2026年12月1日(火) 10:00 Alice <\na@x.test>:\n\n> 正午？\n";
        assert_eq!(new_text(ja), "はい。");
        let zh = "好。\n\nAlice <a@x.test> 于2026年12月1日周二 10:00写道：\n> 中午？\n";
        assert_eq!(new_text(zh), "好。");
    }

    #[test]
    fn mutt_star_attributions_go() {
        let text = "* Alice Liddell <a@x.test> [2026-12-01 10:00]:\n> Noon?\n\nYes.\n";
        assert_eq!(new_text(text), "Yes.");
    }

    #[test]
    fn german_and_dutch_attributions_with_the_name_after_the_verb_go() {
        let de = "Ja.\n\nAm Di., 1. Dez. 2026 um 10:00 Uhr schrieb Alice <a@x.test>:\n> Mittag?\n";
        assert_eq!(new_text(de), "Ja.");
        let nl = "Ja.\n\nOp di 1 dec 2026 om 10:00 schreef Alice <a@x.test>:\n> Middag?\n";
        assert_eq!(new_text(nl), "Ja.");
    }
}
