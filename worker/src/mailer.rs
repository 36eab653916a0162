//! Sending email: SMTP with lettre, or `.eml` files in a folder for development; failures
//! classified as permanent (5xx, not retried, with whose fault it is) or temporary.

use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Where emails go.
#[derive(Clone)]
pub enum Mailer {
    /// An SMTP server (plain, STARTTLS or TLS, per the URL).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// A folder receiving one `.eml` file per email.
    Files(AsyncFileTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mailer::Smtp(_) => "Mailer::Smtp",
            Mailer::Files(_) => "Mailer::Files",
        })
    }
}

impl Mailer {
    /// Builds a mailer from `CONVOS_SMTP_URL`: `smtp://`, `smtps://` (lettre's URL format,
    /// e.g. `?tls=required` for STARTTLS) or `file:///folder`.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path)
                .map_err(|e| anyhow::anyhow!("could not create the mail folder {path}: {e}"))?;
            return Ok(Mailer::Files(AsyncFileTransport::new(path)));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("invalid CONVOS_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        Ok(Mailer::Smtp(transport))
    }

    /// Sends one email, its return path (`MAIL FROM`) taken from its `From`.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        let from = message.envelope().from().cloned();
        self.send_with_return_path(message, from).await
    }

    /// Sends one email with the return path `return_path` (`None`: the null path `<>`, for
    /// mail nothing must answer, as bounces are).
    pub async fn send_with_return_path(
        &self,
        message: Message,
        return_path: Option<lettre::Address>,
    ) -> Result<(), SendError> {
        let to = message.envelope().to().to_vec();
        let envelope = lettre::address::Envelope::new(return_path, to)
            .map_err(|e| SendError::Temporary(format!("no envelope: {e}")))?;
        let raw = message.formatted();
        match self {
            Mailer::Smtp(smtp) => smtp
                .send_raw(&envelope, &raw)
                .await
                .map(drop)
                .map_err(|e| SendError::from_smtp(&e)),
            Mailer::Files(files) => files
                .send_raw(&envelope, &raw)
                .await
                .map(drop)
                .map_err(|e| SendError::Temporary(e.to_string())),
        }
    }
}

/// Why an email was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The mail server refused it for good (a 5xx reply): sending it again as it is cannot help.
    #[error("{text}")]
    Rejected {
        /// The reply code, e.g. 550.
        code: u16,
        /// Whose fault the reply says it is, which decides what becomes of the email.
        refusal: Refusal,
        /// lettre's rendering of the reply, the server's text included.
        text: String,
    },
    /// Worth trying again: a 4xx reply, or no usable connection.
    #[error("{0}")]
    Temporary(String),
}

/// What a permanent refusal says about whose fault it is (decision 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address does not work: an enhanced status `5.1.x` (no such mailbox or domain, bad
    /// syntax, moved, null MX) or `5.2.1` (mailbox disabled). The email fails and the address
    /// is marked hard-bounced.
    BadAddress,
    /// The receiving side refused this email without saying the address is bad: a basic 550,
    /// 551, 552 or 553 with no enhanced status (relays and spam filters say "550 relaying
    /// denied" or "550 rejected as spam" as often as "no such user"), or another `5.2.x` (the
    /// mailbox is full, the message too big for it). The email fails; the address is not
    /// blamed, so neither a sender's content nor a relay without enhanced codes can mark it.
    ThisEmail,
    /// Most likely our side: relaying or authentication refused, policy (`5.7.x`), protocol or
    /// any other permanent reply. An operator's fix makes the same email go through, so it
    /// stays queued and its job is dead, for a retry.
    OurSide,
}

impl SendError {
    fn from_smtp(error: &lettre::transport::smtp::Error) -> Self {
        let text = error.to_string();
        match error.status() {
            Some(code) if error.is_permanent() => {
                let code = u16::from(code);
                SendError::Rejected {
                    code,
                    refusal: classify(code, &text),
                    text,
                }
            }
            _ => SendError::Temporary(text),
        }
    }
}

/// Whose fault a permanent reply is, from its enhanced status code (RFC 3463) when it has one.
/// Only a code that names the address (`5.1.x`, `5.2.1`) blames it; without an enhanced code a
/// reply never does.
fn classify(code: u16, text: &str) -> Refusal {
    match enhanced_status(text) {
        Some((5, 1, _) | (5, 2, 1)) => Refusal::BadAddress,
        Some((5, 2, _)) => Refusal::ThisEmail,
        Some(_) => Refusal::OurSide,
        None if matches!(code, 550..=553) => Refusal::ThisEmail,
        None => Refusal::OurSide,
    }
}

/// The first enhanced status code (`class.subject.detail`) in a reply's text.
fn enhanced_status(text: &str) -> Option<(u16, u16, u16)> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find_map(|word| {
            let mut parts = word.split('.');
            let class = parts.next()?.parse().ok()?;
            let subject = parts.next()?.parse().ok()?;
            let detail = parts.next()?.parse().ok()?;
            (parts.next().is_none()
                && matches!(class, 2 | 4 | 5)
                && subject < 1000
                && detail < 1000)
                .then_some((class, subject, detail))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes_are_found_in_the_reply() {
        assert_eq!(
            enhanced_status("permanent error (550): 5.1.1 <dave@corp.example>: User unknown"),
            Some((5, 1, 1))
        );
        assert_eq!(
            enhanced_status("permanent error (554): 5.7.1 Relay access denied"),
            Some((5, 7, 1))
        );
        assert_eq!(
            enhanced_status("permanent error (550): Mailbox unavailable"),
            None
        );
        assert_eq!(
            enhanced_status("permanent error (550): host 10.0.0.1 said no"),
            None,
            "an address is not a status code"
        );
    }

    #[test]
    fn only_an_enhanced_code_about_the_address_blames_the_address() {
        for (code, text) in [
            (
                550,
                "permanent error (550): 5.1.1 <a@b.example>: User unknown",
            ),
            (
                550,
                "permanent error (550): 5.1.2 Bad destination system address",
            ),
            (
                553,
                "permanent error (553): 5.1.3 Bad destination mailbox address syntax",
            ),
            (551, "permanent error (551): 5.1.6 Mailbox has moved"),
            (554, "permanent error (554): 5.1.10 Null MX"),
            (550, "permanent error (550): 5.2.1 Mailbox disabled"),
        ] {
            assert_eq!(classify(code, text), Refusal::BadAddress, "{text}");
        }
    }

    #[test]
    fn a_basic_code_alone_fails_the_email_without_blaming_the_address() {
        for (code, text) in [
            (550, "permanent error (550): Mailbox unavailable"),
            (550, "permanent error (550): relaying denied"),
            (550, "permanent error (550): Message rejected as spam"),
            (551, "permanent error (551): User not local"),
            (552, "permanent error (552): Exceeded storage allocation"),
            (553, "permanent error (553): Mailbox name not allowed"),
            (552, "permanent error (552): 5.2.2 Mailbox full"),
            (
                552,
                "permanent error (552): 5.2.3 Message too big for this mailbox",
            ),
        ] {
            assert_eq!(classify(code, text), Refusal::ThisEmail, "{text}");
        }
    }

    #[test]
    fn refusals_about_our_relay_or_policy_keep_the_email_for_a_retry() {
        for (code, text) in [
            (554, "permanent error (554): 5.7.1 Relay access denied"),
            (550, "permanent error (550): 5.7.1 Message rejected as spam"),
            (530, "permanent error (530): 5.7.0 Authentication required"),
            (535, "permanent error (535): Invalid credentials"),
            (554, "permanent error (554): Transaction failed"),
            (
                501,
                "permanent error (501): 5.5.4 Syntax error in parameters",
            ),
        ] {
            assert_eq!(classify(code, text), Refusal::OurSide, "{text}");
        }
    }
}
