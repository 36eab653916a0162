//! Email notification bookkeeping: what is queued per thread and recipient, what the worker
//! decided for each message, and who may see how much of it (decision 18).

use crate::visibility::{shown_name, visible_to_caller};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use convos_core::api::{Delivery, DeliveryDetail, UserSummary};
use convos_core::{MessageId, ThreadId, UserId};
use sqlx::PgPool;
use uuid::Uuid;

/// Everything the notify job needs to decide, read at send time.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The thread.
    pub thread: ThreadId,
    /// The recipient.
    pub recipient: EmailRecipient,
    /// The thread's subject.
    pub subject: String,
    /// Whether the recipient muted the thread.
    pub muted: bool,
    /// The queued messages, oldest first.
    pub messages: Vec<QueuedMessage>,
    /// For the `References` header, oldest first: the thread's first message and the nine
    /// latest before the newest queued one (all of them when there are ten or fewer), as mail
    /// clients bound the chain.
    pub earlier: Vec<MessageId>,
}

/// The person an email would go to.
#[derive(Clone, Debug)]
pub struct EmailRecipient {
    /// Their id.
    pub id: UserId,
    /// Their address.
    pub email: String,
    /// Their name.
    pub display_name: String,
    /// Whether they want emails at all.
    pub email_notifications: bool,
    /// Whether they proved they own the address.
    pub verified: bool,
    /// Whether the address was rejected for good since it was last verified.
    pub bounced: bool,
    /// Whether they get one digest a day instead of an email per message.
    pub digest: bool,
    /// Whether they paused their email notifications (until a time still to come).
    pub paused: bool,
}

/// Characters of a message's text read for its email, which shows the first 500 of it once
/// hidden characters are taken out: a thread's queued messages were read whole (up to 64,000
/// characters each, thousands of them after a relay outage) to show 500 of each.
pub const EMAILED_BODY_CHARS: i32 = 2_000;

/// One message waiting for a notification decision.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// The message.
    pub id: MessageId,
    /// Its sender.
    pub sender: UserSummary,
    /// Its sender has proved their address.
    pub sender_verified: bool,
    /// The recipient has blocked its sender since it was sent (decision 87).
    pub sender_blocked: bool,
    /// Operators have suspended its sender since it was sent (decision 88).
    pub sender_suspended: bool,
    /// Its text, up to its first [`EMAILED_BODY_CHARS`] characters (`None` once purged).
    pub body: Option<String>,
    /// The text goes on past `body`.
    pub body_cut: bool,
    /// Read-once messages never show their body in an email.
    pub read_once: bool,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// The message it answers.
    pub in_reply_to: Option<MessageId>,
    /// The recipient has read it.
    pub read: bool,
    /// The recipient deleted it, or it was consumed.
    pub deleted: bool,
    /// It expired.
    pub expired: bool,
    /// It will expire: its body stays out of email, which would outlive it.
    pub expiring: bool,
}

/// What an email job needs to know of its recipient and thread.
#[derive(sqlx::FromRow)]
struct Facts {
    recipient_id: Uuid,
    email: String,
    display_name: String,
    email_notifications: bool,
    verified: bool,
    bounced: bool,
    digest: bool,
    paused: bool,
    subject: String,
    muted: bool,
    earlier: Vec<Uuid>,
}

/// One claimed message with the facts (the same on every row).
#[derive(sqlx::FromRow)]
struct PendingRow {
    #[sqlx(flatten)]
    message: QueuedRow,
    #[sqlx(flatten)]
    facts: Facts,
}

#[derive(sqlx::FromRow)]
struct QueuedRow {
    id: Uuid,
    sender_id: Uuid,
    sender_username: String,
    sender_display_name: String,
    sender_verified: bool,
    sender_blocked: bool,
    sender_suspended: bool,
    body: Option<String>,
    body_cut: Option<bool>,
    read_once: bool,
    created_at: DateTime<Utc>,
    in_reply_to: Option<Uuid>,
    read: bool,
    deleted: bool,
    expired: bool,
    expiring: bool,
}

/// A place in a recipient's day of emails, or which cap left none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// The email's row, counted from now: record it sent ([`record_sent`]) or give it back
    /// ([`unreserve`]).
    Email(Uuid),
    /// The recipient's day is full.
    DailyCap,
    /// The recipient's day is full of emails about this thread's other participant.
    SenderDailyCap,
}

/// The advisory lock class of a recipient's day of emails ("mail").
const RECIPIENT_LOCK_CLASS: i32 = 0x6d61_696c;

/// Counts one email to `recipient` about `messages` of `thread` (the newest last) if the
/// recipient's day has room under `daily_cap` and under `daily_cap_per_sender` for the
/// thread's other participant, before it is sent. The count and the row happen under a lock on
/// the recipient, so jobs running at once cannot all see room: counted once sent, a burst of
/// 28 threads from one sender got all 28 emails past caps of 20 and 8 (a probe).
///
/// The row is tied to the deliveries it is for (`email_id`), so a run cut off before the mail
/// server answered (its time limit, a worker stopping) leaves one place taken, which the next
/// run of these deliveries takes again, not a new one each time. An email reserved and never
/// sent stays counted unless given back ([`unreserve`]); the caps err towards sending less.
pub async fn reserve(
    db: &PgPool,
    thread: ThreadId,
    recipient: UserId,
    messages: &[MessageId],
    (daily_cap, daily_cap_per_sender): (i64, i64),
) -> Result<Reserved> {
    let ids: Vec<Uuid> = messages.iter().map(MessageId::as_uuid).collect();
    let Some(&newest) = ids.last() else {
        return Err(StoreError::NotFound);
    };
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(RECIPIENT_LOCK_CLASS)
        .bind(recipient.as_uuid())
        .execute(&mut *tx)
        .await?;
    let earlier: Option<Uuid> = sqlx::query_scalar(
        "select email_id from deliveries \
         where recipient_id = $1 and message_id = any($2) and status = 'queued' \
           and email_id is not null limit 1",
    )
    .bind(recipient.as_uuid())
    .bind(&ids)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(email) = earlier {
        tx.commit().await?;
        return Ok(Reserved::Email(email));
    }
    // The day's emails up to the daily cap; of the day's newest up to it, those about threads
    // with the thread's other participant, up to theirs: no more rows are read than it takes
    // to know whether a cap is reached.
    let (day, by_sender): (i64, i64) = sqlx::query_as(
        "select \
           (select count(*) from (select from emails e \
              where e.recipient_id = $1 and e.sent_at > now() - interval '1 day' \
              limit greatest($3, 0)) day), \
           (select count(*) from (select from ( \
                select e.thread_id from emails e \
                where e.recipient_id = $1 and e.sent_at > now() - interval '1 day' \
                order by e.sent_at desc limit greatest($3, 0)) e \
              join thread_participants ep on ep.thread_id = e.thread_id and ep.user_id = $1 \
              where ep.peer_id = (select peer_id from thread_participants \
                                  where thread_id = $2 and user_id = $1) \
              limit greatest($4, 0)) day)",
    )
    .bind(recipient.as_uuid())
    .bind(thread.as_uuid())
    .bind(daily_cap)
    .bind(daily_cap_per_sender)
    .fetch_one(&mut *tx)
    .await?;
    if day >= daily_cap {
        return Ok(Reserved::DailyCap);
    }
    if by_sender >= daily_cap_per_sender {
        return Ok(Reserved::SenderDailyCap);
    }
    let email = Uuid::now_v7();
    sqlx::query(
        "with reserved as ( \
           insert into emails (id, recipient_id, thread_id, message_id) \
           values ($1, $2, $3, $4)) \
         update deliveries set email_id = $1 \
         where recipient_id = $2 and message_id = any($5) and status = 'queued'",
    )
    .bind(email)
    .bind(recipient.as_uuid())
    .bind(thread.as_uuid())
    .bind(newest)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Reserved::Email(email))
}

/// Gives back a reserved email that was not sent: it no longer counts against the caps, and
/// its deliveries, still queued, reserve afresh when tried again.
pub async fn unreserve(db: &PgPool, email: Uuid) -> Result<()> {
    sqlx::query(
        "with freed as ( \
           update deliveries set email_id = null where email_id = $1 and status = 'queued') \
         delete from emails where id = $1",
    )
    .bind(email)
    .execute(db)
    .await?;
    Ok(())
}

/// Claims the queued deliveries of `thread` to `recipient` for `job` (unclaimed ones, or ones
/// whose claim is older than `stale_after` seconds: their job died) and returns them with the
/// facts to decide on them (the recipient's daily caps are counted apart, when an email is about
/// to go: [`reserve`]); `None` when there is none for this job (a delivery another live job
/// holds is not returned).
///
/// One statement: one round trip and one commit, whatever the thread's length.
pub async fn pending(
    db: &PgPool,
    thread: ThreadId,
    recipient: UserId,
    job: Uuid,
    stale_after: f64,
) -> Result<Option<Pending>> {
    let rows: Vec<PendingRow> = sqlx::query_as(
        "with claimed as ( \
           update deliveries set claimed_by = $3, claimed_at = now() \
           where thread_id = $1 and recipient_id = $2 and status = 'queued' \
             and (claimed_by is null or claimed_by = $3 \
                  or claimed_at < now() - make_interval(secs => $4)) \
           returning message_id), \
         queued as ( \
           select m.id, s.id as sender_id, s.username as sender_username, \
                  s.display_name as sender_display_name, \
                  (s.email_verified_at is not null or s.email_proven_at is not null) \
                    as sender_verified, \
                  exists (select 1 from blocks b where b.user_id = $2 and b.blocked_id = s.id) \
                    as sender_blocked, \
                  s.suspended_at is not null as sender_suspended, \
                  left(m.body, $5) as body, \
                  octet_length(m.body) > octet_length(left(m.body, $5)) as body_cut, \
                  m.read_once, m.created_at, \
                  m.in_reply_to, m.recipient_read as read, \
                  (m.recipient_deleted_at is not null or m.consumed_at is not null) as deleted, \
                  (m.expires_at is not null and m.expires_at <= now()) as expired, \
                  (m.expires_at is not null) as expiring \
           from claimed d join messages m on m.id = d.message_id \
           join users s on s.id = m.sender_id), \
         earlier as ( \
           (select id, created_at from messages \
            where thread_id = $1 and created_at < (select max(created_at) from queued) \
            order by created_at, id limit 1) \
           union \
           (select id, created_at from messages \
            where thread_id = $1 and created_at < (select max(created_at) from queued) \
            order by created_at desc, id desc limit 9)), \
         facts as ( \
           select u.id as recipient_id, u.email, u.display_name, u.email_notifications, \
                  u.email_verified_at is not null as verified, \
                  u.email_bounced_at is not null as bounced, \
                  u.email_digest as digest, \
                  coalesce(u.email_paused_until > now(), false) as paused, \
                  t.subject, coalesce(tp.muted, false) as muted, \
                  (select coalesce(array_agg(id order by created_at, id), '{}') from earlier) \
                    as earlier \
           from users u cross join threads t \
           left join thread_participants tp on tp.thread_id = t.id and tp.user_id = u.id \
           where u.id = $2 and t.id = $1) \
         select q.*, f.* from queued q cross join facts f order by q.created_at, q.id",
    )
    .bind(thread.as_uuid())
    .bind(recipient.as_uuid())
    .bind(job)
    .bind(stale_after)
    .bind(EMAILED_BODY_CHARS)
    .fetch_all(db)
    .await?;
    let mut rows = rows.into_iter().peekable();
    let Some(first) = rows.peek() else {
        return Ok(None);
    };
    let facts = &first.facts;
    let mut pending = Pending {
        thread,
        recipient: EmailRecipient {
            id: facts.recipient_id.into(),
            email: facts.email.clone(),
            display_name: facts.display_name.clone(),
            email_notifications: facts.email_notifications,
            verified: facts.verified,
            bounced: facts.bounced,
            digest: facts.digest,
            paused: facts.paused,
        },
        subject: facts.subject.clone(),
        muted: facts.muted,
        earlier: facts.earlier.iter().copied().map(Into::into).collect(),
        messages: Vec::new(),
    };
    pending.messages = rows
        .map(|PendingRow { message: r, .. }| QueuedMessage {
            id: r.id.into(),
            sender: UserSummary {
                id: r.sender_id.into(),
                username: r.sender_username,
                display_name: r.sender_display_name,
            },
            sender_verified: r.sender_verified,
            sender_blocked: r.sender_blocked,
            sender_suspended: r.sender_suspended,
            body: r.body,
            body_cut: r.body_cut.unwrap_or(false),
            read_once: r.read_once,
            created_at: r.created_at,
            in_reply_to: r.in_reply_to.map(Into::into),
            read: r.read,
            deleted: r.deleted,
            expired: r.expired,
            expiring: r.expiring,
        })
        .collect();
    Ok(Some(pending))
}

/// Records that `email`, reserved for `recipient` ([`reserve`]), went out about `messages`.
pub async fn record_sent(
    db: &PgPool,
    email: Uuid,
    recipient: UserId,
    messages: &[MessageId],
) -> Result<()> {
    let ids: Vec<Uuid> = messages.iter().map(MessageId::as_uuid).collect();
    sqlx::query(
        "update deliveries set status = 'sent', reason = null, error = null, email_id = $3, \
                updated_at = now() \
         where recipient_id = $1 and message_id = any($2) and status = 'queued'",
    )
    .bind(recipient.as_uuid())
    .bind(&ids)
    .bind(email)
    .execute(db)
    .await?;
    Ok(())
}

/// Records a final decision other than sending for queued deliveries: `skipped` with a skip
/// reason, or `failed` with a classified reason and the raw error (shown to the recipient and
/// admins only).
pub async fn record(
    db: &PgPool,
    messages: &[MessageId],
    recipient: UserId,
    status: &str,
    reason: &str,
    error: Option<&str>,
) -> Result<()> {
    let ids: Vec<Uuid> = messages.iter().map(MessageId::as_uuid).collect();
    sqlx::query(
        "update deliveries set status = $3, reason = $4, error = $5, updated_at = now() \
         where recipient_id = $1 and message_id = any($2) and status = 'queued'",
    )
    .bind(recipient.as_uuid())
    .bind(&ids)
    .bind(status)
    .bind(reason)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Lets go of a job's claim on the deliveries of `thread` to `recipient` it did not decide
/// (it will retry, or another job may take them). They are found as the job claimed them,
/// through the index of queued deliveries by thread and recipient: found by the claim alone,
/// every queued delivery was read, and an SMTP outage grows the queue that every failing job
/// reads.
pub async fn release(db: &PgPool, job: Uuid, thread: ThreadId, recipient: UserId) -> Result<()> {
    sqlx::query(
        "update deliveries set claimed_by = null, claimed_at = null \
         where thread_id = $2 and recipient_id = $3 and status = 'queued' and claimed_by = $1",
    )
    .bind(job)
    .bind(thread.as_uuid())
    .bind(recipient.as_uuid())
    .execute(db)
    .await?;
    Ok(())
}

/// Notes a failure of `job` on queued deliveries without deciding them, and that `job` tried
/// them (`tried_by`, for an operator's discard or retry of it). Their status did not change,
/// so neither does `updated_at` (the sender sees nothing of a retry).
pub async fn note_error(
    db: &PgPool,
    job: Uuid,
    messages: &[MessageId],
    recipient: UserId,
    reason: &str,
    error: &str,
) -> Result<()> {
    let ids: Vec<Uuid> = messages.iter().map(MessageId::as_uuid).collect();
    sqlx::query(
        "update deliveries set reason = $3, error = $4, tried_by = $5 \
         where recipient_id = $1 and message_id = any($2) and status = 'queued'",
    )
    .bind(recipient.as_uuid())
    .bind(&ids)
    .bind(reason)
    .bind(error)
    .bind(job)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks `recipient`'s address as hard-bounced: no email goes to it until its owner verifies it
/// again. Only if `email` is still their address (they may have changed it meanwhile).
pub async fn mark_bounced(db: &PgPool, recipient: UserId, email: &str) -> Result<bool> {
    let marked = sqlx::query(
        "update users set email_bounced_at = now(), updated_at = now() \
         where id = $1 and email = $2 and email_bounced_at is null",
    )
    .bind(recipient.as_uuid())
    .bind(email)
    .execute(db)
    .await?
    .rows_affected();
    Ok(marked == 1)
}

/// How much of a delivery a caller may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    /// Whether it was sent, nothing else.
    Status,
    /// Everything.
    Full,
}

/// The status the sender sees for a delivery state: nothing about why it was not sent.
fn public_status(state: &str) -> &'static str {
    match state {
        "queued" => "pending",
        "sent" => "sent",
        _ => "not_sent",
    }
}

/// The deliveries of a message, as `caller` may see them: its sender gets the status only, its
/// recipient and admins the full record. `NotFound` for anyone else, and for a participant
/// once the message is gone for them (deleted, expired, consumed, purged).
pub async fn for_message(
    db: &PgPool,
    caller: UserId,
    caller_is_admin: bool,
    message: MessageId,
) -> Result<Vec<Delivery>> {
    let view = if caller_is_admin {
        let exists: Option<bool> = sqlx::query_scalar("select true from messages where id = $1")
            .bind(message.as_uuid())
            .fetch_optional(db)
            .await?;
        exists.map(|_| View::Full)
    } else {
        let parties: Option<(Uuid, Uuid)> = sqlx::query_as(concat!(
            "select m.sender_id, m.recipient_id from messages m where m.id = $2 and ",
            visible_to_caller!()
        ))
        .bind(caller.as_uuid())
        .bind(message.as_uuid())
        .fetch_optional(db)
        .await?;
        parties.map(|(_, recipient)| {
            if recipient == caller.as_uuid() {
                View::Full
            } else {
                View::Status
            }
        })
    };
    let Some(view) = view else {
        return Err(StoreError::NotFound);
    };
    let rows: Vec<DeliveryRow> = sqlx::query_as(concat!(
        "select u.id, u.username, ",
        shown_name!("$2", "u"),
        ", d.status, d.reason, d.error, d.updated_at \
         from deliveries d join users u on u.id = d.recipient_id where d.message_id = $1"
    ))
    .bind(message.as_uuid())
    .bind(caller.as_uuid())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            recipient: UserSummary {
                id: r.id.into(),
                username: r.username,
                display_name: r.display_name,
            },
            channel: "email".into(),
            status: public_status(&r.status).into(),
            updated_at: r.updated_at,
            detail: (view == View::Full).then_some(DeliveryDetail {
                state: r.status,
                reason: r.reason,
                error: r.error,
            }),
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    username: String,
    display_name: String,
    status: String,
    reason: Option<String>,
    error: Option<String>,
    updated_at: DateTime<Utc>,
}
