//! Reading the reports mail systems send back: delivery status notifications (bounces, RFC 3464),
//! feedback reports (complaints, ARF, RFC 5965), and, best effort, the plain-text bounces of
//! mail servers that do not write RFC 3464 (qmail, older Exim).

use mailparse::{MailHeader, MailHeaderMap, ParsedMail};

use crate::parsed::{self, Parsed};

/// What a report received by email says about one of our messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A delivery failed (or was delayed). `permanent` for a 5.x.x status with Action failed;
    /// `delayed` for Action delayed (not a failure: record only). Failed with a 4.x.x status (the
    /// sending server gave up retrying) is neither: a soft bounce.
    Bounce {
        /// The address that could not be reached (`Final-Recipient`, without its `rfc822;`).
        recipient: Option<String>,
        /// The enhanced status code, e.g. `5.1.1` (RFC 3463).
        status: Option<String>,
        /// The address is dead: stop sending to it.
        permanent: bool,
        /// Delivery is only late; the sending server is still trying.
        delayed: bool,
        /// What the remote server said, e.g. `550 5.1.1 <x@example.net>: User unknown`.
        diagnostic: Option<String>,
        /// `Message-ID` of the message that bounced, without angle brackets, when the report
        /// returned it (or its headers).
        original_message_id: Option<String>,
    },
    /// The recipient complained (marked as spam) or other feedback.
    Complaint {
        /// `Feedback-Type`, lower case: `abuse`, `fraud`, `virus`, `other`, `not-spam`, or
        /// `auth-failure` (RFC 6591); see [`Report::is_unwanted`].
        feedback_type: String,
        /// `Original-Rcpt-To`, or failing that the recipient named in the returned message.
        /// Many providers redact it: rely on the return path (VERP) first.
        original_recipient: Option<String>,
        /// `Message-ID` of the message complained about, without angle brackets.
        original_message_id: Option<String>,
    },
}

impl Report {
    /// Whether this says the recipient does not want our email: a complaint of type `abuse`,
    /// `fraud` or `virus`. `not-spam` is the opposite, `auth-failure` is about the sending
    /// domain's authentication and `other` says nothing definite; those are for the record only.
    pub fn is_unwanted(&self) -> bool {
        matches!(self, Report::Complaint { feedback_type, .. }
            if matches!(feedback_type.as_str(), "abuse" | "fraud" | "virus"))
    }
}

/// The report in a received message, if it is one. Takes the raw bytes because the report parts
/// are MIME parts.
///
/// - A `message/feedback-report` part anywhere in the message makes it a [`Report::Complaint`].
/// - A `message/delivery-status` (or `message/global-delivery-status`) part makes it a
///   [`Report::Bounce`] for the **first failed recipient** it lists; if none failed, the first
///   delayed one; if every recipient was delivered, relayed or expanded (a success notice), the
///   message is not a report (`None`).
/// - Without either part, a message from a mail system (`mailer-daemon@`, `postmaster@` or an
///   empty return path) whose subject, `X-Failed-Recipients` header or text says a delivery
///   failed is read best effort: the first enhanced status code (or SMTP reply code) in its text,
///   the failed address, and the returned message's `Message-ID` if it is quoted.
///
/// Anything else, a person's reply or an auto-reply included, is `None`.
pub fn read(raw: &[u8]) -> Option<Report> {
    crate::limits::check(raw).ok()?;
    let mail = mailparse::parse_mail(raw).ok()?;
    let original_message_id = returned_message(&mail)
        .as_deref()
        .and_then(returned_message_id);
    if let Some(feedback) = part_of_type(&mail, &["message/feedback-report"]) {
        return Some(complaint(&mail, feedback, original_message_id));
    }
    if let Some(status) = part_of_type(
        &mail,
        &["message/delivery-status", "message/global-delivery-status"],
    ) {
        return delivery_status(status, original_message_id);
    }
    plain_text_bounce(raw, original_message_id)
}

/// The first leaf part (depth first) whose type is one of `types`.
fn part_of_type<'a>(mail: &'a ParsedMail<'a>, types: &[&str]) -> Option<&'a ParsedMail<'a>> {
    mail.parts().skip(1).find(|p| {
        types
            .iter()
            .any(|t| p.ctype.mimetype.eq_ignore_ascii_case(t))
    })
}

/// The headers of the returned original, from a `message/rfc822`, `text/rfc822-headers` or
/// (RFC 6532) `message/global`/`message/global-headers` part, as raw bytes.
fn returned_message(mail: &ParsedMail) -> Option<Vec<u8>> {
    part_of_type(
        mail,
        &[
            "message/rfc822",
            "text/rfc822-headers",
            "message/global",
            "message/global-headers",
        ],
    )
    .and_then(|p| p.get_body_raw().ok())
}

fn returned_message_id(original: &[u8]) -> Option<String> {
    let (headers, _) = mailparse::parse_headers(original).ok()?;
    headers
        .get_first_value("Message-ID")
        .and_then(|v| bare_id(&v))
}

/// A Message-ID without angle brackets and whitespace.
fn bare_id(value: &str) -> Option<String> {
    let value = value.trim();
    let inner = match value.split_once('<') {
        Some((_, rest)) => rest.split_once('>').map_or(rest, |(id, _)| id),
        None => value,
    };
    let inner = inner.trim();
    (!inner.is_empty()).then(|| inner.to_owned())
}

/// An address from a report field: drops an address type (`rfc822;`), angle brackets and
/// whitespace.
fn bare_address(value: &str) -> Option<String> {
    let value = value.trim();
    let value = match value.split_once(';') {
        Some((kind, rest)) if !kind.contains('@') => rest,
        _ => value,
    };
    let value = value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!value.is_empty() && value.contains('@')).then(|| value.to_owned())
}

/// Whitespace runs (from folded lines) collapsed to single spaces; control characters count as
/// whitespace (a NUL cannot be stored as PostgreSQL text, and no report means one).
fn one_line(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The field groups of a `message/delivery-status` or `message/feedback-report` body: header-like
/// blocks separated by blank lines. A group that fails to parse ends the list.
fn field_groups(body: &[u8]) -> Vec<Vec<MailHeader<'_>>> {
    let mut groups = Vec::new();
    let mut rest = body;
    loop {
        let skip = rest
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .unwrap_or(rest.len());
        // Leading whitespace on a first line would read as a continuation; only skip it together
        // with whole blank lines.
        let line_start = rest[..skip]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        rest = &rest[line_start..];
        if rest.iter().all(|b| b.is_ascii_whitespace()) {
            break;
        }
        match mailparse::parse_headers(rest) {
            Ok((headers, used)) if used > 0 && !headers.is_empty() => {
                groups.push(headers);
                rest = &rest[used..];
            }
            _ => break,
        }
    }
    groups
}

fn complaint(
    mail: &ParsedMail,
    feedback: &ParsedMail,
    original_message_id: Option<String>,
) -> Report {
    let body = feedback.get_body_raw().unwrap_or_default();
    let groups = field_groups(&body);
    let field = |name: &str| {
        groups
            .iter()
            .find_map(|g| g.get_first_value(name))
            .map(|v| one_line(&v))
    };
    let feedback_type = field("Feedback-Type")
        .map(|v| v.to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "other".to_owned());
    let original_recipient = field("Original-Rcpt-To")
        .as_deref()
        .and_then(bare_address)
        .or_else(|| {
            let original = returned_message(mail)?;
            let (headers, _) = mailparse::parse_headers(&original).ok()?;
            // Hotmail's JMRP names the recipient in a header of its own.
            headers
                .get_first_value("X-HmXmrOriginalRecipient")
                .as_deref()
                .and_then(bare_address)
                .or_else(|| {
                    headers.get_first_header("To").and_then(|to| {
                        mailparse::addrparse_header(to)
                            .ok()?
                            .extract_single_info()
                            .map(|s| s.addr)
                    })
                })
        });
    Report::Complaint {
        feedback_type,
        original_recipient,
        original_message_id,
    }
}

/// What a per-recipient group says happened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Failed,
    Delayed,
    Other,
}

fn delivery_status(part: &ParsedMail, original_message_id: Option<String>) -> Option<Report> {
    let body = part.get_body_raw().ok()?;
    let groups = field_groups(&body);
    let is_recipient_group = |g: &Vec<MailHeader>| {
        ["Final-Recipient", "Original-Recipient", "Action"]
            .iter()
            .any(|name| g.get_first_header(name).is_some())
    };
    // Gmail names the bounced message in the per-message fields.
    let per_message_id = groups
        .iter()
        .filter(|g| !is_recipient_group(g))
        .find_map(|g| g.get_first_value("X-Original-Message-ID"))
        .and_then(|v| bare_id(&v));
    let action_of = |g: &Vec<MailHeader>| match g
        .get_first_value("Action")
        .map(|v| first_token(&v).to_ascii_lowercase())
        .as_deref()
    {
        Some("failed") => Action::Failed,
        Some("delayed") => Action::Delayed,
        _ => Action::Other,
    };
    let recipients: Vec<&Vec<MailHeader>> =
        groups.iter().filter(|g| is_recipient_group(g)).collect();
    let group = recipients
        .iter()
        .find(|g| action_of(g) == Action::Failed)
        .or_else(|| recipients.iter().find(|g| action_of(g) == Action::Delayed))?;
    let action = action_of(group);
    let recipient = group
        .get_first_value("Final-Recipient")
        .or_else(|| group.get_first_value("Original-Recipient"))
        .as_deref()
        .and_then(bare_address);
    let diagnostic = group
        .get_first_value("Diagnostic-Code")
        .map(|v| without_type(&v))
        .filter(|v| !v.is_empty());
    let status = group
        .get_first_value("Status")
        .map(|v| first_token(&v).to_owned())
        .filter(|v| is_enhanced_status(v))
        .or_else(|| diagnostic.as_deref().and_then(enhanced_status_in));
    let class = status
        .as_deref()
        .and_then(|s| s.chars().next())
        .or_else(|| diagnostic.as_deref().and_then(smtp_reply_class));
    Some(Report::Bounce {
        recipient,
        status,
        permanent: action == Action::Failed && class == Some('5'),
        delayed: action == Action::Delayed,
        diagnostic,
        original_message_id: original_message_id.or(per_message_id),
    })
}

fn first_token(value: &str) -> &str {
    value
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

/// A `Diagnostic-Code` without its type (`smtp;`), on one line.
fn without_type(value: &str) -> String {
    let value = one_line(value);
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            rest.trim().to_owned()
        }
        _ => value,
    }
}

/// `class.subject.detail` with class 2, 4 or 5 and up to three digits each (RFC 3463).
fn is_enhanced_status(code: &str) -> bool {
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The words of `text`: runs of digits, dots, letters and the characters of addresses.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '"'))
        .filter(|w| !w.is_empty())
}

/// The first enhanced status code among the words of `text`, with 4.x.x and 5.x.x preferred to
/// 2.x.x (which would be a success).
fn enhanced_status_in(text: &str) -> Option<String> {
    words(text)
        .map(|w| w.trim_start_matches('#').trim_end_matches(['.', ':']))
        .find(|w| is_enhanced_status(w) && !w.starts_with('2'))
        .map(str::to_owned)
}

/// The class (`4` or `5`) of the first SMTP reply code among the words of `text`. Codes are three
/// digits with a second digit 0 to 5 (so ports like 587 are not taken for one), standing alone
/// or before a hyphen (`552-Mailbox full`, a continuation line).
fn smtp_reply_class(text: &str) -> Option<char> {
    words(text).find_map(|w| {
        let code = w.split('-').next().unwrap_or(w);
        let b = code.as_bytes();
        (b.len() == 3
            && matches!(b[0], b'4' | b'5')
            && (b'0'..=b'5').contains(&b[1])
            && b[2].is_ascii_digit())
        .then(|| b[0] as char)
    })
}

/// Subjects (lower case fragments) of plain-text bounces.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail",
    "undeliverable",
    "undeliverable mail",
    "delivery status notification",
    "delivery failure",
    "delivery has failed",
    "delivery failed",
    "mail delivery failed",
    "failure notice",
    "returned mail",
    "returned to sender",
    "could not be delivered",
    "delayed mail",
    "delivery delayed",
    "warning: message",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "non distribuable",
];

/// Lines (lower case fragments) that start the returned copy of the original in a plain-text
/// bounce; the explanation is above them.
const RETURNED_COPY_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "original message follows",
    "original message headers",
    "----- original message -----",
    "returned message",
    "message headers follow",
];

fn plain_text_bounce(raw: &[u8], original_message_id: Option<String>) -> Option<Report> {
    let parsed = parsed::parse(raw).ok()?;
    if !from_mail_system(&parsed) {
        return None;
    }
    let subject = parsed.subject.to_lowercase();
    let failed_recipients = parsed
        .header("X-Failed-Recipients")
        .and_then(|v| v.split(',').find_map(bare_address));
    let (explanation, copy) = split_at_returned_copy(&parsed.text);
    let status = enhanced_status_in(explanation);
    let class = status
        .as_deref()
        .and_then(|s| s.chars().next())
        .or_else(|| smtp_reply_class(explanation));
    let says_bounce = BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s));
    if !says_bounce && failed_recipients.is_none() && class.is_none() {
        return None;
    }
    let lower = explanation.to_lowercase();
    let delayed = class != Some('5')
        && [
            "delayed",
            "not yet been delivered",
            "will continue trying",
            "still trying",
            "will be retried",
        ]
        .iter()
        .any(|p| subject.contains(p) || lower.contains(p));
    let permanent = !delayed
        && (class == Some('5')
            || lower.contains("permanent error")
            || lower.contains("permanent failure")
            || lower.contains("permanently"));
    let recipient = failed_recipients.or_else(|| failed_address_in(explanation, &parsed));
    let diagnostic = explanation
        .lines()
        .find(|line| {
            status.as_deref().is_some_and(|s| line.contains(s))
                || (status.is_none() && smtp_reply_class(line).is_some())
        })
        .map(one_line)
        .filter(|line| !line.is_empty());
    let original_message_id = original_message_id.or_else(|| {
        copy.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("Message-ID")
                .then(|| bare_id(value))
                .flatten()
        })
    });
    Some(Report::Bounce {
        recipient,
        status,
        permanent,
        delayed,
        diagnostic,
        original_message_id,
    })
}

/// A message from a mail system rather than a person: an empty return path, or `From`
/// `mailer-daemon@`/`postmaster@`.
fn from_mail_system(parsed: &Parsed) -> bool {
    let null_return_path = parsed.header("Return-Path").is_some_and(|v| {
        v.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .is_empty()
    });
    let daemon = parsed.from.as_deref().is_some_and(|from| {
        let local = from.rsplit_once('@').map_or(from, |(local, _)| local);
        ["mailer-daemon", "mailer_daemon", "postmaster"]
            .iter()
            .any(|d| local.eq_ignore_ascii_case(d))
    });
    null_return_path || daemon
}

/// The bounce's explanation and, after the first marker line, the returned copy ("" if none).
fn split_at_returned_copy(text: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let lower = line.to_lowercase();
        if RETURNED_COPY_MARKERS.iter().any(|m| lower.contains(m)) {
            return (&text[..offset], &text[offset + line.len()..]);
        }
        offset += line.len();
    }
    (text, "")
}

/// The failed address in a plain-text explanation: Exim's line after "following address(es)
/// failed:", else the first `<address>` (qmail writes `<x@example.net>:`), else the first bare
/// address, never the bounce's own sender.
fn failed_address_in(explanation: &str, parsed: &Parsed) -> Option<String> {
    let not_sender = |address: &String| {
        parsed
            .from
            .as_deref()
            .is_none_or(|from| !from.eq_ignore_ascii_case(address))
    };
    let mut lines = explanation.lines();
    while let Some(line) = lines.next() {
        if line.to_lowercase().contains("following address(es) failed") {
            if let Some(address) = lines
                .by_ref()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| bare_address(l.trim().trim_end_matches(':')))
                .filter(not_sender)
            {
                return Some(address);
            }
            break;
        }
    }
    let bracketed = explanation.split('<').skip(1).find_map(|rest| {
        rest.split_once('>')
            .and_then(|(inside, _)| bare_address(inside))
            .filter(not_sender)
    });
    bracketed.or_else(|| {
        words(explanation)
            .map(|w| w.trim_matches(|c: char| matches!(c, '<' | '>' | ':' | '.' | '\'')))
            .filter(|w| w.contains('@') && !w.starts_with('@') && !w.ends_with('@'))
            .find_map(bare_address)
            .filter(not_sender)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes_are_told_from_addresses_and_versions() {
        assert!(is_enhanced_status("5.1.1"));
        assert!(is_enhanced_status("5.1.10"));
        assert!(is_enhanced_status("4.2.2"));
        assert!(!is_enhanced_status("192.0.2.25"));
        assert!(!is_enhanced_status("4.96"));
        assert!(!is_enhanced_status("6.1.1"));
        assert_eq!(
            enhanced_status_in("Exim 4.96 at 192.0.2.25 said: 550 5.1.1 <x@example.net>."),
            Some("5.1.1".into())
        );
        assert_eq!(
            enhanced_status_in("relayed 2.0.0 OK then 5.7.1."),
            Some("5.7.1".into())
        );
    }

    #[test]
    fn smtp_reply_codes_are_told_from_ports() {
        assert_eq!(
            smtp_reply_class("port 587 said 552-Mailbox full"),
            Some('5')
        );
        assert_eq!(smtp_reply_class("said: 451 try later"), Some('4'));
        assert_eq!(smtp_reply_class("connected to port 587"), None);
    }

    #[test]
    fn report_fields_lose_their_types_and_brackets() {
        assert_eq!(
            bare_address("rfc822; <Nobody@Example.net>").as_deref(),
            Some("Nobody@Example.net")
        );
        assert_eq!(
            bare_address("rfc822;x@example.net").as_deref(),
            Some("x@example.net")
        );
        assert_eq!(bare_address("rfc822; "), None);
        assert_eq!(
            without_type("smtp; 550 5.1.1\r\n    User unknown"),
            "550 5.1.1 User unknown"
        );
        assert_eq!(without_type("X-Postfix; host said: no"), "host said: no");
        assert_eq!(
            bare_id(" <abc@convos.example> ").as_deref(),
            Some("abc@convos.example")
        );
    }

    #[test]
    fn field_groups_are_split_at_blank_lines() {
        let body = b"\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\r\nFinal-Recipient: rfc822; a@example.net\r\nAction: failed\r\n\r\nFinal-Recipient: rfc822; b@example.net\r\nAction: delayed\r\n";
        let groups = field_groups(body);
        assert_eq!(groups.len(), 3);
        assert_eq!(
            groups[2].get_first_value("Action").as_deref(),
            Some("delayed")
        );
    }

    #[test]
    fn only_abuse_fraud_and_virus_complaints_mean_unwanted() {
        let complaint = |t: &str| Report::Complaint {
            feedback_type: t.into(),
            original_recipient: None,
            original_message_id: None,
        };
        assert!(complaint("abuse").is_unwanted());
        assert!(complaint("fraud").is_unwanted());
        assert!(!complaint("not-spam").is_unwanted());
        assert!(!complaint("auth-failure").is_unwanted());
    }
}
