//! The notification email: plain text and HTML, threading headers, one-click unsubscribe that
//! mutes the thread, signed links to pause or stop email and to mark a message read
//! (decision 27), and header text that cannot pass for something it is not (decision 18).

use chrono::{DateTime, Utc};
use convos_core::api::UserSummary;
use convos_core::email_links::Target;
use convos_core::{MessageId, UserId};
use convos_store::deliveries::{Pending, QueuedMessage};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder, MultiPart};

/// Characters of each message shown in an email.
const EXCERPT: usize = 500;

/// Messages one email shows at most, the newest: after a relay outage or a paused queue a
/// thread's email took every message queued meanwhile (thousands, megabytes of email).
const SHOWN_MESSAGES: usize = 20;

/// The header every email Convos sends carries, so one coming back is known as ours (a loop).
pub const NOTIFICATION_HEADER: &str = "X-Convos-Notification";

/// What every email needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct EmailSettings {
    /// `From:` address (with display name).
    pub from: Mailbox,
    /// Domain of `Message-ID`s.
    pub domain: String,
    /// Base URL for links.
    pub public_url: String,
    /// Signs unsubscribe links, and reply and bounce addresses.
    pub secret_key: String,
    /// The domain of reply and bounce addresses; `None`: replies by email are not read.
    pub reply_domain: Option<String>,
}

/// The stable `Message-ID` of the notification about `message`.
pub fn message_id(domain: &str, message: MessageId) -> String {
    format!("<{message}@{domain}>")
}

/// The URL of a signed link for `user` about `target`, in an email sent at `now` (decision
/// 27). The link of a thread is the email's one-click `List-Unsubscribe` (it mutes the thread)
/// and its page offers to pause or stop all email; the link of a message marks it read.
pub fn link_url(
    settings: &EmailSettings,
    user: UserId,
    target: Target,
    now: DateTime<Utc>,
) -> String {
    let token = convos_core::email_links::token(&settings.secret_key, user, target, now);
    format!(
        "{}/api/v1/email-links/{token}",
        settings.public_url.trim_end_matches('/')
    )
}

/// The `Reply-To` address of the email about `newest` (its recipient answers its thread),
/// made `now`.
pub fn reply_to(settings: &EmailSettings, newest: MessageId, now: DateTime<Utc>) -> Option<String> {
    let domain = settings.reply_domain.as_deref()?;
    Some(convos_core::reply_address::address(
        &settings.secret_key,
        convos_core::reply_address::Purpose::Reply,
        newest,
        now,
        domain,
    ))
}

/// The return path (VERP) of the email about `newest`: bounces and complaints come back to an
/// address that names the message, hence its recipient. Without a reply domain, the `From`.
pub fn return_path(
    settings: &EmailSettings,
    newest: MessageId,
    now: DateTime<Utc>,
) -> Option<lettre::Address> {
    let Some(domain) = settings.reply_domain.as_deref() else {
        return Some(settings.from.email.clone());
    };
    convos_core::reply_address::address(
        &settings.secret_key,
        convos_core::reply_address::Purpose::Bounce,
        newest,
        now,
        domain,
    )
    .parse()
    .ok()
}

/// Characters that change how the text around them is shown, or are not shown at all:
/// bidirectional controls (which can make `moc.lapyap` read `paypal.com`), zero-width and other
/// invisible characters. Control characters are removed too (see [`clean`]).
fn is_hidden(c: char) -> bool {
    convos_core::text::is_invisible(c) || c.is_control()
}

/// A name or subject as it may appear in a header: hidden characters removed, any run of
/// whitespace (line breaks included) one space, trimmed.
pub fn clean(text: &str) -> String {
    let mut visible = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_whitespace() {
            visible.push(' ');
        } else if convos_core::text::is_variation_selector(c) {
            // Kept only after what it selects, as on screen.
            if visible
                .chars()
                .next_back()
                .is_some_and(|base| convos_core::text::selects(base, c))
            {
                visible.push(c);
            }
        } else if !is_hidden(c) {
            visible.push(c);
        }
    }
    visible.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The name a person is shown by in an email: their username, which is theirs alone, then
/// their display name, cleaned, which anyone may take (`mallory (Alice Liddell)`). The username
/// comes first so that nothing in a display name can pose as it or push it out of view; the
/// display name alone if it is the username (in any case), the username if nothing visible is
/// left of it.
pub fn sender_name(display_name: &str, username: &str) -> String {
    let name = clean(display_name);
    let username = clean(username);
    if name.is_empty() {
        username
    } else if name.eq_ignore_ascii_case(&username) {
        name
    } else {
        format!("{username} ({name})")
    }
}

fn name_of(user: &UserSummary) -> String {
    sender_name(&user.display_name, &user.username)
}

/// Longest RFC 2047 encoded-word we write: `Subject: ` and one word fit a 78-character line.
const MAX_WORD: usize = 66;

/// Encodes `text` as RFC 2047 encoded-words (`=?utf-8?q?...?=`, every byte but letters and
/// digits as `=XX`), one per folded line, never splitting a character.
fn encoded_words(text: &str) -> String {
    const OPEN: &str = "=?utf-8?q?";
    const CLOSE: &str = "?=";
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let encoded: String = c
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| match b {
                b' ' => "_".to_owned(),
                b if b.is_ascii_alphanumeric() => char::from(b).to_string(),
                b => format!("={b:02X}"),
            })
            .collect();
        if !word.is_empty() && OPEN.len() + word.len() + encoded.len() + CLOSE.len() > MAX_WORD {
            words.push(format!("{OPEN}{word}{CLOSE}"));
            word.clear();
        }
        word.push_str(&encoded);
    }
    if !word.is_empty() {
        words.push(format!("{OPEN}{word}{CLOSE}"));
    }
    words.join("\r\n ")
}

/// `builder` with the headers of a notification (`kind`: `yes` for a thread's, `digest`): it
/// was written by a machine (`Auto-Submitted`), it is ours ([`NOTIFICATION_HEADER`]), and
/// RFC 8058's one-click `List-Unsubscribe` goes to `stop`.
pub fn notification_headers(builder: MessageBuilder, kind: &str, stop: &str) -> MessageBuilder {
    builder
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{stop}>"),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(NOTIFICATION_HEADER),
            kind.to_owned(),
        ))
}

/// The `Subject` header. Plain ASCII without `=?` goes as it is (lettre folds it); anything
/// else is encoded whole by us, so text a user typed that looks like an encoded-word is shown
/// as typed instead of being decoded by the mail client. (lettre writes ASCII words raw, so a
/// subject of `=?utf-8?b?...?=` would otherwise reach the client as an encoded-word.)
fn subject_header(subject: &str) -> HeaderValue {
    let name = HeaderName::new_from_ascii_str("Subject");
    if subject.is_ascii() && !subject.contains("=?") {
        HeaderValue::new(name, subject.to_owned())
    } else {
        HeaderValue::dangerous_new_pre_encoded(name, subject.to_owned(), encoded_words(subject))
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn shown(message: &QueuedMessage) -> String {
    if message.read_once {
        return "(A read-once message: open it in Convos to read it; it can be read once.)".into();
    }
    if message.expiring {
        // An email would outlive the message, which must disappear for both sides.
        return "(An expiring message: open it in Convos to read it before it disappears.)".into();
    }
    let Some(body) = &message.body else {
        return "(no longer available)".into();
    };
    // What the terminal client shows, for the same reasons: a reader's terminal or mail client
    // must not obey escape sequences, reorder the text or hide part of it.
    let body = convos_core::text::shown_body(body);
    if message.body_cut || body.chars().count() > EXCERPT {
        format!("{}…", body.chars().take(EXCERPT).collect::<String>())
    } else {
        body
    }
}

/// `text` quoted, a `> ` before each line, so that what someone wrote cannot pass for the
/// email's own words (a footer with a link of theirs) in a plain-text reader.
fn quoted(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                ">".to_owned()
            } else {
                format!("> {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Builds the email about `messages` (oldest first) of `pending`'s thread, sent at `now`.
///
/// Names and the subject are [`clean`]ed. In `From` and `To`, lettre quotes a name, and encodes
/// it whole as RFC 2047 words as soon as it holds anything but letters, digits, spaces and
/// `-_.\"` (so any `=?`, and any non-ASCII); the subject is encoded by [`subject_header`].
pub fn render(
    settings: &EmailSettings,
    pending: &Pending,
    messages: &[&QueuedMessage],
    now: DateTime<Utc>,
) -> Result<Message, lettre::error::Error> {
    let newest = messages[messages.len() - 1];
    let first = messages[0];
    let sender = name_of(&newest.sender);
    let subject = clean(&pending.subject);
    let senders: Vec<String> = {
        let mut names: Vec<String> = messages.iter().map(|m| name_of(&m.sender)).collect();
        names.dedup();
        names
    };
    let to = Mailbox::new(
        Some(clean(&pending.recipient.display_name)).filter(|n| !n.is_empty()),
        pending
            .recipient
            .email
            .parse()
            .map_err(|_| lettre::error::Error::MissingTo)?,
    );
    let from = Mailbox::new(
        Some(format!("{sender} via Convos")),
        settings.from.email.clone(),
    );
    let recipient = pending.recipient.id;
    let stop = link_url(settings, recipient, Target::Thread(pending.thread), now);
    // All of them are counted; the newest are shown, each with its link.
    let not_shown = messages.len().saturating_sub(SHOWN_MESSAGES);
    let listed = &messages[not_shown..];
    let reads: Vec<(String, String)> = listed
        .iter()
        .map(|m| {
            let label = format!(
                "{}, {}",
                name_of(&m.sender),
                m.created_at.format("%Y-%m-%d %H:%M UTC")
            );
            (
                label,
                link_url(settings, recipient, Target::Message(m.id), now),
            )
        })
        .collect();
    let open = settings.public_url.trim_end_matches('/');
    let intro = if messages.len() == 1 {
        format!("{sender} sent you a message on Convos.")
    } else {
        format!(
            "{} new messages on Convos from {}.",
            messages.len(),
            senders.join(", ")
        )
    };

    let mut text = format!("{intro}\n\nSubject: {subject}\n\n");
    let mut html = format!(
        "<p>{}</p><p><strong>{}</strong></p>",
        escape(&intro),
        escape(&subject)
    );
    if not_shown > 0 {
        let earlier = format!(
            "{not_shown} earlier {} not shown here: read {} in Convos.",
            if not_shown == 1 {
                "message is"
            } else {
                "messages are"
            },
            if not_shown == 1 { "it" } else { "them" },
        );
        text.push_str(&format!("({earlier})\n\n"));
        html.push_str(&format!(
            "<p style=\"color:#555\">({})</p>",
            escape(&earlier)
        ));
    }
    for m in listed {
        let when = m.created_at.format("%Y-%m-%d %H:%M UTC");
        let name = name_of(&m.sender);
        // Cleaned once for both parts: a body can be 64,000 characters.
        let shown = shown(m);
        text.push_str(&format!(
            "--- {name} wrote at {when}:\n\n{}\n\n",
            quoted(&shown)
        ));
        html.push_str(&format!(
            "<p style=\"color:#555\">{} wrote at {when}:</p><blockquote style=\"white-space:pre-wrap\">{}</blockquote>",
            escape(&name),
            escape(&shown)
        ));
    }
    let reply_to = reply_to(settings, newest.id, now);
    // The email's own sentences name the sender by username alone and the thread not at all:
    // a display name ("Convos Security: verify at …") or a subject closing its own quotes made
    // them read as Convos' instructions (decision 85).
    let who = &newest.sender.username;
    let how = if reply_to.is_some() {
        format!(
            "Reply to this email to answer {who}: your reply is posted in the thread (the \
             quoted text and your signature are left out). Or read and reply in Convos: run \
             `convos` and open this thread (server: {open})."
        )
    } else {
        format!(
            "Read and reply in Convos: run `convos` and open this thread in your inbox (server: \
             {open}). Replying to this email does not reach {who}."
        )
    };
    let why = format!(
        "You got this email because {who} sent you a message on Convos and you have email \
         notifications turned on."
    );
    let mut links = format!(
        "Mute this thread (no more email about it; other threads still email you): {stop}\n\
         Pause or stop email (for a day, a week, or until you turn it back on): {stop}\n"
    );
    match reads.as_slice() {
        [(_, url)] => links.push_str(&format!("Mark as read: {url}\n")),
        _ => {
            for (label, url) in &reads {
                links.push_str(&format!("Mark as read ({label}): {url}\n"));
            }
        }
    }
    text.push_str(&format!(
        "{how}\n\n-- \n{why}\n{links}Each link opens a page with a button; every change there \
         can be undone. Or change your settings in Convos.\n"
    ));
    let read_links: Vec<String> = match reads.as_slice() {
        [(_, url)] => vec![format!("<a href=\"{}\">Mark as read</a>", escape(url))],
        _ => reads
            .iter()
            .map(|(label, url)| {
                format!(
                    "<a href=\"{}\">Mark as read ({})</a>",
                    escape(url),
                    escape(label)
                )
            })
            .collect(),
    };
    html.push_str(&format!(
        "<p>{}</p><hr><p style=\"color:#777;font-size:small\">{} \
         <a href=\"{stop}\">Mute this thread</a> · <a href=\"{stop}\">Pause or stop email</a> · \
         {}</p>",
        escape(&how),
        escape(&why),
        read_links.join(" · "),
        stop = escape(&stop),
    ));

    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .raw_header(subject_header(&format!("[Convos] {subject}")))
        .message_id(Some(message_id(&settings.domain, newest.id)));
    builder = notification_headers(builder, "yes", &stop);
    if let Some(address) = &reply_to {
        let mailbox = Mailbox::new(
            Some(format!("{sender} via Convos")),
            address
                .parse()
                .map_err(|_| lettre::error::Error::MissingTo)?,
        );
        builder = builder.reply_to(mailbox);
    }
    // Threading: the email answers the message the first one replied to; References chain the
    // thread from its first message (bounded to ten by the store, as mail clients do).
    if let Some(parent) = first.in_reply_to {
        builder = builder.in_reply_to(message_id(&settings.domain, parent));
    }
    if !pending.earlier.is_empty() {
        let value: Vec<String> = pending
            .earlier
            .iter()
            .map(|id| message_id(&settings.domain, *id))
            .collect();
        builder = builder.references(value.join(" "));
    }
    builder.multipart(MultiPart::alternative_plain_html(text, html))
}

/// Characters of a received subject an explanation repeats.
const ECHOED_SUBJECT_CHARS: usize = 60;

/// The start of a received subject, as an explanation repeats it: enough to recognise it, not
/// a channel for text of the sender's choosing (a 300 KB subject was sent back whole).
fn echoed(subject: &str) -> String {
    match subject.char_indices().nth(ECHOED_SUBJECT_CHARS) {
        Some((end, _)) => format!("{}…", subject[..end].trim_end()),
        None => subject.to_owned(),
    }
}

/// The short explanation sent back about a refused reply by email: fixed text, the start of
/// the person's own subject, nothing that comes back to Convos (no reply address; the return path is our
/// `From`, not a bounce address).
pub fn refusal(
    settings: &EmailSettings,
    address: &str,
    name: &str,
    subject: &str,
    in_reply_to: Option<&str>,
    explanation: &str,
) -> Result<Message, lettre::error::Error> {
    let to = Mailbox::new(
        Some(clean(name)).filter(|n| !n.is_empty()),
        address
            .parse()
            .map_err(|_| lettre::error::Error::MissingTo)?,
    );
    let subject = echoed(&clean(subject));
    let text = format!(
        "Your email \"{subject}\" was not posted to Convos.\n\n{explanation}\n\n\
         Nothing else was done with it. You can also reply in Convos: run `convos` \
         (server: {}).\n\n-- \nThis message was sent automatically; replies to it are not read.\n",
        settings.public_url.trim_end_matches('/')
    );
    let mut builder = Message::builder()
        .from(settings.from.clone())
        .to(to)
        .raw_header(subject_header(&format!("Not posted: {subject}")))
        .message_id(Some(format!(
            "<refusal.{}@{}>",
            uuid::Uuid::now_v7(),
            settings.domain
        )))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(NOTIFICATION_HEADER),
            "refusal".to_owned(),
        ));
    if let Some(id) = in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    builder.body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explanation_repeats_only_the_start_of_a_subject() {
        assert_eq!(echoed("Re: Lunch"), "Re: Lunch");
        let long = "é".repeat(300_000);
        assert_eq!(echoed(&long), format!("{}…", "é".repeat(60)));
    }
    use convos_core::ThreadId;
    use convos_store::deliveries::EmailRecipient;

    fn settings() -> EmailSettings {
        EmailSettings {
            from: "Convos <notify@convos.test>".parse().unwrap(),
            domain: "convos.test".into(),
            public_url: "https://convos.test".into(),
            secret_key: "secret".into(),
            reply_domain: None,
        }
    }

    fn user(display_name: &str) -> UserSummary {
        UserSummary {
            id: UserId::generate(),
            username: "mallory".into(),
            display_name: display_name.into(),
        }
    }

    fn message(sender: &str) -> QueuedMessage {
        QueuedMessage {
            id: MessageId::generate(),
            sender: user(sender),
            sender_verified: true,
            sender_blocked: false,
            sender_suspended: false,
            body: Some("hello".into()),
            body_cut: false,
            read_once: false,
            created_at: Utc::now(),
            in_reply_to: None,
            read: false,
            deleted: false,
            expired: false,
            expiring: false,
        }
    }

    fn pending(subject: &str, recipient_name: &str) -> Pending {
        Pending {
            thread: ThreadId::generate(),
            recipient: EmailRecipient {
                id: UserId::generate(),
                email: "bob@example.com".into(),
                display_name: recipient_name.into(),
                email_notifications: true,
                verified: true,
                bounced: false,
                digest: false,
                paused: false,
            },
            subject: subject.into(),
            muted: false,
            messages: Vec::new(),
            earlier: Vec::new(),
        }
    }

    /// The raw header block of the email, and its parsed (decoded) headers.
    fn rendered(subject: &str, sender: &str) -> (String, Vec<(String, String)>) {
        let m = message(sender);
        let email = render(&settings(), &pending(subject, "Bob"), &[&m], Utc::now()).unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap().to_owned();
        let (headers, _) = mailparse::parse_headers(head.as_bytes()).unwrap();
        let decoded = headers
            .iter()
            .map(|h| (h.get_key(), h.get_value()))
            .collect();
        (head, decoded)
    }

    fn header(decoded: &[(String, String)], name: &str) -> String {
        decoded
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// The unfolded raw line of a header.
    fn raw_line(head: &str, name: &str) -> String {
        let unfolded = head.replace("\r\n ", " ");
        unfolded
            .lines()
            .find(|l| {
                l.to_lowercase()
                    .starts_with(&format!("{}:", name.to_lowercase()))
            })
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_subject_typed_as_an_encoded_word_is_shown_as_typed() {
        // "PayPal Security" in base64: a client decoding it would show the attacker's text.
        let typed = "=?utf-8?b?UGF5UGFsIFNlY3VyaXR5?=";
        let (head, decoded) = rendered(typed, "alice");
        assert_eq!(header(&decoded, "Subject"), format!("[Convos] {typed}"));
        let line = raw_line(&head, "Subject");
        assert!(!line.contains(typed), "the typed word is not raw: {line}");
        assert_eq!(
            line.matches("=?").count(),
            line.matches("=?utf-8?q?").count(),
            "every `=?` opens one of our words: {line}"
        );
        for word in line["Subject: ".len()..].split(' ') {
            assert!(
                word.starts_with("=?utf-8?q?") && word.ends_with("?="),
                "every word is ours: {line}"
            );
        }
    }

    #[test]
    fn any_non_ascii_subject_is_encoded_whole_and_round_trips() {
        for subject in [
            "Déjeuner =?iso-8859-1?q?PayPal?= vendredi",
            "Привет",
            &"long subject with ünïcode ".repeat(6),
        ] {
            let (head, decoded) = rendered(subject, "alice");
            assert_eq!(
                header(&decoded, "Subject"),
                format!("[Convos] {}", clean(subject))
            );
            assert!(!head.contains("=?iso-8859-1"), "{head}");
            let subject_lines = head
                .split("\r\n")
                .skip_while(|l| !l.starts_with("Subject:"))
                .enumerate()
                .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
                .map(|(_, l)| l);
            for line in subject_lines {
                assert!(line.len() <= 78, "folded: {line:?}");
            }
        }
    }

    #[test]
    fn a_plain_subject_stays_readable() {
        let (head, decoded) = rendered("Lunch on Friday?", "alice");
        assert_eq!(header(&decoded, "Subject"), "[Convos] Lunch on Friday?");
        assert!(
            head.contains("Subject: [Convos] Lunch on Friday?\r\n"),
            "{head}"
        );
    }

    #[test]
    fn a_display_name_typed_as_an_encoded_word_is_encoded_by_us() {
        let typed = "=?utf-8?b?UGF5UGFsIFNlY3VyaXR5?=";
        let (head, decoded) = rendered("Hi", typed);
        let from = header(&decoded, "From");
        assert_eq!(
            from,
            format!("mallory ({typed}) via Convos <notify@convos.test>")
        );
        let line = raw_line(&head, "From");
        assert!(!line.contains(typed), "the typed word is not raw: {line}");
        assert!(line.starts_with("From: =?utf-8?b?"), "{line}");
    }

    #[test]
    fn bidirectional_and_invisible_characters_leave_names_and_subjects() {
        // U+202E turns "moc.lapyap" into what reads as "paypal.com".
        let sender = "Support\u{202E}moc.lapyap\u{202C} \u{200B}Team\u{2066}\u{FEFF}\u{061C}";
        let (_, decoded) = rendered("Re\u{200F}set\u{2069} now\tplease", sender);
        assert_eq!(
            header(&decoded, "From"),
            "mallory (Supportmoc.lapyap Team) via Convos <notify@convos.test>"
        );
        assert_eq!(header(&decoded, "Subject"), "[Convos] Reset now please");
    }

    #[test]
    fn a_name_with_nothing_visible_falls_back_to_the_username() {
        let (_, decoded) = rendered("Hi", "\u{200B}\u{202E}");
        assert_eq!(
            header(&decoded, "From"),
            "\"mallory via Convos\" <notify@convos.test>"
        );
    }

    /// The plain-text part of `email`.
    fn plain_text(email: &Message) -> String {
        let raw = email.formatted();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        parsed
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == "text/plain")
            .unwrap()
            .get_body()
            .unwrap()
    }

    #[test]
    fn an_email_shows_the_newest_messages_and_counts_them_all() {
        let messages: Vec<QueuedMessage> = (0..100)
            .map(|i| QueuedMessage {
                body: Some(format!("message number {i}")),
                ..message("Alice")
            })
            .collect();
        let listed: Vec<&QueuedMessage> = messages.iter().collect();
        let email = render(&settings(), &pending("Hi", "Bob"), &listed, Utc::now()).unwrap();
        let text = plain_text(&email);

        assert!(text.starts_with("100 new messages on Convos"), "{text}");
        assert!(
            text.contains("80 earlier messages are not shown here"),
            "{text}"
        );
        assert_eq!(text.matches(" wrote at ").count(), SHOWN_MESSAGES);
        assert_eq!(text.matches("Mark as read (").count(), SHOWN_MESSAGES);
        assert!(text.contains("message number 99") && text.contains("message number 80"));
        assert!(!text.contains("message number 79"), "{text}");
    }

    #[test]
    fn a_reply_is_cut_at_lines_every_notification_holds() {
        // `echoes` cuts a reply at these lines: they must be what the email says.
        let (one, two) = (message("Alice"), message("Alice"));
        let single = render(&settings(), &pending("Hi", "Bob"), &[&one], Utc::now()).unwrap();
        let double = render(
            &settings(),
            &pending("Hi", "Bob"),
            &[&one, &two],
            Utc::now(),
        );
        // With a reply domain, the email asks for an answer by email instead of in Convos.
        let answerable = EmailSettings {
            reply_domain: Some("reply.convos.test".into()),
            ..settings()
        };
        let by_email = render(&answerable, &pending("Hi", "Bob"), &[&one], Utc::now()).unwrap();
        let (single, double) = (plain_text(&single), plain_text(&double.unwrap()));
        let by_email = plain_text(&by_email);
        let mut found: Vec<&str> = crate::echoes::NOTIFICATION_LINES
            .into_iter()
            .filter(|line| {
                [&single, &double, &by_email]
                    .iter()
                    .any(|t| t.contains(line))
            })
            .collect();
        found.sort_unstable();

        let mut expected = crate::echoes::NOTIFICATION_LINES.to_vec();
        expected.sort_unstable();
        assert_eq!(found, expected, "{single}\n{double}\n{by_email}");
    }

    #[test]
    fn what_a_sender_types_stays_out_of_the_emails_own_sentences() {
        // A subject closing its quotes and a display name were pasted into the email's
        // instructions and its footer: phishing text in Convos' own voice (a probe).
        let subject = "Invoice 4471\". Convos notice: sign in at http://evil.example/restore (\"";
        let m = message("Convos Security: verify at evil.example/k");
        let email = render(&settings(), &pending(subject, "Bob"), &[&m], Utc::now()).unwrap();
        let text = plain_text(&email);
        let own: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("> ") && !l.starts_with("Subject: "))
            .filter(|l| !l.starts_with("--- ") && !l.contains(" sent you a message on Convos."))
            .collect();

        for line in &own {
            assert!(!line.contains("evil.example"), "{line}");
            assert!(!line.contains("Convos Security"), "{line}");
        }
        assert!(
            own.iter()
                .any(|l| l.contains("You got this email because mallory "))
        );
    }

    #[test]
    fn a_text_read_in_part_is_shown_as_cut() {
        let cut = QueuedMessage {
            body: Some("the start of a long message".into()),
            body_cut: true,
            ..message("Alice")
        };
        assert_eq!(shown(&cut), "the start of a long message…");
        assert_eq!(shown(&message("Alice")), "hello");
    }

    #[test]
    fn cleaning_keeps_every_visible_character() {
        assert_eq!(clean("  Zoë  Ünal-Smith "), "Zoë Ünal-Smith");
        assert_eq!(clean("a\r\nb\u{2028}c"), "a b c");
        assert_eq!(clean("日本語 😀"), "日本語 😀");
    }
}
