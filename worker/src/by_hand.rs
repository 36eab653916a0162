//! Email by hand, for development and operators: `convos-worker reply <notification.eml>
//! <text>` answers a notification as its recipient's mail client would, and `convos-worker
//! send-eml <file>` hands any message to an SMTP listener, as the reply domain's MX would.

use anyhow::{Context, bail};
use convos_mail::parsed::parse;
use lettre::AsyncTransport;
use std::net::SocketAddr;

/// A reply to the notification `raw`, as a mail client writes it: from the notification's
/// recipient to its `Reply-To`, threaded under it, `text` on top of the quoted original.
/// Returns the envelope (from, to) and the message.
pub fn answer(raw: &[u8], text: &str) -> anyhow::Result<(String, String, Vec<u8>)> {
    let notification = parse(raw).context("not an email")?;
    let reply_to = notification
        .header("Reply-To")
        .and_then(|value| mailparse::addrparse(value).ok())
        .and_then(|list| list.extract_single_info())
        .map(|single| single.addr)
        .context("the email has no Reply-To: is CONVOS_REPLY_DOMAIN set for the worker?")?;
    let Some(from) = notification.recipients.first().cloned() else {
        bail!("the email has no recipient to answer as");
    };
    let subject = notification.subject.trim_start_matches("Re: ").to_owned();
    let quoted: String = notification
        .text
        .lines()
        .map(|line| format!("> {line}\r\n"))
        .collect();
    let message_id = notification.message_id.clone().unwrap_or_default();
    let date = chrono::Utc::now().to_rfc2822();
    let body = format!(
        "From: <{from}>\r\nTo: <{reply_to}>\r\nSubject: Re: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{}@convos-worker.by-hand>\r\nIn-Reply-To: <{message_id}>\r\n\
         References: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {}\r\n\r\nOn {date}, Convos wrote:\r\n{quoted}",
        uuid::Uuid::now_v7(),
        text.replace('\n', "\r\n"),
    );
    Ok((from, reply_to, body.into_bytes()))
}

/// Sends `raw` to the SMTP server at `smtp` with the envelope `from` → `to`.
pub async fn send(smtp: SocketAddr, from: &str, to: &str, raw: &[u8]) -> anyhow::Result<()> {
    let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
        smtp.ip().to_string(),
    )
    .port(smtp.port())
    .build();
    let from = if from.is_empty() {
        None
    } else {
        Some(from.parse().context("the sender is not an address")?)
    };
    let envelope = lettre::address::Envelope::new(
        from,
        vec![to.parse().context("the recipient is not an address")?],
    )?;
    transport
        .send_raw(&envelope, raw)
        .await
        .with_context(|| format!("the SMTP listener at {smtp} did not take the message"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_goes_from_the_recipient_to_the_reply_address_under_the_notification() {
        let notification = b"From: \"alice via Convos\" <notify@convos.test>\r\n\
To: Bob <bob@example.com>\r\n\
Reply-To: \"alice via Convos\" <reply+abc@reply.convos.test>\r\n\
Subject: [Convos] Lunch?\r\n\
Message-ID: <m1@convos.test>\r\n\
Content-Type: text/plain\r\n\r\nAre you free?\r\n";
        let (from, to, raw) = answer(notification, "Yes.").unwrap();
        assert_eq!(from, "bob@example.com");
        assert_eq!(to, "reply+abc@reply.convos.test");
        let reply = parse(&raw).unwrap();
        assert_eq!(reply.in_reply_to, ["m1@convos.test"]);
        assert_eq!(reply.subject, "Re: [Convos] Lunch?");
        assert_eq!(convos_mail::quotes::new_text(&reply.text), "Yes.");
    }
}
