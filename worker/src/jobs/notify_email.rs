//! `notify_email`: one email about the new messages of a thread, if it is still useful.
//!
//! At send time the job re-reads the state and decides per message, with a recorded reason, in
//! the pure [`decide`]; the messages still worth telling about share one email. A permanent
//! SMTP rejection is not retried: one about the recipient fails them at once and, if it blames
//! the address, marks it hard-bounced; one about our side keeps them queued for an operator's
//! retry of the dead job; a temporary failure is retried by the ledger (decision 18).

use super::{Irrevocable, JobError, JobResult};
use crate::Ctx;
use crate::email;
use crate::mailer::{Refusal, SendError};
use convos_core::jobs::NotifyEmailJob;
use convos_store::deliveries::{self, QueuedMessage, Reserved};
use convos_store::jobs::{Outcome, Running};
use serde::Deserialize;

/// Why no email is sent about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The recipient has not proved they own the address: nothing but the verification email
    /// goes there.
    Unverified,
    /// The address was rejected for good; nothing goes there until its owner verifies it again.
    Bounced,
    /// The sender has not proved their own address: what an account anyone can make writes is
    /// not emailed (it still arrives in the app).
    SenderUnverified,
    /// The recipient read it within the delay window.
    AlreadyRead,
    /// The recipient deleted it, or it was a read-once message already opened.
    Deleted,
    /// It expired.
    Expired,
    /// The recipient muted the thread.
    Muted,
    /// The recipient turned email notifications off.
    EmailOff,
    /// The recipient gets a daily digest instead; it lists the message if still unread then.
    Digest,
    /// The recipient paused email notifications for a while (from the page linked in every
    /// email, decision 27).
    Paused,
    /// The recipient already got the day's maximum of emails.
    DailyCap,
    /// The recipient already got the day's maximum of emails about this sender's messages.
    SenderDailyCap,
    /// The recipient blocked the sender after it was sent (decision 87).
    Blocked,
    /// Operators suspended the sender after it was sent (decision 88).
    SenderSuspended,
}

impl SkipReason {
    /// The recorded reason.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unverified => "unverified",
            SkipReason::Bounced => "bounced",
            SkipReason::SenderUnverified => "sender_unverified",
            SkipReason::AlreadyRead => "already_read",
            SkipReason::Deleted => "deleted",
            SkipReason::Expired => "expired",
            SkipReason::Muted => "muted",
            SkipReason::EmailOff => "email_off",
            SkipReason::Digest => "digest",
            SkipReason::Paused => "paused",
            SkipReason::DailyCap => "daily_cap",
            SkipReason::SenderDailyCap => "sender_daily_cap",
            SkipReason::Blocked => "blocked",
            SkipReason::SenderSuspended => "sender_suspended",
        }
    }
}

/// What is known about one message when its email would go out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The recipient's address is not verified.
    pub unverified: bool,
    /// The recipient's address hard-bounced since it was verified.
    pub bounced: bool,
    /// The sender's address is not verified.
    pub sender_unverified: bool,
    /// The recipient blocked the sender.
    pub sender_blocked: bool,
    /// Operators suspended the sender.
    pub sender_suspended: bool,
    /// The recipient read it.
    pub read: bool,
    /// The recipient deleted it (or it was consumed).
    pub deleted: bool,
    /// It expired.
    pub expired: bool,
    /// The thread is muted by the recipient.
    pub muted: bool,
    /// The recipient turned email off.
    pub email_off: bool,
    /// The recipient chose a daily digest.
    pub digest: bool,
    /// The recipient paused email, and the pause is not over.
    pub paused: bool,
}

/// Send, or skip with a reason. The first reason that applies wins: the address first (nothing
/// goes to an address not known to work, whatever else holds), then the sender (nothing an
/// unproven account wrote goes out), then the most specific.
pub fn decide(facts: &Facts) -> Result<(), SkipReason> {
    if facts.unverified {
        Err(SkipReason::Unverified)
    } else if facts.bounced {
        Err(SkipReason::Bounced)
    } else if facts.sender_unverified {
        Err(SkipReason::SenderUnverified)
    } else if facts.sender_suspended {
        Err(SkipReason::SenderSuspended)
    } else if facts.sender_blocked {
        Err(SkipReason::Blocked)
    } else if facts.deleted {
        Err(SkipReason::Deleted)
    } else if facts.expired {
        Err(SkipReason::Expired)
    } else if facts.read {
        Err(SkipReason::AlreadyRead)
    } else if facts.email_off {
        Err(SkipReason::EmailOff)
    } else if facts.paused {
        Err(SkipReason::Paused)
    } else if facts.muted {
        Err(SkipReason::Muted)
    } else if facts.digest {
        Err(SkipReason::Digest)
    } else {
        Ok(())
    }
}

/// Runs a `notify_email` job. Once the SMTP server has answered, the run is `irrevocable`: what
/// it answered is recorded even past the job's time limit.
pub async fn run(ctx: &Ctx, job: &Running, irrevocable: &Irrevocable) -> JobResult {
    let payload: NotifyEmailJob = Deserialize::deserialize(&job.payload)
        .map_err(|e| JobError::Permanent(format!("malformed payload: {e}")))?;
    let stale_after = ctx.settings.deadline().as_secs_f64();
    let pending = deliveries::pending(
        &ctx.db,
        payload.thread_id,
        payload.recipient_id,
        job.id,
        stale_after,
    )
    .await?;
    let Some(pending) = pending else {
        return Ok(Outcome::Skipped("nothing queued".into()));
    };
    let mut send: Vec<&QueuedMessage> = Vec::new();
    let mut skipped = Vec::new();
    for message in &pending.messages {
        let facts = Facts {
            unverified: !pending.recipient.verified,
            bounced: pending.recipient.bounced,
            sender_unverified: !message.sender_verified,
            sender_blocked: message.sender_blocked,
            sender_suspended: message.sender_suspended,
            read: message.read,
            deleted: message.deleted,
            expired: message.expired,
            muted: pending.muted,
            email_off: !pending.recipient.email_notifications,
            digest: pending.recipient.digest,
            paused: pending.recipient.paused,
        };
        match decide(&facts) {
            Ok(()) => send.push(message),
            Err(reason) => skipped.push((message.id, reason)),
        }
    }
    // One statement per reason, not per message: a thread may have thousands queued.
    let mut reasons: Vec<SkipReason> = skipped.iter().map(|(_, reason)| *reason).collect();
    reasons.sort_unstable_by_key(|r| r.as_str());
    reasons.dedup();
    for reason in reasons {
        let messages: Vec<_> = skipped
            .iter()
            .filter(|(_, r)| *r == reason)
            .map(|(message, _)| *message)
            .collect();
        skip(ctx, &messages, pending.recipient.id, reason).await?;
    }
    if send.is_empty() {
        let reasons: Vec<&str> = skipped.iter().map(|(_, r)| r.as_str()).collect();
        return Ok(Outcome::Skipped(format!("skipped: {}", reasons.join(", "))));
    }
    let ids: Vec<_> = send.iter().map(|m| m.id).collect();
    let recipient = pending.recipient.id;
    let message = match email::render(&ctx.email, &pending, &send, chrono::Utc::now()) {
        Ok(message) => message,
        Err(e) => {
            // Sending again cannot help; the deliveries must not wait for ever.
            let error = format!("could not build the email: {e}");
            count_failed(ctx, "invalid_address", ids.len());
            deliveries::record(
                &ctx.db,
                &ids,
                recipient,
                "failed",
                "invalid_address",
                Some(&error),
            )
            .await?;
            return Err(JobError::Permanent(error));
        }
    };
    let newest = ids[ids.len() - 1];
    // The daily caps come last, after every other reason (a message read is `already_read`,
    // not `daily_cap`): counted under a lock on the recipient, the email with them, before it
    // goes (decision 91).
    let caps = (
        ctx.settings.email_daily_cap,
        ctx.settings.email_daily_cap_per_sender,
    );
    let reserved = deliveries::reserve(&ctx.db, payload.thread_id, recipient, &ids, caps).await?;
    let reserved = match reserved {
        Reserved::Email(reserved) => reserved,
        Reserved::DailyCap | Reserved::SenderDailyCap => {
            let reason = if reserved == Reserved::DailyCap {
                SkipReason::DailyCap
            } else {
                SkipReason::SenderDailyCap
            };
            skip(ctx, &ids, recipient, reason).await?;
            return Ok(Outcome::Skipped(format!("skipped: {}", reason.as_str())));
        }
    };
    let return_path = email::return_path(&ctx.email, newest, chrono::Utc::now());
    let sent = ctx.mailer.send_with_return_path(message, return_path).await;
    irrevocable.mark();
    if sent.is_err() {
        // Nothing went out, so nothing counts against the recipient's day. Best effort: what
        // the mail server answered must still be recorded, and a place not given back errs
        // towards sending less.
        if let Err(e) = super::settled(|| deliveries::unreserve(&ctx.db, reserved)).await {
            tracing::warn!(error = %e, "could not give back an email's place in the day's caps");
        }
    }
    match sent {
        Ok(()) => {}
        Err(SendError::Rejected {
            refusal: Refusal::OurSide,
            text,
            ..
        }) => {
            // Our relay or our configuration refused it: the same email goes through once an
            // operator fixes that and retries the dead job, so it stays queued (the sender sees
            // it pending) and lets go of its claim for that retry, or a later job, to take.
            let error = format!("smtp: {text}");
            super::settled(|| {
                deliveries::note_error(&ctx.db, job.id, &ids, recipient, "rejected", &error)
            })
            .await?;
            super::settled(|| deliveries::release(&ctx.db, job.id, payload.thread_id, recipient))
                .await?;
            return Err(JobError::Permanent(error));
        }
        Err(SendError::Rejected { refusal, text, .. }) => {
            let error = format!("smtp: {text}");
            count_failed(ctx, "rejected", ids.len());
            super::settled(|| {
                deliveries::record(&ctx.db, &ids, recipient, "failed", "rejected", Some(&error))
            })
            .await?;
            if refusal == Refusal::BadAddress
                && super::settled(|| {
                    deliveries::mark_bounced(&ctx.db, recipient, &pending.recipient.email)
                })
                .await?
            {
                tracing::info!(user.id = %recipient, "address hard-bounced; no email until verified again");
            }
            return Err(JobError::Permanent(error));
        }
        Err(SendError::Temporary(text)) => {
            let error = format!("smtp: {text}");
            if job.is_last_attempt() {
                count_failed(ctx, "temporary_failure", ids.len());
                super::settled(|| {
                    deliveries::record(
                        &ctx.db,
                        &ids,
                        recipient,
                        "failed",
                        "temporary_failure",
                        Some(&error),
                    )
                })
                .await?;
            } else {
                super::settled(|| {
                    deliveries::note_error(
                        &ctx.db,
                        job.id,
                        &ids,
                        recipient,
                        "temporary_failure",
                        &error,
                    )
                })
                .await?;
                super::settled(|| {
                    deliveries::release(&ctx.db, job.id, payload.thread_id, recipient)
                })
                .await?;
            }
            return Err(JobError::Transient(error));
        }
    }
    ctx.metrics
        .emails
        .with_label_values(&["sent", ""])
        .inc_by(ids.len() as u64);
    super::settled(|| deliveries::record_sent(&ctx.db, reserved, recipient, &ids)).await?;
    Ok(Outcome::Done(format!(
        "sent: {} message(s) in one email",
        ids.len()
    )))
}

/// Records `messages` to `recipient` skipped for `reason`, and counts them.
async fn skip(
    ctx: &Ctx,
    messages: &[convos_core::MessageId],
    recipient: convos_core::UserId,
    reason: SkipReason,
) -> Result<(), JobError> {
    ctx.metrics
        .emails
        .with_label_values(&["skipped", reason.as_str()])
        .inc_by(messages.len() as u64);
    deliveries::record(
        &ctx.db,
        messages,
        recipient,
        "skipped",
        reason.as_str(),
        None,
    )
    .await?;
    Ok(())
}

fn count_failed(ctx: &Ctx, reason: &str, messages: usize) {
    ctx.metrics
        .emails
        .with_label_values(&["failed", reason])
        .inc_by(messages as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unread_visible_message_is_sent() {
        assert_eq!(decide(&Facts::default()), Ok(()));
    }

    #[test]
    fn every_reason_to_skip_is_recorded() {
        let cases = [
            (
                Facts {
                    unverified: true,
                    ..Facts::default()
                },
                SkipReason::Unverified,
            ),
            (
                Facts {
                    bounced: true,
                    ..Facts::default()
                },
                SkipReason::Bounced,
            ),
            (
                Facts {
                    sender_unverified: true,
                    ..Facts::default()
                },
                SkipReason::SenderUnverified,
            ),
            (
                Facts {
                    read: true,
                    ..Facts::default()
                },
                SkipReason::AlreadyRead,
            ),
            (
                Facts {
                    deleted: true,
                    ..Facts::default()
                },
                SkipReason::Deleted,
            ),
            (
                Facts {
                    expired: true,
                    ..Facts::default()
                },
                SkipReason::Expired,
            ),
            (
                Facts {
                    muted: true,
                    ..Facts::default()
                },
                SkipReason::Muted,
            ),
            (
                Facts {
                    email_off: true,
                    ..Facts::default()
                },
                SkipReason::EmailOff,
            ),
            (
                Facts {
                    digest: true,
                    ..Facts::default()
                },
                SkipReason::Digest,
            ),
            (
                Facts {
                    paused: true,
                    ..Facts::default()
                },
                SkipReason::Paused,
            ),
        ];
        for (facts, reason) in cases {
            assert_eq!(decide(&facts), Err(reason), "{facts:?}");
        }
    }

    #[test]
    fn the_most_specific_reason_wins() {
        let facts = Facts {
            read: true,
            muted: true,
            ..Facts::default()
        };
        assert_eq!(decide(&facts), Err(SkipReason::AlreadyRead));
        let facts = Facts {
            deleted: true,
            read: true,
            ..Facts::default()
        };
        assert_eq!(decide(&facts), Err(SkipReason::Deleted));
    }

    #[test]
    fn a_pause_skips_after_the_address_checks_and_before_the_thread() {
        let paused = Facts {
            paused: true,
            muted: true,
            ..Facts::default()
        };
        assert_eq!(decide(&paused), Err(SkipReason::Paused));
        let off_too = Facts {
            email_off: true,
            ..paused
        };
        assert_eq!(
            decide(&off_too),
            Err(SkipReason::EmailOff),
            "off outlasts a pause"
        );
        let unverified = Facts {
            unverified: true,
            ..paused
        };
        assert_eq!(decide(&unverified), Err(SkipReason::Unverified));
        let bounced = Facts {
            bounced: true,
            ..paused
        };
        assert_eq!(decide(&bounced), Err(SkipReason::Bounced));
    }

    #[test]
    fn the_address_is_checked_before_anything_about_the_recipient() {
        let everything = Facts {
            unverified: true,
            bounced: true,
            sender_unverified: true,
            sender_blocked: true,
            sender_suspended: true,
            read: true,
            deleted: true,
            expired: true,
            muted: true,
            email_off: true,
            digest: true,
            paused: true,
        };
        assert_eq!(decide(&everything), Err(SkipReason::Unverified));
        let verified_but_bounced = Facts {
            unverified: false,
            ..everything
        };
        assert_eq!(decide(&verified_but_bounced), Err(SkipReason::Bounced));
    }
}
