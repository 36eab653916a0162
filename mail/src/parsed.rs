//! One received email, parsed: the headers that matter for routing and refusal, and its text.

use mailparse::{DispositionType, MailHeaderMap, ParsedMail};

/// Why a received message could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("not a readable email: {0}")]
pub struct ParseError(String);

impl ParseError {
    pub(crate) fn new(why: String) -> Self {
        Self(why)
    }
}

/// What Convos needs of a received email.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// `Message-ID`, without the angle brackets.
    pub message_id: Option<String>,
    /// The address of the first `From` mailbox (as written; compare case-insensitively).
    pub from: Option<String>,
    /// Addresses of `To`, `Cc`, `Delivered-To` and `X-Original-To`, in that order.
    pub recipients: Vec<String>,
    /// `Subject`, decoded.
    pub subject: String,
    /// `In-Reply-To` and `References` ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// `References` ids, without angle brackets.
    pub references: Vec<String>,
    /// The top-level MIME type, lower case (`multipart/report` for reports).
    pub mime_type: String,
    /// Every header, key and decoded value, in order (for auto-reply checks).
    pub headers: Vec<(String, String)>,
    /// The body as plain text with LF line ends and no NUL: the first `text/plain` part that
    /// is not an attachment, else the first `text/html` converted to text; empty if neither
    /// exists.
    pub text: String,
    /// That part's transfer encoding (base64, quoted-printable) could not be undone, so its
    /// text is empty: not an empty reply.
    pub undecodable: bool,
}

impl Parsed {
    /// The decoded value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a raw RFC 5322 message; one past the [`crate::limits`] is not readable.
pub fn parse(raw: &[u8]) -> Result<Parsed, ParseError> {
    crate::limits::check(raw)?;
    let mail = mailparse::parse_mail(raw).map_err(|e| ParseError(e.to_string()))?;
    let headers = mail.get_headers();
    let addresses = |name: &str| addresses(&mail.headers, name);
    let ids = |name: &str| -> Vec<String> {
        headers
            .get_all_values(name)
            .iter()
            .flat_map(|v| message_ids(v))
            .collect()
    };
    let (text, undecodable) = text_of(&mail);
    Ok(Parsed {
        message_id: ids("Message-ID").into_iter().next(),
        from: addresses("From").into_iter().next(),
        recipients: recipients_in(&mail.headers),
        subject: headers.get_first_value("Subject").unwrap_or_default(),
        in_reply_to: ids("In-Reply-To"),
        references: ids("References"),
        mime_type: mail.ctype.mimetype.to_ascii_lowercase(),
        headers: mail
            .headers
            .iter()
            .map(|h| (h.get_key(), h.get_value()))
            .collect(),
        text,
        undecodable,
    })
}

/// The addresses a raw message's top-level headers name as its recipients, as [`Parsed`]'s
/// `recipients`, reading only its header section (no MIME parts, so no depth to bound); none if
/// the headers cannot be read.
pub fn recipients(raw: &[u8]) -> Vec<String> {
    mailparse::parse_headers(raw)
        .map(|(headers, _)| recipients_in(&headers))
        .unwrap_or_default()
}

/// The addresses of `To`, `Cc`, `Delivered-To` and `X-Original-To` among `headers`.
fn recipients_in(headers: &[mailparse::MailHeader]) -> Vec<String> {
    ["To", "Cc", "Delivered-To", "X-Original-To"]
        .iter()
        .flat_map(|name| addresses(headers, name))
        .collect()
}

/// The mailbox addresses of every `name` header among `headers`, groups opened.
fn addresses(headers: &[mailparse::MailHeader], name: &str) -> Vec<String> {
    headers
        .get_all_headers(name)
        .into_iter()
        .filter_map(|h| mailparse::addrparse_header(h).ok())
        .flat_map(|list| list.into_inner())
        .flat_map(|addr| match addr {
            mailparse::MailAddr::Single(s) => vec![s.addr],
            mailparse::MailAddr::Group(g) => g.addrs.into_iter().map(|s| s.addr).collect(),
        })
        .collect()
}

/// Longest id [`message_ids`] keeps, in bytes. Real ones are well under 100; the ids are stored
/// and indexed (a B-tree entry holds at most 2,704 bytes) and written back in `In-Reply-To`
/// (a header line holds at most 998).
pub const MAX_ID_BYTES: usize = 250;

/// The ids in a `Message-ID`-like header: each `<...>`, or the whole trimmed value if it has no
/// angle brackets. An id longer than [`MAX_ID_BYTES`] or holding a control character (a NUL,
/// which PostgreSQL text cannot hold) is no id: a reply without one is told apart by what it
/// says instead.
fn message_ids(value: &str) -> Vec<String> {
    let bracketed: Vec<String> = value
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(id, _)| id.trim().to_owned()))
        .filter(|id| !id.is_empty())
        .collect();
    let ids = if bracketed.is_empty() && !value.trim().is_empty() && !value.contains('<') {
        vec![value.trim().to_owned()]
    } else {
        bracketed
    };
    ids.into_iter()
        .filter(|id| id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control))
        .collect()
}

fn is_attachment(part: &ParsedMail) -> bool {
    part.get_content_disposition().disposition == DispositionType::Attachment
}

fn first_part<'a>(mail: &'a ParsedMail<'a>, mime: &str) -> Option<&'a ParsedMail<'a>> {
    mail.parts().find(|p| {
        p.subparts.is_empty() && !is_attachment(p) && p.ctype.mimetype.eq_ignore_ascii_case(mime)
    })
}

/// The text of `mail` (see [`Parsed::text`]), and whether its part's transfer encoding could
/// not be undone (the text is then empty).
fn text_of(mail: &ParsedMail) -> (String, bool) {
    let mut undecodable = false;
    let mut body_of = |part: &ParsedMail| {
        decoded(part).unwrap_or_else(|_| {
            undecodable = true;
            String::new()
        })
    };
    let text = if let Some(plain) = first_part(mail, "text/plain") {
        let body = body_of(plain);
        let param = |name: &str| {
            plain
                .ctype
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        if param("format").as_deref() == Some("flowed") {
            unflow(&body, param("delsp").as_deref() == Some("yes"))
        } else {
            body
        }
    } else if let Some(html) = first_part(mail, "text/html") {
        crate::html::to_text(&body_of(html))
    } else {
        String::new()
    };
    // A NUL means nothing in a mail's text, and PostgreSQL cannot store one: a stray one made
    // a short reply look unpostable.
    let mut text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\0', "");
    crate::limits::truncate(&mut text, crate::limits::MAX_TEXT_BYTES);
    (text, undecodable)
}

/// A text part's text in its declared charset. mailparse lets any byte-order mark override the
/// label (`FF FE` ahead of UTF-8 text read it all as UTF-16); here only UTF-8's mark does, as
/// browsers read it (a client that writes one wrote UTF-8, whatever it declared), and a
/// UTF-16 mark counts only for a UTF-16 label. An unknown label is read as mailparse reads it.
fn decoded(part: &ParsedMail) -> Result<String, mailparse::MailParseError> {
    let Some(declared) = charset::Charset::for_label(part.ctype.charset.as_bytes()) else {
        return part.get_body();
    };
    let raw = part.get_body_raw()?;
    let charset = match charset::Charset::for_bom(&raw) {
        Some((utf8, _)) if utf8.name() == "UTF-8" => utf8,
        _ => declared,
    };
    Ok(charset.decode_with_bom_removal(&raw).0.into_owned())
}

/// Undoes RFC 3676 `format=flowed`: a line ending in a space continues on the next line of
/// the same quote depth (the space removed too with `DelSp=yes`); space-stuffing is removed;
/// the signature separator `-- ` is never joined.
fn unflow(text: &str, delete_space: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut paragraph: Option<(usize, String)> = None;
    let flush = |out: &mut String, (depth, text): (usize, String)| {
        if depth > 0 {
            out.push_str(&">".repeat(depth));
            out.push(' ');
        }
        out.push_str(&text);
        out.push('\n');
    };
    let text = text.replace("\r\n", "\n");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    for line in text.split('\n') {
        let depth = line.chars().take_while(|&c| c == '>').count();
        let content = &line[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let soft = content.ends_with(' ') && content != "-- ";
        if let Some(open) = paragraph.take_if(|(d, _)| *d != depth) {
            flush(&mut out, open);
        }
        let piece = if soft && delete_space {
            &content[..content.len() - 1]
        } else {
            content
        };
        let (_, joined) = paragraph.get_or_insert_with(|| (depth, String::new()));
        joined.push_str(piece);
        if !soft && let Some(done) = paragraph.take() {
            flush(&mut out, done);
        }
    }
    if let Some(open) = paragraph {
        flush(&mut out, open);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_control_characters_or_past_the_length_are_no_ids() {
        let long = format!("<{}@example.com>", "a".repeat(MAX_ID_BYTES));
        assert_eq!(message_ids("<a\0b@x> <ok@x>"), ["ok@x"]);
        assert_eq!(message_ids("c\u{1}d@x"), Vec::<String>::new());
        assert_eq!(message_ids(&long), Vec::<String>::new());
        let fits = format!("<{}@x>", "a".repeat(MAX_ID_BYTES - 2));
        assert_eq!(message_ids(&fits).len(), 1);
    }

    #[test]
    fn a_plain_reply_is_read_with_its_routing_headers() {
        let raw = b"From: Bob Example <Bob@Example.com>\r\n\
To: \"Convos\" <reply+abc@reply.convos.test>\r\n\
Subject: =?utf-8?q?Re=3A_D=C3=A9jeuner?=\r\n\
Message-ID: <CAF123@mail.gmail.com>\r\n\
In-Reply-To: <m1@convos.test>\r\n\
References: <m0@convos.test> <m1@convos.test>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Oui, =C3=A0 midi.\r\n";
        let parsed = parse(raw).unwrap();
        assert_eq!(parsed.from.as_deref(), Some("Bob@Example.com"));
        assert_eq!(parsed.recipients, vec!["reply+abc@reply.convos.test"]);
        assert_eq!(parsed.subject, "Re: Déjeuner");
        assert_eq!(parsed.message_id.as_deref(), Some("CAF123@mail.gmail.com"));
        assert_eq!(parsed.in_reply_to, vec!["m1@convos.test"]);
        assert_eq!(parsed.references, vec!["m0@convos.test", "m1@convos.test"]);
        assert_eq!(parsed.text, "Oui, à midi.\n");
    }

    #[test]
    fn recipients_are_read_from_the_headers_alone_whatever_the_body_holds() {
        let nested = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n".repeat(5_000);
        let raw = format!(
            "From: m@evil.test\r\nTo: a@x.test, Group: b@x.test, c@x.test;\r\n\
             Cc: <d@x.test>\r\nDelivered-To: e@x.test\r\n{nested}"
        );
        assert!(parse(raw.as_bytes()).is_err(), "too deep to parse whole");
        assert_eq!(
            recipients(raw.as_bytes()),
            ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"]
        );
        assert!(recipients(b"no headers here").is_empty());
    }

    #[test]
    fn the_declared_charset_wins_over_a_byte_order_mark_of_another() {
        // mailparse sniffs a mark before the label: `FF FE` ahead of UTF-8 text read the whole
        // reply as UTF-16 (CJK mojibake with U+2028 in it).
        let head = b"From: a@example.com\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n";
        let mut raw = head.to_vec();
        raw.extend_from_slice(b"\xFF\xFEinvalid but readable\r\n");
        let text = parse(&raw).unwrap().text;
        assert!(text.ends_with("invalid but readable\n"), "{text:?}");
        // A mark of the declared charset is not text.
        let mut marked = head.to_vec();
        marked.extend_from_slice("\u{FEFF}Noon works.\r\n".as_bytes());
        assert_eq!(parse(&marked).unwrap().text, "Noon works.\n");
        // UTF-8's own mark wins over the label, as browsers read it.
        let latin = String::from_utf8(head.to_vec())
            .unwrap()
            .replace("utf-8", "iso-8859-1");
        let mut utf8 = latin.into_bytes();
        utf8.extend_from_slice("\u{FEFF}À midi.\r\n".as_bytes());
        assert_eq!(parse(&utf8).unwrap().text, "À midi.\n");
    }

    #[test]
    fn flowed_text_is_joined_into_its_paragraphs() {
        let flowed = "A long paragraph that \r\nwraps twice and \r\nends here.\r\n\
                      \r\n> quoted text \r\n> goes on\r\n-- \r\nBob\r\n";
        assert_eq!(
            unflow(flowed, false),
            "A long paragraph that wraps twice and ends here.\n\n> quoted text goes on\n-- \nBob\n"
        );
        assert_eq!(unflow("split \r\nword\r\n", true), "splitword\n");
        assert_eq!(
            unflow(" From space-stuffed\r\n", false),
            "From space-stuffed\n"
        );
    }

    #[test]
    fn the_plain_alternative_is_preferred_and_attachments_are_ignored() {
        let raw = b"From: a@example.com\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
Q2Fm6SBub2lyLg==\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>Caf&eacute; noir.</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: attachment; filename=notes.txt\r\n\
\r\n\
not the body\r\n\
--outer--\r\n";
        let parsed = parse(raw).unwrap();
        assert_eq!(parsed.mime_type, "multipart/mixed");
        assert_eq!(parsed.text.trim(), "Café noir.");
    }

    /// A message whose parts nest `depth` multiparts deep, the innermost a text part.
    fn nested(depth: usize) -> Vec<u8> {
        let mut raw = String::from("From: a@example.com\r\nSubject: deep\r\n");
        for level in 0..depth {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\nthe bottom\r\n");
        raw.into_bytes()
    }

    #[test]
    fn a_message_nested_thousands_deep_is_unreadable_not_a_crash() {
        // 300 KB that took the parser 6,000 calls deep: past the stack of a runtime thread,
        // which no panic guard catches, so one email stopped the worker, attempt after attempt.
        let raw = nested(6_000);
        assert!(parse(&raw).is_err());
        assert_eq!(crate::reports::read(&raw), None);
    }

    #[test]
    fn nesting_declared_in_encoded_words_is_unreadable_too() {
        // The parser decodes RFC 2047 words in a header's value: this declares a boundary
        // without the word "boundary" in its bytes.
        let mut raw = String::from("From: a@example.com\r\nSubject: deep\r\n");
        for level in 0..6_000 {
            raw.push_str(&format!(
                "Content-Type: =?us-ascii?Q?multipart/mixed;_=62oundary=3Db{level}?=\r\n\r\n\
                 --b{level}\r\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\nthe bottom\r\n");
        assert!(parse(raw.as_bytes()).is_err());
        assert_eq!(crate::reports::read(raw.as_bytes()), None);
    }

    #[test]
    fn ordinary_nesting_is_read() {
        let parsed = parse(&nested(12)).unwrap();
        assert_eq!(parsed.text.trim(), "the bottom");
    }
}
