//! The daily digest email (decision 28): one email listing a reader's unread threads, each
//! with its own reply address, so every thread in it can be answered from the mail client.

use crate::email::{EmailSettings, clean, link_url, notification_headers, reply_to, sender_name};
use chrono::{DateTime, Utc};
use convos_core::email_links::Target;
use convos_store::digests::{Reader, UnreadThread};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn shown(thread: &UnreadThread) -> String {
    if thread.read_once {
        "(A read-once message: open it in Convos.)".into()
    } else if thread.expiring {
        "(An expiring message: open it in Convos before it disappears.)".into()
    } else {
        let excerpt = thread.excerpt.as_deref().unwrap_or_default();
        let flat = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
        let flat = convos_core::text::shown_line(&flat);
        if flat.chars().count() > 200 {
            format!("{}…", flat.chars().take(200).collect::<String>())
        } else {
            flat
        }
    }
}

/// A `mailto:` link that answers `thread` (its newest message's reply address), if replies by
/// email are on.
fn answer_link(
    settings: &EmailSettings,
    thread: &UnreadThread,
    now: DateTime<Utc>,
) -> Option<String> {
    let address = reply_to(settings, thread.newest(), now)?;
    let subject: String = format!("Re: {}", clean(&thread.subject))
        .bytes()
        .map(|b| match b {
            b if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    Some(format!("mailto:{address}?subject={subject}"))
}

/// The digest of `threads` (newest first; `total` unread threads in all) for `reader`.
pub fn render(
    settings: &EmailSettings,
    reader: &Reader,
    threads: &[UnreadThread],
    total: i64,
    now: DateTime<Utc>,
) -> Result<Message, lettre::error::Error> {
    let to = Mailbox::new(
        Some(clean(&reader.display_name)).filter(|n| !n.is_empty()),
        reader
            .email
            .parse()
            .map_err(|_| lettre::error::Error::MissingTo)?,
    );
    let count = if total == 1 {
        "1 unread conversation".to_owned()
    } else {
        format!("{total} unread conversations")
    };
    let open = settings.public_url.trim_end_matches('/');
    let mut text = format!("Your Convos digest: {count}.\n\n");
    let mut html = format!(
        "<p>Your Convos digest: <strong>{}</strong>.</p>",
        escape(&count)
    );
    for thread in threads {
        let subject = clean(&thread.subject);
        let sender = sender_name(&thread.sender_name, &thread.sender_username);
        let unread = if thread.unread == 1 {
            "1 unread".to_owned()
        } else {
            format!("{} unread", thread.unread)
        };
        let when = thread.newest_at.format("%Y-%m-%d %H:%M UTC");
        // Quoted, so that what someone wrote cannot pass for the digest's own lines (its
        // "Answer by email" link).
        text.push_str(&format!(
            "* {subject} — {sender}, {when} ({unread})\n  > {}\n",
            shown(thread)
        ));
        html.push_str(&format!(
            "<h3 style=\"margin-bottom:0\">{}</h3><p style=\"color:#555;margin:0\">{} · {when} · \
             {}</p><blockquote style=\"white-space:pre-wrap\">{}</blockquote>",
            escape(&subject),
            escape(&sender),
            escape(&unread),
            escape(&shown(thread))
        ));
        if let Some(link) = answer_link(settings, thread, now) {
            text.push_str(&format!("  Answer by email: {link}\n"));
            html.push_str(&format!(
                "<p><a href=\"{}\">Answer by email</a></p>",
                escape(&link)
            ));
        }
        text.push('\n');
    }
    let more = total - threads.len() as i64;
    if more > 0 {
        text.push_str(&format!("…and {more} more in Convos.\n\n"));
        html.push_str(&format!("<p>…and {more} more in Convos.</p>"));
    }
    // The account's link: its one-click turns all email off, its page also pauses it.
    let unsubscribe = link_url(settings, reader.id.into(), Target::Account, now);
    let footer = format!(
        "Read everything in Convos: run `convos` (server: {open}). You get this digest once a \
         day because you chose daily email in Convos settings. Pause or stop email: \
         {unsubscribe}"
    );
    text.push_str(&format!("-- \n{footer}\n"));
    html.push_str(&format!(
        "<hr><p style=\"color:#777;font-size:small\">Read everything in Convos. You get this \
         digest once a day because you chose daily email in Convos settings. \
         <a href=\"{}\">Pause or stop email</a>.</p>",
        escape(&unsubscribe)
    ));
    let builder = Message::builder()
        .from(settings.from.clone())
        .to(to)
        // Not `[Convos] …`, the notifications' prefix: a thread named "Daily digest: 1 unread
        // conversation" made a notification whose subject was the digest's (decision 85).
        .subject(format!("Your Convos digest: {count}"))
        .message_id(Some(format!(
            "<digest.{}@{}>",
            uuid::Uuid::now_v7(),
            settings.domain
        )));
    notification_headers(builder, "digest", &unsubscribe)
        .multipart(MultiPart::alternative_plain_html(text, html))
}
