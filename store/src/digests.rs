//! Daily digests (decision 28): whose digest is due, and what goes in one.

use crate::Result;
use crate::counters::expired_correction;
use crate::visibility::visible_to_caller;
use chrono::{DateTime, Utc};
use convos_core::jobs::JobKind;
use convos_core::{MessageId, ThreadId, UserId};
use sqlx::PgPool;
use uuid::Uuid;

/// Threads one digest lists at most (the newest first); the email says how many more.
pub const MAX_THREADS: i64 = 25;

/// Of those, threads with any one person: one account starting threads before the digest hour
/// filled the list, and a friend's thread was only counted among the others (decision 84).
pub const THREADS_PER_SENDER: i64 = 3;

/// Enqueues the digests that are due (at most `batch`) and places each user's next one; for a
/// user who left digest mode or turned email off meanwhile, clears it instead. One statement;
/// users another worker is scheduling are skipped. Returns the digests enqueued.
pub async fn schedule_due(db: &PgPool, batch: i64) -> Result<u64> {
    let enqueued: i64 = sqlx::query_scalar(
        "with due as ( \
           select id, next_digest_at as at, email_notifications and email_digest as wanted \
           from users where next_digest_at <= now() \
           order by next_digest_at limit $1 for update skip locked), \
         moved as ( \
           update users u set next_digest_at = case when due.wanted \
               then next_digest_at(u.digest_hour, u.time_zone, now()) end \
           from due where u.id = due.id \
           returning u.id, due.at, due.wanted), \
         queued as ( \
           insert into jobs (id, kind, key, payload, max_attempts, next_run_at) \
           select convos_uuidv7(), $2, \
                  'digest_email:' || id || ':' || floor(extract(epoch from at))::bigint, \
                  jsonb_build_object('recipient_id', id), $3, now() \
           from moved where wanted \
           on conflict do nothing returning 1) \
         select count(*) from queued",
    )
    .bind(batch)
    .bind(JobKind::DigestEmail.as_str())
    .bind(JobKind::DigestEmail.max_attempts())
    .fetch_one(db)
    .await?;
    Ok(enqueued as u64)
}

/// The person a digest goes to.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Reader {
    /// Their account.
    pub id: Uuid,
    /// Their address.
    pub email: String,
    /// Their display name.
    pub display_name: String,
    /// Whether email goes to them at all, as a digest, and is not paused.
    pub wanted: bool,
    /// Whether the address is verified and has not bounced.
    pub deliverable: bool,
}

/// The recipient of a digest, as they are now.
pub async fn reader(db: &PgPool, user: UserId) -> Result<Option<Reader>> {
    Ok(sqlx::query_as(
        "select id, email, display_name, \
                email_notifications and email_digest \
                  and coalesce(email_paused_until <= now(), true) as wanted, \
                email_verified_at is not null and email_bounced_at is null as deliverable \
         from users where id = $1",
    )
    .bind(user.as_uuid())
    .fetch_optional(db)
    .await?)
}

/// One unread thread in a digest.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UnreadThread {
    /// The thread.
    pub thread_id: Uuid,
    /// Its subject.
    pub subject: String,
    /// Unread messages the reader can see in it.
    pub unread: i64,
    /// The newest of them.
    pub newest_id: Uuid,
    /// When it was written.
    pub newest_at: DateTime<Utc>,
    /// Its text, unless it is read-once or expiring (an email must not outlive it).
    pub excerpt: Option<String>,
    /// Whether it is read-once.
    pub read_once: bool,
    /// Whether it expires.
    pub expiring: bool,
    /// Who wrote it.
    pub sender_name: String,
    /// Their username.
    pub sender_username: String,
}

impl UnreadThread {
    /// The thread's id.
    pub fn thread(&self) -> ThreadId {
        self.thread_id.into()
    }

    /// The newest unread message's id.
    pub fn newest(&self) -> MessageId {
        self.newest_id.into()
    }
}

/// The reader's unread threads for a digest, newest first: visible unread messages they
/// received, in threads they neither muted nor archived, with someone who has proved their
/// address (what an account anyone can make writes is not emailed); at most [`MAX_THREADS`],
/// [`THREADS_PER_SENDER`] of them with any one person, none with a person they blocked, and
/// how many such threads there are in all. The candidates are the reader's unread threads
/// by their counters (`thread_participants_unread`), each joined to its peer: work in
/// proportion to the reader's unread threads, once a day in the worker, with no statement
/// limit; the messages read are the newest unread one of each of the [`MAX_THREADS`] listed
/// (their unread counts are their counters, less their expired messages).
pub async fn unread_threads(db: &PgPool, user: UserId) -> Result<(Vec<UnreadThread>, i64)> {
    let threads: Vec<UnreadThread> = sqlx::query_as(concat!(
        "select tp.thread_id, t.subject, greatest(tp.unread_count - x.unread, 0)::int8 as unread, \
                m.id as newest_id, m.created_at as newest_at, \
                case when m.read_once or m.expires_at is not null then null \
                     else left(m.body, 300) end as excerpt, \
                m.read_once, m.expires_at is not null as expiring, \
                s.display_name as sender_name, s.username as sender_username \
         from (select c.thread_id, c.last_activity_at, c.unread_count \
               from (select tp.thread_id, tp.last_activity_at, tp.unread_count, \
                            row_number() over (partition by tp.peer_id \
                              order by tp.last_activity_at desc, tp.thread_id desc) as nth \
                     from thread_participants tp \
                     join users peer on peer.id = tp.peer_id \
                       and (peer.email_verified_at is not null \
                            or peer.email_proven_at is not null) \
                       and peer.suspended_at is null \
                     where tp.user_id = $1 and tp.unread_count > 0 and not tp.archived \
                       and not tp.muted \
                       and not exists (select 1 from blocks b \
                         where b.user_id = $1 and b.blocked_id = tp.peer_id)) c \
               where c.nth <= $3 \
               order by c.last_activity_at desc limit $2) tp \
         join threads t on t.id = tp.thread_id \
         cross join lateral ( \
           select m.* from messages m \
           where m.thread_id = tp.thread_id and m.recipient_id = $1 and not m.recipient_read \
             and ",
        visible_to_caller!(),
        " order by m.created_at desc, m.id desc limit 1) m ",
        // The thread's unread count as its listing shows it: the counter, less its messages
        // expired and not yet purged (it counted each unread message, 10,000 rows for a thread
        // of 10,000).
        expired_correction!(),
        "join users s on s.id = m.sender_id \
         order by m.created_at desc, m.id desc"
    ))
    .bind(user.as_uuid())
    .bind(MAX_THREADS)
    .bind(THREADS_PER_SENDER)
    .fetch_all(db)
    .await?;
    if threads.is_empty() {
        return Ok((threads, 0));
    }
    // Beyond the listed ones (a sender's threads past their share among them), the per-thread
    // counters say how many there are.
    let total = sqlx::query_scalar(
        "select count(*) from thread_participants tp \
         join users peer on peer.id = tp.peer_id \
             and (peer.email_verified_at is not null or peer.email_proven_at is not null) \
             and peer.suspended_at is null \
         where tp.user_id = $1 and tp.unread_count > 0 and not tp.archived \
           and not tp.muted \
           and not exists (select 1 from blocks b \
             where b.user_id = $1 and b.blocked_id = tp.peer_id)",
    )
    .bind(user.as_uuid())
    .fetch_one(db)
    .await?;
    Ok((threads, total))
}
