//! Sending email: SMTP with lettre, or `.eml` files in a folder for development.

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

    /// Sends one email; the error text is what the ledger records.
    pub async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Mailer::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Mailer::Files(files) => files
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}
