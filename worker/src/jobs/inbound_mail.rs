//! `inbound_mail`: what a received email becomes (decision 26). A reply from the address's
//! owner is posted into its thread under every rule the API applies; a bounce or complaint
//! stops email to an address; anything else is refused with a recorded reason, and a person
//! who can be told (the verified owner of the sending address, never a machine) gets one short
//! explanation.
//!
//! The job runs again after a crash at any point and ends the same: the post is idempotent by
//! the received `Message-ID`, the decision is written once, and the explanation is claimed
//! before it is sent.

use super::{JobError, JobResult};
use crate::mailer::SendError;
use crate::{Ctx, email};
use chrono::{DateTime, Utc};
use convos_core::api::NewContent;
use convos_core::domain::{Body, IdempotencyKey};
use convos_core::jobs::InboundMailJob;
use convos_core::reply_address::{self, Purpose};
use convos_core::{MessageId, ThreadId, UserId};
use convos_mail::autoreply;
use convos_mail::parsed::Parsed;
use convos_mail::reports::{self, Report};
use convos_plumbing::rate_limit::{self, SendDecision, Unsent};
use convos_store::StoreError;
use convos_store::deliveries;
use convos_store::inbound::{self, Decided, Inbound};
use convos_store::jobs::{NotifySettings, Outcome, Running};
use convos_store::messages::{self, Created, Idempotency};
use convos_store::threads;
use convos_store::written::Written;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

/// Explanations one person gets per hour at most, whatever they send.
const ANSWERS_PER_HOUR: i64 = 5;

/// Soft bounces within 30 days (this one included) that suppress an address as a hard bounce
/// does: a mailbox full for weeks, or a server that keeps deferring us, takes no mail.
const SOFT_BOUNCES_TO_SUPPRESS: i64 = 5;

/// Why a received email was not posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a readable email.
    Unreadable,
    /// None of its addresses is one of ours.
    NotForUs,
    /// An address of ours, but forged, mistyped or for another purpose.
    UnknownToken,
    /// The address's owner revoked it.
    Revoked,
    /// `From` is not the address's owner (their verified address).
    WrongSender,
    /// Sent by a machine (auto-reply, bulk, a bounce at a reply address, our own mail).
    Automatic(autoreply::Automatic),
    /// This email was already posted.
    Duplicate,
    /// Nothing new in it once the quote and signature are gone.
    Empty,
    /// Its text's transfer encoding is broken.
    Undecodable,
    /// Longer than a message may be.
    TooLong,
    /// The owner is sending faster than the API allows.
    RateLimited,
    /// The thread is gone for the owner (deleted, expired, never theirs).
    ThreadGone,
    /// The other participant blocked the owner (decision 87).
    Blocked,
    /// Operators suspended the owner's account (decision 88).
    Suspended,
}

impl Refusal {
    /// The recorded reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unreadable => "unreadable",
            Refusal::NotForUs => "not_for_us",
            Refusal::UnknownToken => "unknown_token",
            Refusal::Revoked => "revoked",
            Refusal::WrongSender => "wrong_sender",
            Refusal::Automatic(a) => a.as_str(),
            Refusal::Duplicate => "duplicate",
            Refusal::Empty => "empty",
            Refusal::Undecodable => "undecodable",
            Refusal::TooLong => "too_long",
            Refusal::RateLimited => "rate_limited",
            Refusal::ThreadGone => "thread_gone",
            Refusal::Blocked => "blocked",
            Refusal::Suspended => "suspended",
        }
    }

    /// What the person is told, if they are told anything: never about machines' mail or
    /// duplicates (an answer could start a loop, and the first copy was handled), and never
    /// when the reply address and its owner's `From` did not both check out: `From` is
    /// anyone's to write, so answering it let a stranger make Convos email any user, five times
    /// an hour, a subject of their choosing (decision 52).
    pub fn explanation(self) -> Option<&'static str> {
        Some(match self {
            Refusal::Unreadable
            | Refusal::NotForUs
            | Refusal::Automatic(_)
            | Refusal::Duplicate
            | Refusal::UnknownToken
            | Refusal::WrongSender => return None,
            Refusal::Revoked => {
                "The reply address of that email was revoked. Reply in Convos, or to a newer \
                 notification."
            }
            Refusal::Suspended => "Your Convos account is suspended, so nothing was posted.",
            Refusal::Empty => {
                "Once the quoted message and signature were removed, nothing was left to post."
            }
            Refusal::Undecodable => {
                "The text of that email could not be decoded (its encoding is broken), so \
                 nothing was posted. Send it again, or reply in Convos."
            }
            Refusal::TooLong => "A message may hold at most 64,000 characters.",
            Refusal::RateLimited => {
                "You have sent more than Convos allows for now (messages a minute, or text a \
                 day). Send it again later."
            }
            Refusal::ThreadGone => {
                "That conversation is no longer available to you (it was deleted or has expired)."
            }
            Refusal::Blocked => "That person does not take messages from you.",
        })
    }
}

/// Runs an `inbound_mail` job.
pub async fn run(ctx: &Ctx, job: &Running) -> JobResult {
    let payload: InboundMailJob = Deserialize::deserialize(&job.payload)
        .map_err(|e| JobError::Permanent(format!("malformed payload: {e}")))?;
    let Some(row) = inbound::load(&ctx.db, payload.inbound_id).await? else {
        return Ok(Outcome::Skipped("the received message is gone".into()));
    };
    if row.status != "received" {
        // Decided by an earlier attempt that did not finish: only its explanation may be due.
        answer_if_due(ctx, &row).await?;
        return Ok(Outcome::Skipped(format!("already {}", row.status)));
    }
    let via = row.via.clone();
    if job.attempt > 2
        && convos_store::jobs::two_attempts_lost_before(&ctx.db, job.id, job.attempt).await?
    {
        // Its last two attempts stopped the worker, or ran with it when it stopped: whatever in
        // it might (nothing catches a stack overflow) is not tried a third time unattended. The
        // job is dead, the email kept as received: an operator retries it once the cause is
        // known (the attempt after that one is read as any other).
        tracing::warn!(inbound.id = %row.id, "a received email the worker stopped on twice, left for an operator");
        return Err(JobError::Permanent(
            "the worker stopped twice while this email was being read: not read again until \
             an operator retries it"
                .into(),
        ));
    }
    let outcome = decide(ctx, &row).await?;
    ctx.metrics
        .inbound
        .with_label_values(&[via.as_str(), outcome.status])
        .inc();
    if let Some(row) = inbound::load(&ctx.db, row.id).await? {
        answer_if_due(ctx, &row).await?;
    }
    Ok(Outcome::Done(outcome.summary))
}

/// Records received email `row` as refused for `refusal`, about `about` (the address's owner
/// and their thread) when the address was theirs and they wrote it; the refusal's explanation,
/// if it has one, is what `answer_if_due` sends.
async fn refused(
    ctx: &Ctx,
    row: &Inbound,
    refusal: Refusal,
    message_id: Option<&str>,
    about: Option<(UserId, ThreadId)>,
) -> Result<Recorded, JobError> {
    let reason = refusal.as_str();
    inbound::decide(
        &ctx.db,
        row.id,
        &Decided {
            status: "refused",
            reason: Some(reason),
            detail: refusal.explanation(),
            message_id,
            user: about.map(|(user, _)| user),
            thread: about.map(|(_, thread)| thread),
            posted: None,
        },
    )
    .await?;
    Ok(Recorded {
        status: "refused",
        summary: format!("refused: {reason}"),
    })
}

/// What [`decide`] recorded.
struct Recorded {
    status: &'static str,
    summary: String,
}

/// The first of our addresses (envelope first, then headers) that is genuine, or whether any
/// address of ours was there at all.
fn our_address(
    ctx: &Ctx,
    row: &Inbound,
    parsed: Option<&Parsed>,
    domain: &str,
) -> Result<reply_address::Token, Refusal> {
    let secret = &ctx.email.secret_key;
    let candidates = row
        .envelope_to
        .iter()
        .chain(parsed.map(|p| p.recipients.iter()).into_iter().flatten());
    let mut ours = false;
    for address in candidates {
        if let Some(found) = reply_address::parse(secret, address, domain) {
            return Ok(found);
        }
        ours |= reply_address::is_ours(address, domain);
    }
    Err(if ours {
        Refusal::UnknownToken
    } else {
        Refusal::NotForUs
    })
}

async fn decide(ctx: &Ctx, row: &Inbound) -> Result<Recorded, JobError> {
    let parsed = convos_mail::parsed::parse(&row.raw).ok();
    let message_id = parsed.as_ref().and_then(|p| p.message_id.clone());
    // Refused before its address is known to be genuine: about no one.
    let refuse = |refusal: Refusal| refused(ctx, row, refusal, message_id.as_deref(), None);
    let Some(domain) = ctx.settings.reply_domain.as_deref() else {
        return refuse(Refusal::NotForUs).await;
    };
    let Some(parsed) = parsed.as_ref() else {
        return refuse(Refusal::Unreadable).await;
    };
    let token = match our_address(ctx, row, Some(parsed), domain) {
        Ok(found) => found,
        Err(refusal) => return refuse(refusal).await,
    };
    let Some(target) = inbound::reply_target(&ctx.db, token.message).await? else {
        return refuse(Refusal::ThreadGone).await;
    };
    let user = UserId::from(target.user_id);
    let thread = ThreadId::from(target.thread_id);
    // An address of the first form counts as made when its message was written.
    let made = token.made.unwrap_or(target.created_at);
    match token.purpose {
        Purpose::Bounce => report(ctx, row, (&target, made), message_id.as_deref()).await,
        Purpose::Reply => {
            post_reply(
                ctx,
                row,
                parsed,
                (&target, made),
                user,
                thread,
                message_id.as_deref(),
            )
            .await
        }
    }
}

/// A report at a bounce address made at `made`: a hard bounce suppresses the address, a
/// complaint turns the user's email off; anything else is kept as `ignored`, and so is a report
/// about mail sent before the account moved to another address (decision 77): it is about the
/// mailbox left behind, which a late bounce or complaint, or whoever reads it later, must not
/// turn against the new one.
async fn report(
    ctx: &Ctx,
    row: &Inbound,
    (target, made): (&inbound::ReplyTarget, DateTime<Utc>),
    message_id: Option<&str>,
) -> Result<Recorded, JobError> {
    let user = UserId::from(target.user_id);
    let old_address = target.email_changed_at.is_some_and(|moved| made <= moved);
    let read = if old_address {
        None
    } else {
        reports::read(&row.raw)
    };
    let (status, reason, detail) = match read {
        None if old_address => ("ignored", "old_address", String::new()),
        Some(Report::Bounce {
            permanent: true,
            delayed: false,
            status,
            diagnostic,
            ..
        }) => {
            let marked = deliveries::mark_bounced(&ctx.db, user, &target.email).await?;
            if marked {
                tracing::info!(user.id = %user, "address hard-bounced (report); no email until verified again");
            }
            let detail = [status, diagnostic]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            ("bounce", "hard_bounce", detail.join(" "))
        }
        Some(Report::Bounce {
            status,
            diagnostic,
            delayed,
            ..
        }) => {
            let detail = [status, diagnostic]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            let reason = if delayed { "delayed" } else { "soft_bounce" };
            ("bounce", reason, detail.join(" "))
        }
        Some(Report::Complaint { feedback_type, .. }) => {
            convos_store::unsubscribe::complained(&ctx.db, user).await?;
            tracing::info!(user.id = %user, "complaint received; email turned off");
            ("complaint", "complaint", feedback_type)
        }
        None => ("ignored", "not_a_report", String::new()),
    };
    // A run of soft bounces is looked for before the decision is recorded, as the other
    // reports act first: a decided email is never read again, so a crash between the two must
    // not lose the suppression. And again after, where this bounce is on record: two bounces
    // decided at once each count the other only then.
    let soft = reason == "soft_bounce";
    if soft {
        soft_bounces(ctx, user, &target.email, Some(row.id)).await?;
    }
    inbound::decide(
        &ctx.db,
        row.id,
        &Decided {
            status,
            reason: Some(reason),
            detail: Some(&detail).filter(|d| !d.is_empty()).map(|d| d.as_str()),
            message_id,
            user: Some(user),
            thread: Some(ThreadId::from(target.thread_id)),
            posted: None,
        },
    )
    .await?;
    if soft {
        soft_bounces(ctx, user, &target.email, None).await?;
    }
    Ok(Recorded {
        status,
        summary: format!("{status}: {reason}"),
    })
}

/// Suppresses `email` if `user`'s recent soft bounces (with `being_decided`, one not yet on
/// record) make a run.
async fn soft_bounces(
    ctx: &Ctx,
    user: UserId,
    email: &str,
    being_decided: Option<Uuid>,
) -> Result<(), JobError> {
    if inbound::recent_soft_bounces(&ctx.db, user, being_decided).await? >= SOFT_BOUNCES_TO_SUPPRESS
        && deliveries::mark_bounced(&ctx.db, user, email).await?
    {
        tracing::info!(user.id = %user, "a run of soft bounces; no email until verified again");
    }
    Ok(())
}

/// The idempotency key of a received email: its `Message-ID`, or without one what its sender
/// wrote (`From`, `Date`, `Subject`, the text) and to which message's reply address. Not its
/// bytes: each relay that carries a copy adds its own `Received:` line, and two copies of one
/// reply were posted twice.
fn received_key(message_id: Option<&str>, parsed: &Parsed, replying_to: Uuid) -> String {
    let digest = match message_id {
        Some(id) => Sha256::digest(id.as_bytes()),
        None => {
            let mut written = Sha256::new();
            written.update(replying_to.as_bytes());
            for part in [
                parsed.from.as_deref().unwrap_or_default(),
                parsed.header("Date").unwrap_or_default(),
                &parsed.subject,
                &parsed.text,
            ] {
                written.update((part.len() as u64).to_be_bytes());
                written.update(part.as_bytes());
            }
            written.finalize()
        }
    };
    format!("email:{}", hex::encode(digest))
}

#[allow(clippy::too_many_arguments)]
async fn post_reply(
    ctx: &Ctx,
    row: &Inbound,
    parsed: &Parsed,
    (target, made): (&inbound::ReplyTarget, DateTime<Utc>),
    user: UserId,
    thread: ThreadId,
    message_id: Option<&str>,
) -> Result<Recorded, JobError> {
    let refuse = |refusal: Refusal| refused(ctx, row, refusal, message_id, Some((user, thread)));
    if let Some(automatic) = autoreply::automatic(parsed, &ctx.email.domain) {
        return refuse(Refusal::Automatic(automatic)).await;
    }
    if reports::read(&row.raw).is_some() {
        return refuse(Refusal::Automatic(autoreply::Automatic::MailerDaemon)).await;
    }
    let from_owner = parsed
        .from
        .as_deref()
        .is_some_and(|from| from.eq_ignore_ascii_case(&target.email));
    if !from_owner || !target.verified {
        // Not the address's owner (who did not write it): about no one, and nobody is told.
        return refused(ctx, row, Refusal::WrongSender, message_id, None).await;
    }
    let key = received_key(message_id, parsed, target.message_id);
    let idem_key = IdempotencyKey::parse(&key)
        .map_err(|e| JobError::Permanent(format!("idempotency key: {e:?}")))?;
    let idem = Idempotency::new(idem_key, "email reply", key.as_bytes());
    // Posted by an earlier attempt of this job that stopped before recording it: recorded now,
    // whatever changed since (a revocation, the day's volume). Checked again, a posted reply
    // could be recorded refused and its author told "not posted" (decision 74).
    if let Some(posted) = messages::replayed(&ctx.db, user, &idem).await? {
        return record_posted(ctx, row, message_id, (user, thread), posted, target).await;
    }
    // Checked after the sender, so that only the address's owner hears it was revoked.
    // A suspended owner is told so: every address of theirs is revoked while it lasts, but
    // "reply to a newer notification" would send them after one that cannot work either.
    if target.suspended {
        return refuse(Refusal::Suspended).await;
    }
    // Revoked when the owner revoked their addresses after this one was made (decision 68).
    if target.revoked_at.is_some_and(|at| at >= made) {
        return refuse(Refusal::Revoked).await;
    }
    if let Some(id) = message_id
        && inbound::posted_as(&ctx.db, user, id).await?.is_some()
    {
        return refuse(Refusal::Duplicate).await;
    }
    // The new text, without the quoted original, nor anything of Convos' own the client left
    // in it (the notification, its signed links, reply addresses: decision 83).
    let text = crate::echoes::without_echoes(
        &convos_mail::quotes::new_text(&parsed.text),
        &target.email,
        &ctx.email,
    );
    if text.trim().is_empty() {
        let why = if parsed.undecodable {
            Refusal::Undecodable
        } else {
            Refusal::Empty
        };
        return refuse(why).await;
    }
    let Ok(body) = Body::parse(&text) else {
        return refuse(Refusal::TooLong).await;
    };
    let content = NewContent {
        body,
        expires_in: None,
        read_once: false,
    };
    // The sender's budget whichever way they send (decision 72): messages a minute, bytes a day.
    let (prefix, sender) = (&ctx.settings.redis_prefix, user.to_string());
    let bytes = rate_limit::message_volume("", content.body.as_str());
    let mut redis = ctx.redis.clone();
    let limits = ctx.settings.send_limits();
    let counted = match rate_limit::send(&mut redis, prefix, &sender, limits, bytes).await {
        Ok(SendDecision::Allowed) => true,
        Ok(_) => return refuse(Refusal::RateLimited).await,
        Err(e) => {
            tracing::warn!(error = %e, "send limits not enforced: redis unavailable");
            false
        }
    };
    let notify = NotifySettings {
        notify_delay: Duration::from_secs(ctx.settings.notify_delay_secs),
    };
    let created = messages::reply(&ctx.db, &notify, user, thread, &content, Some(&idem)).await;
    // What stored nothing gives back what it counted: a thread gone or an earlier attempt's
    // reply replayed, its attempt and bytes; a database failure, its bytes (the job runs again
    // and counts again).
    let unsent = match created.as_ref().map(Written::value) {
        Ok(Created::New(_)) => None,
        Ok(Created::Replayed(_)) | Err(StoreError::NotFound) => Some(Unsent::Refused),
        Err(_) => Some(Unsent::Failed),
    };
    if let Some(unsent) = unsent.filter(|_| counted) {
        let _ = rate_limit::give_back_send(&mut redis, prefix, &sender, bytes, unsent).await;
    }
    let created = match created {
        Err(StoreError::NotFound) => return refuse(Refusal::ThreadGone).await,
        Err(StoreError::Blocked) => return refuse(Refusal::Blocked).await,
        created => ctx.committed(created?),
    };
    let posted = match created {
        Created::New(message) => message.id,
        // This email was posted by an earlier attempt of this job that ended before recording
        // it, between the check above and the post (the duplicate check found no other row
        // that posted it).
        Created::Replayed(id) => id,
    };
    record_posted(ctx, row, message_id, (user, thread), posted, target).await
}

/// Records received email `row` as posted as message `posted`, and reads the thread for its
/// author up to the message their email answered.
async fn record_posted(
    ctx: &Ctx,
    row: &Inbound,
    message_id: Option<&str>,
    (user, thread): (UserId, ThreadId),
    posted: MessageId,
    target: &inbound::ReplyTarget,
) -> Result<Recorded, JobError> {
    let decided = inbound::decide(
        &ctx.db,
        row.id,
        &Decided {
            status: "posted",
            reason: None,
            detail: None,
            message_id,
            user: Some(user),
            thread: Some(thread),
            posted: Some(posted),
        },
    )
    .await;
    match decided {
        Ok(_) => {}
        // Another copy of the same email, processed at the same instant, recorded first.
        Err(StoreError::Conflict(_)) => {
            return refused(
                ctx,
                row,
                Refusal::Duplicate,
                message_id,
                Some((user, thread)),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    }
    // Answering a thread by email reads it, as answering it in the app does, up to the message
    // the email was about: one written since has not been seen (decision 74). On a long thread
    // that walks all of it, so one such read runs at a time in this process, waiting without a
    // connection (decision 82).
    let answered = MessageId::from(target.message_id);
    let long = threads::LONG_THREAD_MESSAGES;
    let size = threads::size_up_to(&ctx.db, user, thread, long + 1).await?;
    let _place = match size {
        Some(size) if size > long => Some(
            ctx.long_thread_reads
                .acquire()
                .await
                .map_err(|_| JobError::Transient("shutting down".into()))?,
        ),
        _ => None,
    };
    // After the reply is recorded posted: a retry would skip the email, so a lock wait given up
    // would leave the thread unread for good.
    match super::settled(|| threads::mark_read_up_to(&ctx.db, user, thread, answered)).await {
        Ok(written) => {
            ctx.committed(written);
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Recorded {
        status: "posted",
        summary: format!("posted as {posted}"),
    })
}

/// Sends the explanation of a refusal, once, if someone can be told and has not had too many.
async fn answer_if_due(ctx: &Ctx, row: &Inbound) -> Result<(), JobError> {
    if row.status != "refused" || row.answered_at.is_some() {
        return Ok(());
    }
    let Some(explanation) = row
        .reason
        .as_deref()
        .and_then(refusal_of)
        .and_then(Refusal::explanation)
    else {
        return Ok(());
    };
    let Some(user) = row.user_id.map(UserId::from) else {
        return Ok(());
    };
    let Some((address, name)) = inbound::answer_address(&ctx.db, user).await? else {
        return Ok(());
    };
    if !inbound::claim_answer(&ctx.db, row.id, user, ANSWERS_PER_HOUR).await? {
        return Ok(());
    }
    let parsed = convos_mail::parsed::parse(&row.raw).ok();
    let subject = parsed.as_ref().map(|p| p.subject.as_str()).unwrap_or("");
    let in_reply_to = parsed.as_ref().and_then(|p| p.message_id.as_deref());
    let message = email::refusal(
        &ctx.email,
        &address,
        &name,
        subject,
        in_reply_to,
        explanation,
    )
    .map_err(|e| JobError::Permanent(format!("could not build the explanation: {e}")))?;
    // Its return path is our `From`, which is not a reply or bounce address: a bounce of an
    // explanation goes to the operators' mailbox, never back into this job.
    match ctx.mailer.send(message).await {
        Ok(()) => {}
        Err(SendError::Temporary(e)) => {
            inbound::unanswer(&ctx.db, row.id).await?;
            return Err(JobError::Transient(format!("explanation not sent: {e}")));
        }
        Err(SendError::Rejected { text, .. }) => {
            // Refused for good: the refusal stays on record; the person is not told twice.
            tracing::info!(inbound.id = %row.id, error = %text, "explanation refused by the mail server");
        }
    }
    Ok(())
}

/// The refusal a recorded reason names (for the explanation of an earlier attempt's decision).
fn refusal_of(reason: &str) -> Option<Refusal> {
    [
        Refusal::Revoked,
        Refusal::Empty,
        Refusal::Undecodable,
        Refusal::TooLong,
        Refusal::RateLimited,
        Refusal::ThreadGone,
        Refusal::Blocked,
        Refusal::Suspended,
    ]
    .into_iter()
    .find(|r| r.as_str() == reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_duplicates_and_unproven_senders_are_never_answered() {
        for refusal in [
            Refusal::Unreadable,
            Refusal::NotForUs,
            Refusal::Duplicate,
            Refusal::UnknownToken,
            Refusal::WrongSender,
            Refusal::Automatic(autoreply::Automatic::OutOfOffice),
        ] {
            assert_eq!(refusal.explanation(), None, "{refusal:?}");
            assert_eq!(refusal_of(refusal.as_str()), None, "{refusal:?}");
        }
    }

    #[test]
    fn every_answered_refusal_is_found_again_by_its_reason() {
        for refusal in [
            Refusal::Revoked,
            Refusal::Empty,
            Refusal::Undecodable,
            Refusal::TooLong,
            Refusal::RateLimited,
            Refusal::ThreadGone,
            Refusal::Blocked,
            Refusal::Suspended,
        ] {
            assert!(refusal.explanation().is_some());
            assert_eq!(refusal_of(refusal.as_str()), Some(refusal));
        }
    }

    #[test]
    fn a_received_email_is_keyed_by_its_message_id_or_else_what_its_sender_wrote() {
        let parsed = |raw: &str| convos_mail::parsed::parse(raw.as_bytes()).unwrap();
        let reply = "From: bob@example.com\r\nDate: Wed, 02 Dec 2026 10:05:00 +0000\r\n\
                     Subject: Re: Lunch\r\n\r\nYes.\r\n";
        let relayed = format!("Received: from mx2.example.com\r\n{reply}");
        let other = reply.replace("Yes.", "No.");
        let (lunch, dinner) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            received_key(Some("a@b"), &parsed(reply), lunch),
            received_key(Some("a@b"), &parsed(&other), lunch)
        );
        assert_eq!(
            received_key(None, &parsed(reply), lunch),
            received_key(None, &parsed(&relayed), lunch),
            "a copy that came another way"
        );
        assert_ne!(
            received_key(None, &parsed(reply), lunch),
            received_key(None, &parsed(&other), lunch)
        );
        assert_ne!(
            received_key(None, &parsed(reply), lunch),
            received_key(None, &parsed(reply), dinner),
            "the same words to another thread"
        );
        assert!(received_key(Some("a@b"), &parsed(reply), lunch).len() <= 255);
    }
}
