//! `digest_email`: a reader's daily digest, if they still want one, their address takes mail,
//! and something is unread (decision 28). Nothing is sent when nothing is unread.

use super::{JobError, JobResult};
use crate::mailer::{Refusal, SendError};
use crate::{Ctx, digest, email};
use convos_core::jobs::DigestEmailJob;
use convos_store::jobs::{Outcome, Running};
use convos_store::{deliveries, digests};
use serde::Deserialize;

/// Runs a `digest_email` job.
pub async fn run(ctx: &Ctx, job: &Running) -> JobResult {
    let payload: DigestEmailJob = Deserialize::deserialize(&job.payload)
        .map_err(|e| JobError::Permanent(format!("malformed payload: {e}")))?;
    let Some(reader) = digests::reader(&ctx.db, payload.recipient_id).await? else {
        return Ok(Outcome::Skipped("the account is gone".into()));
    };
    if !reader.wanted {
        return Ok(Outcome::Skipped(
            "not wanted now: email off, not in digest mode, or paused".into(),
        ));
    }
    if !reader.deliverable {
        return Ok(Outcome::Skipped("address unverified or bounced".into()));
    }
    let (threads, total) = digests::unread_threads(&ctx.db, payload.recipient_id).await?;
    if threads.is_empty() {
        return Ok(Outcome::Skipped("nothing unread".into()));
    }
    let now = chrono::Utc::now();
    let message = digest::render(&ctx.email, &reader, &threads, total, now)
        .map_err(|e| JobError::Permanent(format!("could not build the digest: {e}")))?;
    let return_path = email::return_path(&ctx.email, threads[0].newest(), now);
    match ctx.mailer.send_with_return_path(message, return_path).await {
        Ok(()) => {
            ctx.metrics
                .emails
                .with_label_values(&["sent", "digest"])
                .inc();
            Ok(Outcome::Done(format!(
                "sent: digest of {} thread(s)",
                threads.len()
            )))
        }
        Err(SendError::Temporary(e)) => Err(JobError::Transient(format!("smtp: {e}"))),
        Err(SendError::Rejected { refusal, text, .. }) => {
            // The receiving server says the address does not work: no email to it until its
            // owner verifies it again, as for a per-message email (decision 18); a digest
            // refused so was tried again every day.
            // Written after the mail server answered: waits out a lock rather than give up, as
            // the per-message email's writes do (decision 82).
            if refusal == Refusal::BadAddress
                && super::settled(|| {
                    deliveries::mark_bounced(&ctx.db, payload.recipient_id, &reader.email)
                })
                .await?
            {
                tracing::info!(user.id = %payload.recipient_id, "address hard-bounced (digest); no email until verified again");
            }
            Err(JobError::Permanent(format!("smtp: {text}")))
        }
    }
}
