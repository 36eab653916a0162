//! Sending email: SMTP with lettre, or `.eml` files in a folder for development; failures
//! classified as permanent (5xx, not retried) or temporary.

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

    /// Sends one email.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Mailer::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| SendError::from_smtp(&e)),
            Mailer::Files(files) => files
                .send(message)
                .await
                .map(drop)
                .map_err(|e| SendError::Temporary(e.to_string())),
        }
    }
}

/// Why an email was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The mail server refused it for good (a 5xx reply): sending it again cannot help.
    #[error("{text}")]
    Rejected {
        /// The reply code, e.g. 550.
        code: u16,
        /// Whether the reply says the recipient's address itself is bad (the mailbox or domain
        /// does not exist), rather than something about us (authentication, relaying, policy,
        /// content): only then is the address marked hard-bounced.
        address_bounced: bool,
        /// lettre's rendering of the reply, the server's text included.
        text: String,
    },
    /// Worth trying again: a 4xx reply, or no usable connection.
    #[error("{0}")]
    Temporary(String),
}

impl SendError {
    fn from_smtp(error: &lettre::transport::smtp::Error) -> Self {
        let text = error.to_string();
        match error.status() {
            Some(code) if error.is_permanent() => {
                let code = u16::from(code);
                SendError::Rejected {
                    code,
                    address_bounced: is_address_bounce(code, &text),
                    text,
                }
            }
            _ => SendError::Temporary(text),
        }
    }
}

/// Whether a permanent reply blames the recipient's address. With an enhanced status code
/// (RFC 3463) that is `5.1.x` (bad mailbox or domain) or `5.2.1` (mailbox disabled); without
/// one, the basic codes that mean "no such mailbox" (550, 551, 553). `5.7.x` (policy: relay
/// denied, blocked sender) and replies about authentication or syntax are not the address's
/// fault, so a misconfigured relay cannot mark every user bounced.
fn is_address_bounce(code: u16, text: &str) -> bool {
    match enhanced_status(text) {
        Some((5, 1, _)) | Some((5, 2, 1)) => true,
        Some(_) => false,
        None => matches!(code, 550 | 551 | 553),
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
    fn only_replies_about_the_address_count_as_bounces() {
        let bounce = |code, text| is_address_bounce(code, text);
        assert!(bounce(
            550,
            "permanent error (550): 5.1.1 <a@b.example>: User unknown"
        ));
        assert!(bounce(550, "permanent error (550): Mailbox unavailable"));
        assert!(bounce(
            553,
            "permanent error (553): Mailbox name not allowed"
        ));
        assert!(bounce(554, "permanent error (554): 5.1.10 Null MX"));
        assert!(bounce(550, "permanent error (550): 5.2.1 Mailbox disabled"));
        assert!(!bounce(
            550,
            "permanent error (550): 5.7.1 Relay access denied"
        ));
        assert!(!bounce(554, "permanent error (554): Transaction failed"));
        assert!(!bounce(535, "permanent error (535): Invalid credentials"));
        assert!(!bounce(552, "permanent error (552): 5.2.2 Mailbox full"));
    }
}
