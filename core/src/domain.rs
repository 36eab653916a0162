//! Domain newtypes: every piece of user text is parsed here once, at the edge.
//!
//! Lengths count Unicode scalar values (Rust `char`s), not bytes, so a 140-emoji subject is
//! valid. Text containing NUL (U+0000) is always refused: PostgreSQL cannot store it in `text`,
//! and it has no business in a message.

use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_width::UnicodeWidthChar;

/// Why one field of a request was refused: the field's name and a sentence for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The request field, as named on the wire.
    pub field: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl FieldError {
    /// A refusal of `field` for `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

fn check_text(field: &'static str, raw: &str, min: usize, max: usize) -> Result<(), FieldError> {
    if raw.contains('\0') {
        return Err(FieldError::new(
            field,
            "must not contain NUL (U+0000) characters",
        ));
    }
    let len = raw.chars().count();
    if len < min || raw.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if len > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {len})"),
        ));
    }
    Ok(())
}

fn reject_control(field: &'static str, raw: &str) -> Result<(), FieldError> {
    if raw
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(FieldError::new(
            field,
            "must be a single line without control characters",
        ));
    }
    Ok(())
}

/// Refuses characters that hide or reorder text (bidirectional controls, zero-width spaces,
/// soft hyphens, tags: [`crate::text::is_invisible`]), so a name or a subject cannot pose as
/// another (`pay\u{200b}pal`, `evil\u{202e}gpj.exe`) in any client. A joiner is allowed only
/// where emoji and non-Latin scripts need it: between two visible characters outside ASCII
/// (`👩‍💻`, a Persian word), never between Latin letters (`pay\u{200c}pal`) or at an edge; a
/// variation selector only right after a visible character outside ASCII that it selects the
/// look of ([`crate::text::selects`]: `❤️`, a keycap, a variant of a Chinese character), never
/// after a Latin letter or another selector, where it draws nothing and can carry a hidden byte.
pub(crate) fn reject_invisible(field: &'static str, raw: &str) -> Result<(), FieldError> {
    use crate::text::{is_invisible, is_joiner, is_variation_selector, selects};
    let chars: Vec<char> = raw.chars().collect();
    let shown = |c: Option<&char>| {
        c.is_some_and(|&c| {
            !c.is_ascii() && !c.is_whitespace() && !is_invisible(c) && !is_variation_selector(c)
        })
    };
    let hidden = chars.iter().enumerate().any(|(i, &c)| {
        let before = i.checked_sub(1).and_then(|p| chars.get(p));
        if is_variation_selector(c) {
            return !before.is_some_and(|&base| selects(base, c));
        }
        // A joiner's left neighbour is the character a selector before it chose the look of
        // (`🏳️‍🌈`).
        let joined = match before {
            Some(&s) if is_variation_selector(s) => i.checked_sub(2).and_then(|p| chars.get(p)),
            other => other,
        };
        is_invisible(c) && !(is_joiner(c) && shown(joined) && shown(chars.get(i + 1)))
    });
    if hidden {
        return Err(FieldError::new(
            field,
            "must not contain invisible or direction-changing characters",
        ));
    }
    Ok(())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl $name {
            /// The parsed value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The parsed value, by value.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A login name: 3 to 32 characters of `a-z 0-9 _ . -`, stored lower-case so that
    /// uniqueness is case-insensitive.
    Username
);
text_newtype!(
    /// An email address the mailer can send to: an ASCII dot-atom local part, `@`, and a
    /// dotted host name of letters, digits and hyphens (see [`EmailAddress::parse`]).
    EmailAddress
);
text_newtype!(
    /// The name shown next to messages: 1 to 64 characters on one line.
    DisplayName
);
text_newtype!(
    /// A thread's subject: 1 to 140 characters on one line.
    Subject
);
text_newtype!(
    /// A message body: 1 to 64,000 characters; line breaks allowed.
    Body
);

impl Username {
    /// Shortest accepted username.
    pub const MIN: usize = 3;
    /// Longest accepted username.
    pub const MAX: usize = 32;

    /// Whether a (folded) username may hold `c`: `a-z`, `0-9`, `_`, `.` and `-`.
    pub fn holds(c: char) -> bool {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
    }

    /// Parses a username, folding ASCII upper case to lower case (`Alice` is `alice`).
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::parse_field("username", raw)
    }

    /// Like [`Username::parse`], reporting errors against another field name (e.g. `recipient`).
    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let folded = raw.to_ascii_lowercase();
        let len = folded.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(FieldError::new(
                field,
                format!(
                    "must be {} to {} characters (got {len})",
                    Self::MIN,
                    Self::MAX
                ),
            ));
        }
        if !folded.chars().all(Self::holds) {
            return Err(FieldError::new(
                field,
                "may only contain a-z, 0-9, '_', '.' and '-'",
            ));
        }
        Ok(Self(folded))
    }

    /// Parses the username of a new account: [`Username::parse`]'s rules, and a name that
    /// cannot pass for another's or for Convos': it begins and ends with a letter or digit,
    /// holds no two of `_ . -` in a row, is not a name of the service or its staff
    /// ([`RESERVED_USERNAMES`]) and does not hold `convos`. Shown as `p3abvic. (Victoria
    /// Vance)` beside the real `p3abvic (Victoria Vance)`, a trailing dot hid in plain sight
    /// (decision 85). Accounts made before keep their names, found by [`Username::parse`].
    pub fn parse_new(raw: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "username";
        let name = Self::parse(raw)?;
        let text = name.as_str();
        let punctuation = |c: char| matches!(c, '_' | '.' | '-');
        if text.starts_with(punctuation) || text.ends_with(punctuation) {
            return Err(FieldError::new(
                FIELD,
                "must begin and end with a letter or digit",
            ));
        }
        if text
            .as_bytes()
            .windows(2)
            .any(|pair| punctuation(pair[0] as char) && punctuation(pair[1] as char))
        {
            return Err(FieldError::new(
                FIELD,
                "may not hold two of '_', '.' and '-' in a row",
            ));
        }
        // Read as they look (`adm1n`, `c0n.vos`): the service's names, like everyone's
        // (decision 90).
        // Each part between `_ . -` too: `supp0rt-team` speaks for the service as `support`.
        let look = username_look(text);
        let reserved = |part: &str| {
            let part = username_look(part);
            RESERVED_USERNAMES.iter().any(|r| username_look(r) == part)
        };
        if reserved(text) || text.split(['_', '.', '-']).any(reserved) || look.contains("convos") {
            return Err(FieldError::new(
                FIELD,
                "is kept for the service and its operators; choose another",
            ));
        }
        Ok(name)
    }
}

/// What a username looks like at a glance (decision 90): lower case, `_ . -` dropped, `0` read
/// as `o`, `1` and `i` as `l`, `5` as `s`, then `rn` as `m`, `vv` as `w` and `cl` as `d`. The SQL
/// function `convos_username_look` (migrations 0040 and 0041) reads names the same way for the
/// index of existing ones; an API test holds the two to one answer.
pub fn username_look(name: &str) -> String {
    let read: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '.' | '-'))
        .map(|c| match c.to_ascii_lowercase() {
            '0' => 'o',
            '1' | 'i' => 'l',
            '5' => 's',
            other => other,
        })
        .collect();
    read.replace("rn", "m")
        .replace("vv", "w")
        .replace("cl", "d")
}

/// Names a new account may not take: the service's and its staff's, which its mail and its
/// people would be believed under.
pub const RESERVED_USERNAMES: [&str; 26] = [
    "abuse",
    "admin",
    "administrator",
    "billing",
    "bounce",
    "help",
    "hostmaster",
    "info",
    "mailer-daemon",
    "moderator",
    "no-reply",
    "noreply",
    "notifications",
    "notify",
    "official",
    "operator",
    "ops",
    "postmaster",
    "reply",
    "root",
    "security",
    "staff",
    "support",
    "system",
    "verify",
    "webmaster",
];

impl EmailAddress {
    /// Longest accepted address (RFC 5321's path limit).
    pub const MAX: usize = 254;
    /// Longest local part (RFC 5321).
    pub const LOCAL_MAX: usize = 64;
    /// Longest label of the domain (RFC 1035).
    pub const LABEL_MAX: usize = 63;

    /// Parses an email address with rules no looser than the mailer's (lettre's `Address`), so
    /// an accepted address is never refused when the first email is built.
    ///
    /// - The local part is a dot-atom of RFC 5322 `atext` (letters, digits and
    ///   ``!#$%&'*+-/=?^_`{|}~``): no quoted strings, no leading, trailing or doubled dots, at
    ///   most 64 characters.
    /// - The domain is a host name of at least two labels (`localhost` alone is refused: no
    ///   real mail goes there), each 1 to 63 letters, digits or hyphens, neither starting nor
    ///   ending with a hyphen; the last label has a letter, so `x@127.0.0.1` is refused, and so
    ///   are IP literals like `x@[127.0.0.1]`.
    /// - ASCII only: an internationalised address needs SMTPUTF8, which a relay may not offer.
    ///   A domain can still be given in its `xn--` form.
    ///
    /// Deliverability itself is proven by the verification email, not here.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "email";
        let refuse = |reason: &str| Err(FieldError::new(FIELD, reason));
        check_text(FIELD, raw, 3, Self::MAX)?;
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("must not contain spaces or control characters");
        }
        if !raw.is_ascii() {
            return refuse(
                "must be written in ASCII (internationalised addresses are not supported; \
                 give the domain in its xn-- form)",
            );
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return refuse("must be an address like name@example.com");
        };
        if local.is_empty() || domain.is_empty() {
            return refuse("must be an address like name@example.com");
        }
        if local.len() > Self::LOCAL_MAX {
            return refuse("the part before @ must be at most 64 characters");
        }
        if local.starts_with('"') || local.contains('@') {
            return refuse("quoted names and a second @ are not supported");
        }
        if local.split('.').any(str::is_empty) {
            return refuse(
                "the part before @ must not start or end with a dot or have two in a row",
            );
        }
        if !local.bytes().all(|b| b == b'.' || is_atext(b)) {
            return refuse(
                "the part before @ may only contain letters, digits and !#$%&'*+-/=?^_`{|}~ \
                 (no commas, brackets, quotes or backslashes)",
            );
        }
        if domain.starts_with('[') {
            return refuse("IP address literals are not supported; use a domain name");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return refuse("the domain must have a dot, like example.com");
        }
        for label in &labels {
            if label.is_empty() {
                return refuse("the domain must not start or end with a dot or have two in a row");
            }
            if label.len() > Self::LABEL_MAX {
                return refuse("each part of the domain must be at most 63 characters");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return refuse("the domain may only contain letters, digits, hyphens and dots");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return refuse("a part of the domain must not start or end with a hyphen");
            }
        }
        if !labels[labels.len() - 1]
            .bytes()
            .any(|b| b.is_ascii_alphabetic())
        {
            return refuse("IP addresses are not supported; use a domain name");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The mailbox this address reaches, as far as the address itself tells: lower case,
    /// without a `+tag` (subaddressing, which Gmail, Outlook, Fastmail, iCloud and most others
    /// deliver to the untagged mailbox), and at Gmail without dots, `googlemail.com` being
    /// `gmail.com`. What caps per mailbox count by; never an address to send to.
    pub fn mailbox(&self) -> String {
        mailbox_of(&self.0)
    }
}

/// [`EmailAddress::mailbox`] of an address already stored (which may predate today's rules):
/// the same key for any text with an `@`, its lower case otherwise.
pub fn mailbox_of(address: &str) -> String {
    let address = address.to_ascii_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address;
    };
    // A local part that starts with `+` (`+15551234567@sms.example`) is no tag.
    let local = match local.split_once('+') {
        Some((untagged, _)) if !untagged.is_empty() => untagged,
        _ => local,
    };
    match domain {
        "gmail.com" | "googlemail.com" => format!("{}@gmail.com", local.replace('.', "")),
        _ => format!("{local}@{domain}"),
    }
}

/// RFC 5322 `atext`, the characters of a dot-atom besides the dots.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// `@`, `<` and `>`, and the characters that look like them (full-width and small forms,
/// angle quotes and brackets): what would make a name pass for an address.
const ADDRESS_MARKS: [char; 19] = [
    '@', '<', '>', '\u{ff20}', '\u{fe6b}', '\u{ff1c}', '\u{ff1e}', '\u{fe64}', '\u{fe65}',
    '\u{2039}', '\u{203a}', '\u{3008}', '\u{3009}', '\u{27e8}', '\u{27e9}', '\u{300a}', '\u{300b}',
    '\u{276e}', '\u{276f}',
];

impl DisplayName {
    /// Longest accepted display name.
    pub const MAX: usize = 64;

    /// Parses a display name, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "display_name";
        let trimmed = raw.trim();
        check_text(FIELD, trimmed, 1, Self::MAX)?;
        reject_control(FIELD, trimmed)?;
        reject_invisible(FIELD, trimmed)?;
        // Shown beside the username, a name must show something, and begin with what it shows:
        // the braille blank draws nothing, and marks (no width of their own) first in a name
        // settle on what is shown before it (`mallory (\u{301}\u{301})`).
        let draws = |c: char| c != '\u{2800}' && !c.is_whitespace() && c.width().unwrap_or(0) > 0;
        let first_drawn = trimmed
            .chars()
            .next()
            .is_some_and(|c| c.width().unwrap_or(0) > 0);
        if !first_drawn || !trimmed.chars().any(draws) {
            return Err(FieldError::new(
                FIELD,
                "must begin with a visible character and show one that is not blank",
            ));
        }
        // A name shaped like an address passes for one where a mail client shows the name alone
        // (`"Admin" <admin@…> via Convos`).
        if trimmed.contains(ADDRESS_MARKS) {
            return Err(FieldError::new(
                FIELD,
                "must be a name, not an address: no @, < or >",
            ));
        }
        // Nor a link: shown in emails beside the sender's words, a name like "Convos Security:
        // verify at https://…" became a link in Convos' own email (decision 85).
        let lower = trimmed.to_lowercase();
        if lower.contains("://") || lower.contains("www.") {
            return Err(FieldError::new(
                FIELD,
                "must be a name, not a link: no :// or www.",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The display name a new account gets when none is given: its username.
    pub fn from_username(username: &Username) -> Self {
        Self(username.as_str().to_owned())
    }
}

impl Subject {
    /// Longest accepted subject, in characters.
    pub const MAX: usize = 140;

    /// Parses a subject: one line of visible text (no control characters, no line or
    /// paragraph separators, nothing that hides or reorders text). It is kept exactly as sent.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        check_text("subject", raw, 1, Self::MAX)?;
        reject_control("subject", raw)?;
        reject_invisible("subject", raw)?;
        Ok(Self(raw.to_owned()))
    }
}

impl Body {
    /// Longest accepted body, in characters ("64k" taken as 64,000, as the service it replaces).
    pub const MAX: usize = 64_000;

    /// Parses a body. The text is kept exactly as sent.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        check_text("body", raw, 1, Self::MAX)?;
        Ok(Self(raw.to_owned()))
    }
}

/// A password as typed: 8 to 256 characters. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Shortest accepted password.
    pub const MIN: usize = 8;
    /// Longest accepted password; bounds the hashing work one request can ask for.
    pub const MAX: usize = 256;

    /// Parses a new password.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "password";
        if raw.contains('\0') {
            return Err(FieldError::new(
                FIELD,
                "must not contain NUL (U+0000) characters",
            ));
        }
        let len = raw.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(FieldError::new(
                FIELD,
                format!(
                    "must be {} to {} characters (got {len})",
                    Self::MIN,
                    Self::MAX
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password's text, for hashing or verifying.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How long an ephemeral message lives: 10 seconds to 30 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiresIn(u32);

impl ExpiresIn {
    /// Shortest lifetime, in seconds.
    pub const MIN: i64 = 10;
    /// Longest lifetime, in seconds (30 days).
    pub const MAX: i64 = 2_592_000;

    /// Parses a lifetime in seconds.
    pub fn parse(seconds: i64) -> Result<Self, FieldError> {
        if !(Self::MIN..=Self::MAX).contains(&seconds) {
            return Err(FieldError::new(
                "expires_in",
                format!("must be between {} and {} seconds", Self::MIN, Self::MAX),
            ));
        }
        Ok(Self(u32::try_from(seconds).unwrap_or(u32::MAX)))
    }

    /// The lifetime in seconds.
    pub fn seconds(&self) -> u32 {
        self.0
    }
}

/// A client-chosen `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest accepted key.
    pub const MAX: usize = 255;

    /// Parses the header's value.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let ok =
            !raw.is_empty() && raw.len() <= Self::MAX && raw.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(FieldError::new(
                "Idempotency-Key",
                format!("must be 1 to {} visible ASCII characters", Self::MAX),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first `max` characters of `body` on one line, with `…` when cut.
pub fn excerpt(body: &str, max: usize) -> String {
    let mut flat = String::with_capacity(body.len().min(max * 4));
    let mut count = 0;
    let mut cut = false;
    for word in body.split_whitespace() {
        let sep = usize::from(count > 0);
        if count + sep + word.chars().count() > max {
            cut = true;
            // Fill the rest of the line with the start of the word, so a long word still shows.
            if count + sep < max {
                if sep == 1 {
                    flat.push(' ');
                    count += 1;
                }
                flat.extend(word.chars().take(max - count));
            }
            break;
        }
        if sep == 1 {
            flat.push(' ');
        }
        flat.push_str(word);
        count += sep + word.chars().count();
    }
    if cut {
        flat.push('…');
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spellings_of_one_mailbox_have_one_mailbox() {
        let mailbox = |raw: &str| EmailAddress::parse(raw).unwrap().mailbox();
        assert_eq!(mailbox("Victim+Two@Example.COM"), "victim@example.com");
        assert_eq!(mailbox("victim@example.com"), "victim@example.com");
        assert_eq!(mailbox("v.i.c.tim+x@gmail.com"), "victim@gmail.com");
        assert_eq!(mailbox("Victim@GoogleMail.com"), "victim@gmail.com");
        // Dots matter elsewhere, and so does the domain.
        assert_eq!(mailbox("first.last@example.com"), "first.last@example.com");
        assert_ne!(mailbox("victim@example.org"), mailbox("victim@example.com"));
        assert_eq!(mailbox_of("no-at-sign"), "no-at-sign");
        assert_eq!(
            mailbox("+15551234567@sms.example"),
            "+15551234567@sms.example"
        );
    }

    #[test]
    fn subject_limit_counts_characters_not_bytes() {
        let emoji = "🦀".repeat(140);
        assert_eq!(Subject::parse(&emoji).unwrap().as_str(), emoji);
        assert!(Subject::parse(&"🦀".repeat(141)).is_err());
        assert!(Subject::parse(&"漢".repeat(140)).is_ok());
    }

    #[test]
    fn body_limit_is_64000_characters() {
        assert!(Body::parse(&"é".repeat(64_000)).is_ok());
        let err = Body::parse(&"é".repeat(64_001)).unwrap_err();
        assert_eq!(err.field, "body");
    }

    #[test]
    fn nul_is_refused_everywhere() {
        assert!(Subject::parse("a\0b").is_err());
        assert!(Body::parse("a\0b").is_err());
        assert!(Password::parse("password\0").is_err());
        assert!(DisplayName::parse("a\0").is_err());
        assert!(EmailAddress::parse("a\0@b.c").is_err());
    }

    #[test]
    fn blank_text_is_refused() {
        assert!(Subject::parse("   ").is_err());
        assert!(Body::parse("\n\n").is_err());
    }

    #[test]
    fn a_new_username_cannot_pass_for_anothers_or_the_services() {
        for lookalike in ["vic.", "vic_", "-vic", "v..ic", "v-_ic", "_vic_"] {
            let err = Username::parse_new(lookalike).unwrap_err();
            assert_eq!(err.field, "username", "{lookalike}");
            assert!(
                Username::parse(lookalike).is_ok(),
                "still found: {lookalike}"
            );
        }
        for kept in [
            "admin",
            "Support",
            "postmaster",
            "convos",
            "convos-team",
            "the.convos.bot",
            "c0nvos",
            "con.vos",
            "c0nvos-support",
            "adm1n",
            "supp0rt",
            "rnoderator",
            "aclmin",
            "c0nvo5",
            "5upport",
            "supp0rt-team",
            "adm1n-desk",
            "security.team",
            "n0reply_bot",
        ] {
            assert!(Username::parse_new(kept).is_err(), "{kept}");
        }
        for fine in [
            "vic",
            "v.ic",
            "vic-2",
            "a_b.c-d",
            "admins2",
            "supporter",
            "helpdesk",
            "team-info2",
        ] {
            assert!(Username::parse_new(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_display_name_is_not_a_link() {
        for link in [
            "Convos Security: verify at https://x.example/k",
            "go to WWW.x.example",
        ] {
            let err = DisplayName::parse(link).unwrap_err();
            assert!(err.reason.contains("not a link"), "{link}: {err:?}");
        }
        assert!(DisplayName::parse("Dr. Who: time: lord").is_ok());
    }

    #[test]
    fn usernames_fold_to_lower_case_and_refuse_other_characters() {
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("ålice").is_err());
        assert!(Username::parse("a_b.c-d").is_ok());
    }

    #[test]
    fn ordinary_addresses_are_accepted_as_typed() {
        for good in [
            "alice@example.com",
            "Alice.Liddell+convos@Mail.Example.co.uk",
            "o'brien@example.ie",
            "x_y-z@sub-domain.example",
            "a@b.co",
            "user@xn--bcher-kva.example",
        ] {
            let parsed = EmailAddress::parse(good);
            assert_eq!(parsed.map(|e| e.into_inner()).as_deref(), Ok(good));
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@localhost",
            "a b@example.com",
            "a@.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn addresses_the_mailer_refuses_are_refused_at_sign_up() {
        // The examples: each was accepted at sign-up and then killed its email job.
        for bad in [
            "a,b@x.example",
            "a<b>@x.example",
            "x@[127.0.0.1]",
            "x@-x.example",
            "\"quoted name\"@x.example",
            "\"a\"@x.example",
            "x@127.0.0.1",
            "x@[IPv6:::1]",
            ".alice@x.example",
            "alice.@x.example",
            "al..ice@x.example",
            "alice@x..example",
            "alice@.x.example",
            "alice@x.example.",
            "alice@x-.example",
            "alice@x_y.example",
            "a\\b@x.example",
            "a(b)@x.example",
            "a;b@x.example",
            "a:b@x.example",
            "a@b@x.example",
            "ålice@x.example",
            "alice@bücher.example",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} should be refused");
            assert_eq!(EmailAddress::parse(bad).unwrap_err().field, "email");
        }
        let long_label = format!("alice@{}.example", "a".repeat(64));
        assert!(EmailAddress::parse(&long_label).is_err());
        let ok_label = format!("alice@{}.example", "a".repeat(63));
        assert!(EmailAddress::parse(&ok_label).is_ok());
        let long_local = format!("{}@x.example", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
        let long_total = format!("a@{}.example", vec!["b".repeat(60); 5].join("."));
        assert!(EmailAddress::parse(&long_total).is_err(), "over 254");
    }

    #[test]
    fn password_debug_does_not_leak() {
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn expires_in_bounds() {
        assert!(ExpiresIn::parse(9).is_err());
        assert!(ExpiresIn::parse(10).is_ok());
        assert!(ExpiresIn::parse(2_592_000).is_ok());
        assert!(ExpiresIn::parse(2_592_001).is_err());
    }

    #[test]
    fn excerpt_flattens_and_cuts() {
        assert_eq!(excerpt("hello\n\nworld", 100), "hello world");
        assert_eq!(excerpt("one two three", 7), "one two…");
        assert_eq!(excerpt(&"x".repeat(10), 4), "xxxx…");
    }

    proptest! {
        #[test]
        fn any_subject_that_parses_round_trips_and_fits(s in "\\PC{0,200}") {
            if let Ok(subject) = Subject::parse(&s) {
                prop_assert_eq!(subject.as_str(), s.as_str());
                prop_assert!(subject.as_str().chars().count() <= Subject::MAX);
                prop_assert!(!subject.as_str().contains('\0'));
            }
        }

        #[test]
        fn any_body_that_parses_fits(s in "\\PC{0,300}") {
            if let Ok(body) = Body::parse(&s) {
                prop_assert!(body.as_str().chars().count() <= Body::MAX);
            }
        }

        #[test]
        fn parsed_usernames_are_valid_and_lower_case(s in "[A-Za-z0-9_.\\- ]{0,40}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert_eq!(u.as_str(), s.to_ascii_lowercase());
                prop_assert!((3..=32).contains(&u.as_str().len()));
            }
        }

        /// Whatever sign-up accepts, the mailer (lettre, as the worker uses it) can address.
        #[test]
        fn every_accepted_email_is_one_the_mailer_accepts(
            local in "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]{0,24}|[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~,;:<>()\\[\\]\"\\\\ @-]{0,70}",
            domain in "[a-zA-Z0-9.\\[\\]:_-]{0,70}|[a-z]{1,10}(\\.[a-z0-9-]{1,64}){1,4}",
            noise in "\\PC{0,40}",
        ) {
            for candidate in [format!("{local}@{domain}"), noise.clone(), format!("{noise}@{domain}")] {
                if let Ok(email) = EmailAddress::parse(&candidate) {
                    prop_assert!(
                        email.as_str().parse::<lettre::Address>().is_ok(),
                        "accepted but the mailer refuses {}", email
                    );
                }
            }
        }

        #[test]
        fn excerpt_never_exceeds_its_limit(s in "\\PC{0,300}", max in 1usize..120) {
            let e = excerpt(&s, max);
            prop_assert!(e.trim_end_matches('…').chars().count() <= max);
        }
    }
}
