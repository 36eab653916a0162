//! Email that comes back (decision 26): received messages kept whole before they are accepted,
//! what each became, and the facts a reply address stands for.

use crate::Result;
use crate::written::Written;
use chrono::{DateTime, Utc};
use convos_core::jobs::{InboundMailJob, JobKind};
use convos_core::{MessageId, ThreadId, UserId};
use sqlx::{AssertSqlSafe, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// How a message reached Convos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The SMTP listener.
    Smtp,
    /// A provider's inbound webhook (raw MIME).
    Webhook,
}

impl Via {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Smtp => "smtp",
            Via::Webhook => "webhook",
        }
    }
}

/// A message as received, before anything is decided about it.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// How it arrived.
    pub via: Via,
    /// `MAIL FROM` (empty for a bounce's null sender), if known.
    pub envelope_from: Option<&'a str>,
    /// `RCPT TO`, if known.
    pub envelope_to: &'a [String],
    /// Headers and body.
    pub raw: &'a [u8],
}

/// Keeps a received message and its `inbound_mail` job in one transaction. Only once this
/// returns may the sender be told the message was accepted.
pub async fn accept(db: &PgPool, received: Received<'_>) -> Result<Written<Uuid>> {
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    sqlx::query(
        "insert into inbound_mail (id, via, envelope_from, envelope_to, raw) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(received.via.as_str())
    .bind(received.envelope_from)
    .bind(received.envelope_to)
    .bind(received.raw)
    .execute(&mut *tx)
    .await?;
    let payload = serde_json::to_value(InboundMailJob { inbound_id: id }).unwrap_or_default();
    crate::jobs::enqueue(
        &mut tx,
        JobKind::InboundMail,
        &format!("inbound_mail:{id}"),
        None,
        payload,
        Duration::ZERO,
    )
    .await?;
    tx.commit().await?;
    Ok(Written::with_jobs(id))
}

/// A received message as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Inbound {
    /// Its row.
    pub id: Uuid,
    /// `smtp` or `webhook`.
    pub via: String,
    /// `MAIL FROM`, if known.
    pub envelope_from: Option<String>,
    /// `RCPT TO`, if known.
    pub envelope_to: Vec<String>,
    /// Headers and body.
    pub raw: Vec<u8>,
    /// `received` until decided.
    pub status: String,
    /// The classified reason of a refusal.
    pub reason: Option<String>,
    /// When the explanatory email about a refusal went out.
    pub answered_at: Option<DateTime<Utc>>,
    /// Who it was about, once known.
    pub user_id: Option<Uuid>,
}

/// The received message `id`, if it exists.
pub async fn load(db: &PgPool, id: Uuid) -> Result<Option<Inbound>> {
    Ok(sqlx::query_as(
        "select id, via, envelope_from, envelope_to, raw, status, reason, answered_at, user_id \
         from inbound_mail where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// What became of a received message.
#[derive(Clone, Debug, Default)]
pub struct Decided<'a> {
    /// `posted`, `refused`, `bounce`, `complaint` or `ignored`.
    pub status: &'a str,
    /// The classified reason.
    pub reason: Option<&'a str>,
    /// What can be said about it.
    pub detail: Option<&'a str>,
    /// The received message's own `Message-ID`.
    pub message_id: Option<&'a str>,
    /// Whom it concerned.
    pub user: Option<UserId>,
    /// The thread it was about.
    pub thread: Option<ThreadId>,
    /// The message it became.
    pub posted: Option<MessageId>,
}

/// Bytes of a decided message kept for the operators: its head, where the headers are. Kept
/// whole, a flood of refused mail at a megabyte each was kept for a week (decision 69).
pub const KEPT_BYTES: i32 = 16 * 1024;

/// Records what became of received message `id` (once: a decided message keeps its decision),
/// and keeps only its first [`KEPT_BYTES`]. Returns whether this call decided it.
pub async fn decide(db: &PgPool, id: Uuid, decided: &Decided<'_>) -> Result<bool> {
    let written = sqlx::query(AssertSqlSafe(format!(
        "update inbound_mail set status = $2, reason = $3, detail = $4, message_id = $5, \
           user_id = $6, thread_id = $7, posted_id = $8, processed_at = now(), \
           raw = substring(raw from 1 for {KEPT_BYTES}) \
         where id = $1 and status = 'received'"
    )))
    .bind(id)
    .bind(decided.status)
    .bind(decided.reason)
    .bind(decided.detail)
    .bind(decided.message_id)
    .bind(decided.user.map(|u| u.as_uuid()))
    .bind(decided.thread.map(|t| t.as_uuid()))
    .bind(decided.posted.map(|m| m.as_uuid()))
    .execute(db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            crate::StoreError::Conflict("message_id")
        }
        _ => e.into(),
    })?
    .rows_affected();
    Ok(written == 1)
}

/// Where `user` can be told about their refused email: their address and name, if it is
/// verified, has not bounced or complained, and they take email (not turned off, not paused).
pub async fn answer_address(db: &PgPool, user: UserId) -> Result<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "select email, display_name from users where id = $1 \
           and email_verified_at is not null and email_bounced_at is null \
           and email_complained_at is null and email_notifications \
           and (email_paused_until is null or email_paused_until <= now())",
    )
    .bind(user.as_uuid())
    .fetch_optional(db)
    .await?)
}

/// The message that received email `message_id` of `user` was posted as, if one was.
pub async fn posted_as(db: &PgPool, user: UserId, message_id: &str) -> Result<Option<MessageId>> {
    let posted: Option<Option<Uuid>> = sqlx::query_scalar(
        "select posted_id from inbound_mail \
         where user_id = $1 and message_id = $2 and status = 'posted'",
    )
    .bind(user.as_uuid())
    .bind(message_id)
    .fetch_optional(db)
    .await?;
    Ok(posted.flatten().map(MessageId::from))
}

/// Claims the one explanatory email about refused message `id`, if `user` got fewer than
/// `per_hour` such emails in the last hour. Returns whether the caller may send it; if sending
/// fails, [`unanswer`] gives the claim back.
///
/// The user's row is locked first, and the count taken after, in a statement of its own: in
/// one statement, claims running at once each counted before any of them was written (13
/// emails in a burst of 30, against a cap of 5).
pub async fn claim_answer(db: &PgPool, id: Uuid, user: UserId, per_hour: i64) -> Result<bool> {
    let mut tx = db.begin().await?;
    sqlx::query("select 1 from users where id = $1 for no key update")
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    let claimed = sqlx::query(
        "update inbound_mail set answered_at = now() \
         where id = $1 and answered_at is null \
           and (select count(*) from inbound_mail \
                where user_id = $2 and answered_at > now() - interval '1 hour') < $3",
    )
    .bind(id)
    .bind(user.as_uuid())
    .bind(per_hour)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(claimed == 1)
}

/// Gives back the claim of [`claim_answer`] after a failed send.
pub async fn unanswer(db: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query("update inbound_mail set answered_at = null where id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// What a reply address stands for: the notified message, its recipient (the only person who
/// may answer through it) and their thread.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReplyTarget {
    /// The message the notification was about.
    pub message_id: Uuid,
    /// Its thread.
    pub thread_id: Uuid,
    /// When it was written: an address of the first form, without a time of its own, counts
    /// as made then (decision 68).
    pub created_at: DateTime<Utc>,
    /// The recipient: the address's owner.
    pub user_id: Uuid,
    /// Their current address.
    pub email: String,
    /// Whether that address is verified.
    pub verified: bool,
    /// Their display name, for the explanatory email.
    pub display_name: String,
    /// Reply addresses issued at or before this no longer work (revoked by their owner; every
    /// one of them, made before or after, while the account is suspended).
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the account last moved to another address: mail sent before went to the old one.
    pub email_changed_at: Option<DateTime<Utc>>,
    /// Operators suspended the account (decision 88): it is refused as such, not as revoked.
    pub suspended: bool,
}

/// The facts behind the reply address of message `message`, if it exists.
pub async fn reply_target(db: &PgPool, message: MessageId) -> Result<Option<ReplyTarget>> {
    Ok(sqlx::query_as(
        "select m.id as message_id, m.thread_id, m.created_at, u.id as user_id, u.email, \
                u.email_verified_at is not null as verified, u.display_name, \
                greatest(u.reply_addresses_revoked_at, \
                         case when u.suspended_at is not null then now() end) \
                  as revoked_at, \
                u.email_changed_at, u.suspended_at is not null as suspended \
         from messages m join users u on u.id = m.recipient_id where m.id = $1",
    )
    .bind(message.as_uuid())
    .fetch_optional(db)
    .await?)
}

/// Ends every reply address `user` was given so far.
pub async fn revoke_reply_addresses(db: &PgPool, user: UserId) -> Result<()> {
    sqlx::query(
        "update users set reply_addresses_revoked_at = now(), updated_at = now() where id = $1",
    )
    .bind(user.as_uuid())
    .execute(db)
    .await?;
    Ok(())
}

/// Soft bounces (refusals that were not for good) of `user`'s email in the last 30 days, since
/// their address was last confirmed or changed: a sustained run of them means the mailbox no longer
/// takes mail, as a hard bounce does. `being_decided`, a received email that is a soft bounce
/// not yet recorded as one, counts under the same conditions.
pub async fn recent_soft_bounces(
    db: &PgPool,
    user: UserId,
    being_decided: Option<Uuid>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "select count(*) from inbound_mail i join users u on u.id = i.user_id \
         where i.user_id = $1 \
           and ((i.status = 'bounce' and i.reason = 'soft_bounce') or i.id = $2) \
           and i.received_at > now() - interval '30 days' \
           and i.received_at > \
             coalesce(greatest(u.email_verified_at, u.email_changed_at), '-infinity')",
    )
    .bind(user.as_uuid())
    .bind(being_decided)
    .fetch_one(db)
    .await?)
}
