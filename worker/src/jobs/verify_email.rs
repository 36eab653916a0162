//! `verify_email`: the one email Convos sends to an address nobody has confirmed yet.
//!
//! It carries a signed link that works for the hours the server chose at sign-up, and nothing
//! a user typed (no display name, no username), so claiming someone's address cannot be used to
//! send them a message. It is skipped, with the reason recorded, when it has become pointless:
//! the account is gone, its address changed or is already verified, or another account
//! verified the address first, or the mailbox is that of someone who blocked the claimant
//! (decision 87: the email would be contact they refused; it still counts). One mailbox gets
//! at most [`PER_ADDRESS_PER_HOUR`] of these an hour and [`PER_ADDRESS_PER_DAY`] a day, however
//! many accounts claim it: each email is counted against its address before it is sent (given
//! back if sending fails), under a lock on the address, so jobs running at once cannot
//! overshoot.

use super::{JobError, JobResult};
use crate::Ctx;
use crate::email::EmailSettings;
use crate::mailer::SendError;
use chrono::{DateTime, Duration, Utc};
use convos_core::UserId;
use convos_core::jobs::VerifyEmailJob;
use convos_store::jobs::{Outcome, Running};
use convos_store::verification::{self, AddressCaps};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use serde::Deserialize;

/// Verification emails one address receives at most in an hour, over all accounts.
pub const PER_ADDRESS_PER_HOUR: i64 = verification::MAILBOX_CAPS.per_hour;

/// Verification emails one address receives at most in a day, over all accounts.
pub const PER_ADDRESS_PER_DAY: i64 = verification::MAILBOX_CAPS.per_day;

const CAPS: AddressCaps = verification::MAILBOX_CAPS;

/// The subject of every verification email.
pub const SUBJECT: &str = "Confirm your email for Convos";

/// The link that confirms `user`'s claim on `email`, issued `issued` and working `hours`.
pub fn link(
    settings: &EmailSettings,
    user: UserId,
    email: &str,
    issued: DateTime<Utc>,
    hours: u64,
) -> String {
    let hours = i64::try_from(hours).unwrap_or(i64::MAX).min(24 * 365);
    let expires = issued + Duration::hours(hours);
    let token =
        convos_core::verification::token(&settings.secret_key, user, email, issued, expires);
    format!(
        "{}/verify/{token}",
        settings.public_url.trim_end_matches('/')
    )
}

/// Builds the verification email to `to` with `link`, valid `hours`.
pub fn render(
    settings: &EmailSettings,
    to: lettre::Address,
    link: &str,
    hours: u64,
) -> Result<Message, lettre::error::Error> {
    let text = format!(
        "Someone asked to use this address for a Convos account.\n\n\
         If it was you, confirm it by opening this link within {hours} hours; the page asks \
         for the username of your account, and confirms only that one:\n\n{link}\n\n\
         If it was not you, ignore this email: Convos sends nothing else to an address until \
         its owner confirms it.\n"
    );
    let html = format!(
        "<p>Someone asked to use this address for a Convos account.</p>\
         <p>If it was you, <a href=\"{link}\">confirm your email</a> within {hours} hours; \
         the page asks for the username of your account, and confirms only that one.</p>\
         <p style=\"color:#777;font-size:small\">If it was not you, ignore this email: Convos \
         sends nothing else to an address until its owner confirms it.</p>",
        link = link.replace('&', "&amp;").replace('"', "&quot;"),
    );
    Message::builder()
        .from(settings.from.clone())
        .to(Mailbox::new(None, to))
        .subject(SUBJECT)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .multipart(MultiPart::alternative_plain_html(text, html))
}

/// Runs a `verify_email` job.
pub async fn run(ctx: &Ctx, job: &Running) -> JobResult {
    let payload: VerifyEmailJob = Deserialize::deserialize(&job.payload)
        .map_err(|e| JobError::Permanent(format!("malformed payload: {e}")))?;
    let Some(state) = verification::state(&ctx.db, payload.recipient_id).await? else {
        return Ok(Outcome::Skipped("skipped: account deleted".into()));
    };
    if !state.email.eq_ignore_ascii_case(&payload.email) {
        return Ok(Outcome::Skipped("skipped: address changed".into()));
    }
    if state.verified && !state.bounced {
        return Ok(Outcome::Skipped("skipped: already verified".into()));
    }
    if state.taken_by_other {
        return Ok(Outcome::Skipped(
            "skipped: verified by another account".into(),
        ));
    }
    let to: lettre::Address = state
        .email
        .parse()
        .map_err(|e| JobError::Permanent(format!("invalid address: {e}")))?;
    let link = link(
        &ctx.email,
        payload.recipient_id,
        &state.email,
        Utc::now(),
        payload.valid_hours,
    );
    let message = render(&ctx.email, to, &link, payload.valid_hours)
        .map_err(|e| JobError::Permanent(format!("could not build the email: {e}")))?;
    let Some(reservation) = verification::reserve_email(&ctx.db, &state.email, CAPS).await? else {
        return Ok(Outcome::Skipped("skipped: address_cap".into()));
    };
    // Counted against the mailbox as if sent, the reservation kept: were it not, the claimant
    // would see the mailbox never fill (`429` from others' claims only) and learn the block.
    if convos_store::blocks::mailbox_owner_blocked(&ctx.db, payload.recipient_id, &state.email)
        .await?
    {
        return Ok(Outcome::Skipped(
            "skipped: the mailbox's owner blocked this account".into(),
        ));
    }
    // Counted per queue by the job metrics; `convos_emails_total` is about notifications.
    let failure = match ctx.mailer.send(message).await {
        Ok(()) => return Ok(Outcome::Done("sent: verification link".into())),
        Err(SendError::Temporary(error)) => JobError::Transient(format!("smtp: {error}")),
        Err(rejected) => JobError::Permanent(format!("smtp: {rejected}")),
    };
    // Not sent, so not counted. Should this fail, the email stays counted for a day: the cap
    // errs towards sending less.
    if let Err(e) = verification::release(&ctx.db, reservation).await {
        tracing::warn!(error = %e, "could not give back a verification email's reservation");
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EmailSettings {
        EmailSettings {
            from: "Convos <notify@convos.test>".parse().unwrap(),
            domain: "convos.test".into(),
            public_url: "https://convos.test/".into(),
            secret_key: "k".repeat(32),
            reply_domain: None,
        }
    }

    #[test]
    fn the_link_is_signed_for_the_address_and_expires_when_promised() {
        let user = UserId::generate();
        let issued = Utc::now();
        let link = link(&settings(), user, "Bob@Example.com", issued, 48);
        let token = link
            .strip_prefix("https://convos.test/verify/")
            .expect("under /verify/ of the public URL");
        let parsed = convos_core::verification::Link::parse(token).unwrap();
        assert_eq!(parsed.user, user);
        assert!(parsed.is_signed_for(&"k".repeat(32), "bob@example.com"));
        assert!(!parsed.is_expired(issued + Duration::hours(47)));
        assert!(parsed.is_expired(issued + Duration::hours(48)));
    }

    #[test]
    fn the_email_carries_the_link_and_nothing_the_claimant_typed() {
        let message = render(
            &settings(),
            "bob@example.com".parse().unwrap(),
            "https://convos.test/verify/t",
            48,
        )
        .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains("Subject: Confirm your email for Convos"),
            "{raw}"
        );
        assert!(
            raw.contains("To: bob@example.com"),
            "no display name: {raw}"
        );
        assert!(raw.contains("From: Convos <notify@convos.test>"), "{raw}");
        assert!(raw.contains("https://convos.test/verify/t"));
        assert!(raw.contains("within 48 hours"));
    }
}
