//! The notification email: plain text and HTML, threading headers, one-click unsubscribe.

use convos_core::MessageId;
use convos_store::deliveries::{Pending, QueuedMessage};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

/// Characters of each message shown in an email.
const EXCERPT: usize = 500;

/// What every email needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct EmailSettings {
    /// `From:` address (with display name).
    pub from: Mailbox,
    /// Domain of `Message-ID`s.
    pub domain: String,
    /// Base URL for links.
    pub public_url: String,
    /// Signs unsubscribe links.
    pub secret_key: String,
}

/// The stable `Message-ID` of the notification about `message`.
pub fn message_id(domain: &str, message: MessageId) -> String {
    format!("<{message}@{domain}>")
}

/// The one-click unsubscribe URL for a recipient.
pub fn unsubscribe_url(settings: &EmailSettings, user: convos_core::UserId) -> String {
    let token = convos_core::unsubscribe::token(&settings.secret_key, user);
    format!(
        "{}/api/v1/unsubscribe/{token}",
        settings.public_url.trim_end_matches('/')
    )
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
    match &message.body {
        Some(body) if body.chars().count() > EXCERPT => {
            format!("{}…", body.chars().take(EXCERPT).collect::<String>())
        }
        Some(body) => body.clone(),
        None => "(no longer available)".into(),
    }
}

/// Builds the email about `messages` (oldest first) of `pending`'s thread.
pub fn render(
    settings: &EmailSettings,
    pending: &Pending,
    messages: &[&QueuedMessage],
) -> Result<Message, lettre::error::Error> {
    let newest = messages[messages.len() - 1];
    let first = messages[0];
    let senders: Vec<&str> = {
        let mut names: Vec<&str> = messages
            .iter()
            .map(|m| m.sender.display_name.as_str())
            .collect();
        names.dedup();
        names
    };
    let to = Mailbox::new(
        Some(pending.recipient.display_name.clone()),
        pending
            .recipient
            .email
            .parse()
            .map_err(|_| lettre::error::Error::MissingTo)?,
    );
    let from = Mailbox::new(
        Some(format!("{} via Convos", newest.sender.display_name)),
        settings.from.email.clone(),
    );
    let unsubscribe = unsubscribe_url(settings, pending.recipient.id);
    let open = settings.public_url.trim_end_matches('/');
    let intro = if messages.len() == 1 {
        format!(
            "{} sent you a message on Convos.",
            newest.sender.display_name
        )
    } else {
        format!(
            "{} new messages on Convos from {}.",
            messages.len(),
            senders.join(", ")
        )
    };

    let mut text = format!("{intro}\n\nSubject: {}\n\n", pending.subject);
    let mut html = format!(
        "<p>{}</p><p><strong>{}</strong></p>",
        escape(&intro),
        escape(&pending.subject)
    );
    for m in messages {
        let when = m.created_at.format("%Y-%m-%d %H:%M UTC");
        text.push_str(&format!(
            "--- {} ({}) wrote at {when}:\n\n{}\n\n",
            m.sender.display_name,
            m.sender.username,
            shown(m)
        ));
        html.push_str(&format!(
            "<p style=\"color:#555\">{} ({}) wrote at {when}:</p><blockquote style=\"white-space:pre-wrap\">{}</blockquote>",
            escape(&m.sender.display_name),
            escape(&m.sender.username),
            escape(&shown(m))
        ));
    }
    let how = format!(
        "Read and reply in Convos: run `convos` and open the thread \"{}\" in your inbox \
         (server: {open}). Replying to this email does not reach {}.",
        pending.subject, newest.sender.display_name
    );
    let why = format!(
        "You got this email because {} sent you a message on Convos and you have email \
         notifications turned on. Stop these emails with one click: {unsubscribe} (or turn \
         them off in Convos settings).",
        newest.sender.display_name
    );
    text.push_str(&format!("{how}\n\n-- \n{why}\n"));
    html.push_str(&format!(
        "<p>{}</p><hr><p style=\"color:#777;font-size:small\">You got this email because {} sent \
         you a message on Convos and you have email notifications turned on. \
         <a href=\"{}\">Unsubscribe with one click</a> or turn them off in Convos settings.</p>",
        escape(&how),
        escape(&newest.sender.display_name),
        escape(&unsubscribe)
    ));

    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(format!("[Convos] {}", pending.subject))
        .message_id(Some(message_id(&settings.domain, newest.id)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{unsubscribe}>"),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
    // Threading: the email answers the message the first one replied to; References chain the
    // thread from its first message (bounded, as mail clients do).
    if let Some(parent) = first.in_reply_to {
        builder = builder.in_reply_to(message_id(&settings.domain, parent));
    }
    let mut refs: Vec<MessageId> = pending.earlier.clone();
    if refs.len() > 10 {
        let root = refs[0];
        refs = std::iter::once(root)
            .chain(refs[refs.len() - 9..].iter().copied())
            .collect();
    }
    if !refs.is_empty() {
        let value: Vec<String> = refs
            .iter()
            .map(|id| message_id(&settings.domain, *id))
            .collect();
        builder = builder.references(value.join(" "));
    }
    builder.multipart(MultiPart::alternative_plain_html(text, html))
}
