//! Convos' own words echoed back in a reply by email, taken out before the reply is posted.
//!
//! The quote stripper (`convos_mail::quotes`) knows how mail clients mark a quoted original:
//! `>` lines, attributions, and Outlook's header block in the languages it lists. A client it
//! does not know (Outlook in Polish or Russian, which quote without `>`) left the whole
//! notification in the text posted to the other person: the replier's own address (the block's
//! `To:` line) and their signed email links, which the other person could then use to pause
//! their email. Convos wrote the notification, so it can recognise it whatever the client: the
//! reply is cut at the first line of it, or higher, at the first line above it naming Convos'
//! sending address or `[Convos]` (a client's header block about the notification); a signed
//! link of Convos' starts the cut as well, and any reply or bounce address left in the rest is
//! removed, as is the replier's own address.

use crate::email::EmailSettings;

/// Lines of every notification email, in its plain-text and HTML parts (see
/// `email::render`): the first of them in a reply starts the echo.
pub const NOTIFICATION_LINES: [&str; 7] = [
    "sent you a message on Convos.",
    "new messages on Convos from",
    "Reply to this email to answer",
    "Read and reply in Convos:",
    "You got this email because",
    "Mute this thread",
    "Pause or stop email",
];

/// Paths of Convos' signed links: acting on the replier's mail or address.
const SIGNED_PATHS: [&str; 3] = ["/api/v1/email-links/", "/unsubscribe/", "/verify/"];

/// What stands in for a removed address.
const REMOVED_ADDRESS: &str = "[address removed]";

/// `text` (what the quote stripper kept of a reply written from `replier`'s address) without
/// Convos' own words, and without the replier's address.
pub fn without_echoes(text: &str, replier: &str, settings: &EmailSettings) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|line| is_ours(line, settings))
        .map_or(lines.len(), |first| echo_start(&lines, first, settings));
    let kept: Vec<String> = lines[..end]
        .iter()
        .map(|line| scrubbed(line, replier, settings))
        .collect();
    kept.join("\n").trim_end().to_owned()
}

/// A line only a notification holds: one of its fixed lines, or one of its signed links.
fn is_ours(line: &str, settings: &EmailSettings) -> bool {
    NOTIFICATION_LINES.iter().any(|fixed| line.contains(fixed))
        || signed_link_at(line, settings).is_some()
}

/// Where the echo that reaches line `first` starts: the first line above it that is a header
/// field naming Convos' sending address in angle brackets or starting its value with the
/// subject prefix (a client's header block about the notification: `Od: … via Convos
/// <notifications@…>`, `Subject: RE: [Convos] …`), with a rule line right above that line; else
/// `first` itself. The header line is looked for anywhere above, not only right
/// above `first`: a client that wraps the notification's long first line (a long display name)
/// puts the first line recognised further down, under the wrapped start.
fn echo_start(lines: &[&str], first: usize, settings: &EmailSettings) -> usize {
    let from = format!("<{}>", settings.from.email.to_string().to_ascii_lowercase());
    // A header field (`Od: …`, `Subject: …`, `Envoyé : …`) naming us as a header does: the
    // person's own words may mention `[Convos]` or the address too, even after a `PS:`, and
    // were cut with everything below them (a probe, then a review).
    let names_us = |line: &str| {
        let Some(value) = header_value(line) else {
            return false;
        };
        let value = value.to_ascii_lowercase();
        value.contains(&from) || without_reply_prefixes(&value).starts_with("[convos]")
    };
    let Some(header) = lines[..first].iter().position(|line| names_us(line)) else {
        return first;
    };
    if header > 0 && is_rule(lines[header - 1]) {
        header - 1
    } else {
        header
    }
}

/// The value of a line shaped as a mail header field: a name of letters and hyphens (any
/// script, up to 30) and a colon, with at most a space before it (French puts one there).
fn header_value(line: &str) -> Option<&str> {
    let (name, value) = line.trim_start().split_once(':')?;
    let name = name.strip_suffix(' ').unwrap_or(name);
    let shaped = (1..=30).contains(&name.chars().count())
        && name.chars().all(|c| c.is_alphabetic() || c == '-');
    shaped.then_some(value)
}

/// A subject without the prefixes mail clients put before one they answer or forward (`RE:`,
/// `AW:`, `Odp:`, `Fwd:`, in any language: a short word and a colon).
fn without_reply_prefixes(mut subject: &str) -> &str {
    loop {
        subject = subject.trim_start();
        match subject.split_once(':') {
            Some((prefix, rest))
                if (1..=4).contains(&prefix.chars().count())
                    && prefix.chars().all(char::is_alphabetic) =>
            {
                subject = rest;
            }
            _ => return subject,
        }
    }
}

/// A line drawn to set off a quoted original: underscores, dashes, or Outlook's
/// `-----Original Message-----` in any language.
fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 5 && (line.starts_with("_____") || line.starts_with("-----"))
}

/// `line` with Convos' reply and bounce addresses, and the replier's own address, replaced
/// (its signed links end the text before they are reached: only a notification holds them).
/// The replier's address goes even where they typed it: the other person never learns it from
/// Convos (`docs/security.md`), and a client's quoting can put it anywhere. One pass over the
/// line: replaced one at a time from its start again, a 320 KiB line of addresses took seconds.
fn scrubbed(line: &str, replier: &str, settings: &EmailSettings) -> String {
    // Lower-casing ASCII keeps every byte where it was: ranges found in `lower` cut `line`.
    let lower = line.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    if !replier.is_empty() {
        let replier = replier.to_ascii_lowercase();
        cuts.extend(
            lower
                .match_indices(&replier)
                .map(|(at, m)| (at, at + m.len())),
        );
    }
    if let Some(domain) = settings.reply_domain.as_deref() {
        cuts.extend(reply_addresses(&lower, &domain.to_ascii_lowercase()));
    }
    if cuts.is_empty() {
        return line.to_owned();
    }
    cuts.sort_unstable();
    let mut out = String::with_capacity(line.len());
    let mut kept_from = 0;
    for (start, end) in cuts {
        if start < kept_from {
            // Inside a range already removed: it reaches this one's end too.
            kept_from = kept_from.max(end);
            continue;
        }
        out.push_str(&line[kept_from..start]);
        out.push_str(REMOVED_ADDRESS);
        kept_from = end;
    }
    out.push_str(&line[kept_from..]);
    out
}

/// The byte range of the first signed link of Convos' in `line`.
fn signed_link_at(line: &str, settings: &EmailSettings) -> Option<(usize, usize)> {
    let base = settings.public_url.trim_end_matches('/');
    SIGNED_PATHS
        .iter()
        .filter_map(|path| {
            let prefix = format!("{base}{path}");
            let start = line.find(&prefix)?;
            Some((start, start + url_length(&line[start..])))
        })
        .min()
}

/// The length of the URL `text` starts with: up to whitespace or a character that ends a URL
/// in running text (`<`, `>`, `"`, `'`, `)`).
fn url_length(text: &str) -> usize {
    text.find(|c: char| c.is_whitespace() || "<>\"')".contains(c))
        .unwrap_or(text.len())
}

/// The byte ranges of every `reply+…@domain` and `bounce+…@domain` address in `lower` (a
/// lower-cased line): a local part runs from its prefix to the `@`, within one word. Each part of
/// the line is read once, whatever its words: a word without our domain after its `@` is passed
/// over whole.
fn reply_addresses(lower: &str, domain: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for prefix in ["reply+", "bounce+"] {
        let mut read_to = 0;
        for (start, _) in lower.match_indices(prefix) {
            if start < read_to {
                continue;
            }
            let word = &lower[start..];
            let word_end = start + url_length(word);
            read_to = word_end;
            let Some(at) = lower[start..word_end].find('@').map(|at| start + at) else {
                continue;
            };
            if lower[at + 1..].starts_with(domain) {
                found.push((start, at + 1 + domain.len()));
                read_to = at + 1 + domain.len();
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email;
    use chrono::Utc;
    use convos_core::email_links::Target;
    use convos_core::{MessageId, UserId};

    fn settings() -> EmailSettings {
        EmailSettings {
            from: "Convos <notifications@convos.test>".parse().unwrap(),
            domain: "convos.test".into(),
            public_url: "https://convos.test".into(),
            secret_key: "a secret of some length for the tests".into(),
            reply_domain: Some("reply.convos.test".into()),
        }
    }

    /// What a notification says, as its plain-text part: the fixed lines and a signed link.
    fn notification(settings: &EmailSettings) -> String {
        let link = email::link_url(
            settings,
            UserId::generate(),
            Target::Message(MessageId::generate()),
            Utc::now(),
        );
        format!(
            "mallory (Mal) sent you a message on Convos.\n\nSubject: hey\n\n\
             --- mallory (Mal) wrote at 2026-12-06 02:45 UTC:\n\n> hey you\n\n\
             Reply to this email to answer mallory (Mal): your reply is posted in the thread.\n\n\
             -- \nYou got this email because mallory (Mal) sent you a message on Convos.\n\
             Mute this thread<{link}>\nMark as read: {link}\n"
        )
    }

    #[test]
    fn an_outlook_header_block_in_any_language_and_the_notification_below_it_are_cut() {
        let settings = settings();
        for (from, sent, to, subject) in [
            ("Od", "Wysłano", "Do", "Temat"),
            ("От", "Отправлено", "Кому", "Тема"),
            ("Lähettäjä", "Lähetetty", "Vastaanottaja", "Aihe"),
        ] {
            let reply = format!(
                "Stop writing to me.\n\n________________________________\n\
                 {from}: \"mallory (Mal) via Convos\" <notifications@convos.test>\n\
                 {sent}: sobota, 6 grudnia 2026 02:45\n\
                 {to}: Vera <vera@victim.example>\n\
                 {subject}: [Convos] hey\n\n{}",
                notification(&settings)
            );

            assert_eq!(
                without_echoes(&reply, "vera@victim.example", &settings),
                "Stop writing to me.",
                "{from}"
            );
        }
    }

    #[test]
    fn a_notification_quoted_without_a_header_block_is_cut_at_its_first_line() {
        let settings = settings();
        let reply = format!("Fine, noon it is.\n\n{}", notification(&settings));
        assert_eq!(
            without_echoes(&reply, "vera@victim.example", &settings),
            "Fine, noon it is."
        );
    }

    #[test]
    fn a_signed_link_ends_the_text_and_reply_addresses_are_removed() {
        let settings = settings();
        let link = email::link_url(
            &settings,
            UserId::generate(),
            Target::Message(MessageId::generate()),
            Utc::now(),
        );
        let text = format!(
            "Write to (Reply+abc.def@REPLY.convos.test) or bounce+x@reply.convos.test\n\
             Our site is https://convos.test/ and mine is https://example.com/x\n\
             Mark as read (mallory, 2026-12-06 02:45 UTC)<{link}>\nsecret tail"
        );
        assert_eq!(
            without_echoes(&text, "vera@victim.example", &settings),
            "Write to ([address removed]) or [address removed]\n\
             Our site is https://convos.test/ and mine is https://example.com/x"
        );
    }

    #[test]
    fn a_wrapped_notification_and_a_reply_right_above_the_rule_lose_nothing_of_the_reply() {
        // No blank line between the answer and the rule; the intro wrapped at 76 columns, so
        // the first line recognised is further down.
        let settings = settings();
        let reply = "Stop writing to me.\n________________________________\n\
                     Od: \"mallory (Mallory With A Very Long Display Name Indeed) via Convos\" \
                     <notifications@convos.test>\nDo: Vera <vera@victim.example>\n\
                     Temat: [Convos] hey\n\n\
                     mallory (Mallory With A Very Long Display Name Indeed) sent you a\n\
                     message on Convos.\n\n> hey you\n\n\
                     Reply to this email to answer mallory: your reply is posted.\n";

        assert_eq!(
            without_echoes(reply, "vera@victim.example", &settings),
            "Stop writing to me."
        );
    }

    #[test]
    fn every_convos_address_in_a_line_goes_after_anyone_elses() {
        // Only the first `reply+` of a line was looked at: one of another service's hid ours.
        let settings = settings();
        let text = "mine is reply+news@example.com, and reply+TOKEN@reply.convos.test too";
        assert_eq!(
            without_echoes(text, "vera@victim.example", &settings),
            "mine is reply+news@example.com, and [address removed] too"
        );
    }

    #[test]
    fn a_long_line_of_addresses_loses_ours_and_the_repliers_and_keeps_the_rest() {
        // Each removal started the line again, lower-cased anew, and a `reply+` word without
        // our domain reached for the next `@` further on: a 320 KiB line of one's own address
        // cost 2.7 s of a worker thread (a review's measure). One pass now (decision 83).
        let settings = settings();
        let line = "vera@victim.example reply+t@reply.convos.test reply+x ".repeat(1_000);
        let scrubbed = without_echoes(&line, "vera@victim.example", &settings);
        assert_eq!(scrubbed.matches(REMOVED_ADDRESS).count(), 2_000);
        assert!(!scrubbed.contains("vera@") && !scrubbed.contains("t@reply"));
        assert_eq!(scrubbed.matches("reply+x").count(), 1_000, "not ours: kept");
    }

    #[test]
    fn the_repliers_own_address_never_reaches_the_other_person() {
        let settings = settings();
        let text = "Write to me at Vera@Victim.example instead.\nOr vera@victim.example.";
        assert_eq!(
            without_echoes(text, "vera@victim.example", &settings),
            "Write to me at [address removed] instead.\nOr [address removed]."
        );
    }

    #[test]
    fn ones_own_words_naming_convos_above_a_quoted_notification_stay() {
        // The cut moved up to the first line anywhere above that named `[Convos]`, the
        // person's own among them (a probe).
        let settings = settings();
        let reply = format!(
            "By the way, I had turned off my [Convos] emails.\nStill got this one.\n\
             PS: my [Convos] emails went to spam; write to notifications@convos.test?\n\n\
             ________________________________\n\
             Od: \"mallory via Convos\" <notifications@convos.test>\n\
             Temat: Odp: [Convos] hey\n\n{}",
            notification(&settings)
        );
        assert_eq!(
            without_echoes(&reply, "vera@victim.example", &settings),
            "By the way, I had turned off my [Convos] emails.\nStill got this one.\n\
             PS: my [Convos] emails went to spam; write to notifications@convos.test?"
        );
    }

    #[test]
    fn a_reply_of_ones_own_words_is_left_as_written() {
        let settings = settings();
        let text = "Thanks!\n\n-----\nA block of my own\nwith lines\n\nBye";
        assert_eq!(without_echoes(text, "vera@victim.example", &settings), text);
    }
}
