//! The per-participant thread counters (`thread_participants.sent_count`, `received_count`,
//! `unread_count`): every write to them, and the correction readers apply for expired messages.
//!
//! A participant counts a message while they have not deleted their copy and it has been neither
//! consumed (read once) nor purged. Expired messages stay counted until the purge settles them;
//! listings subtract them at read time with [`expired_correction`]. Callers hold the thread's
//! lock (see `messages::lock_thread`), so counter writes to one thread never interleave.

use crate::Result;
use chrono::{DateTime, Utc};
use convos_core::{ThreadId, UserId};
use sqlx::PgConnection;

/// Which of a participant's counts a message is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Sent,
    Received,
}

/// How many of thread `m`'s messages user `$1` counts: `received`, `sent` and `unread` columns,
/// under the same rules as the stored counters. Used by [`recount`] and
/// [`expired_correction`], so the two can never disagree on what counts.
macro_rules! counted_by_caller {
    () => {
        "count(*) filter (where m.recipient_id = $1 and m.recipient_deleted_at is null)::int \
           as received, \
         count(*) filter (where m.sender_id = $1 and m.sender_deleted_at is null)::int as sent, \
         count(*) filter (where (m.recipient_id = $1 and m.recipient_deleted_at is null \
                                 and not m.recipient_read) \
                             or (m.sender_id = $1 and m.sender_deleted_at is null \
                                 and not m.sender_read))::int as unread "
    };
}

/// Of thread `tp`, how many of the caller's (`$1`) counted messages have expired but are not
/// yet purged (`received`, `sent`, `unread`): a range of the thread's expiring messages
/// (migration 0031), however many expire later.
macro_rules! expired_counts {
    () => {
        concat!(
            "select ",
            $crate::counters::counted_by_caller!(),
            "from messages m \
             where m.thread_id = tp.thread_id and m.expires_at is not null \
               and m.purged_at is null and m.consumed_at is null and m.expires_at <= now() "
        )
    };
}

/// Per thread `tp`, [`expired_counts`] as `x.received`, `x.sent`, `x.unread`; listings subtract
/// these from the counters.
macro_rules! expired_correction {
    () => {
        concat!(
            "cross join lateral (",
            $crate::counters::expired_counts!(),
            ") x "
        )
    };
}
pub(crate) use {counted_by_caller, expired_correction, expired_counts};

/// Counts a new message on both participants' rows (creating them for a new thread); a message
/// into an archived thread brings it back to the recipient's inbox.
pub(crate) async fn count_new_message(
    tx: &mut PgConnection,
    thread: ThreadId,
    sender: UserId,
    recipient: UserId,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "insert into thread_participants \
           (thread_id, user_id, peer_id, sent_count, received_count, unread_count, \
            last_activity_at) \
         values ($1, $2, $3, 1, 0, 0, $4), ($1, $3, $2, 0, 1, 1, $4) \
         on conflict (thread_id, user_id) do update set \
           sent_count = thread_participants.sent_count + excluded.sent_count, \
           received_count = thread_participants.received_count + excluded.received_count, \
           unread_count = thread_participants.unread_count + excluded.unread_count, \
           archived = thread_participants.archived and excluded.received_count = 0, \
           last_activity_at = greatest(thread_participants.last_activity_at, \
                                       excluded.last_activity_at)",
    )
    .bind(thread.as_uuid())
    .bind(sender.as_uuid())
    .bind(recipient.as_uuid())
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes one message out of `user`'s counts (deleted for them, consumed or purged).
pub(crate) async fn uncount(
    tx: &mut PgConnection,
    thread: ThreadId,
    user: UserId,
    side: Side,
    was_unread: bool,
) -> Result<()> {
    uncount_all(tx, &[(thread, user, side, was_unread)]).await
}

/// Takes messages out of their participants' counts, in one statement: each participant's
/// counters of a thread change once, by the sum of its messages. The caller holds every
/// thread's lock.
pub(crate) async fn uncount_all(
    tx: &mut PgConnection,
    uncounted: &[(ThreadId, UserId, Side, bool)],
) -> Result<()> {
    if uncounted.is_empty() {
        return Ok(());
    }
    let mut threads = Vec::with_capacity(uncounted.len());
    let mut users = Vec::with_capacity(uncounted.len());
    let (mut sent, mut received, mut unread) = (Vec::new(), Vec::new(), Vec::new());
    for (thread, user, side, was_unread) in uncounted {
        threads.push(thread.as_uuid());
        users.push(user.as_uuid());
        sent.push(i32::from(*side == Side::Sent));
        received.push(i32::from(*side == Side::Received));
        unread.push(i32::from(*was_unread));
    }
    sqlx::query(
        "update thread_participants tp set \
           sent_count = tp.sent_count - c.sent, received_count = tp.received_count - c.received, \
           unread_count = tp.unread_count - c.unread \
         from (select thread_id, user_id, sum(sent)::int as sent, sum(received)::int as received, \
                      sum(unread)::int as unread \
               from unnest($1::uuid[], $2::uuid[], $3::int4[], $4::int4[], $5::int4[]) \
                 as u(thread_id, user_id, sent, received, unread) \
               group by thread_id, user_id) c \
         where tp.thread_id = c.thread_id and tp.user_id = c.user_id",
    )
    .bind(&threads)
    .bind(&users)
    .bind(&sent)
    .bind(&received)
    .bind(&unread)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One of `user`'s counted messages changed its read flag to `read`.
pub(crate) async fn read_changed(
    tx: &mut PgConnection,
    thread: ThreadId,
    user: UserId,
    read: bool,
) -> Result<()> {
    sqlx::query(
        "update thread_participants set unread_count = unread_count + $3 \
         where thread_id = $1 and user_id = $2",
    )
    .bind(thread.as_uuid())
    .bind(user.as_uuid())
    .bind(if read { -1i32 } else { 1 })
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Zeroes `user`'s counters for a thread, once every copy of theirs in it is deleted.
pub(crate) async fn clear(tx: &mut PgConnection, user: UserId, thread: ThreadId) -> Result<()> {
    sqlx::query(
        "update thread_participants set received_count = 0, sent_count = 0, unread_count = 0 \
         where thread_id = $2 and user_id = $1",
    )
    .bind(user.as_uuid())
    .bind(thread.as_uuid())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Recomputes `user`'s counters for a thread from its messages (after thread-wide writes).
pub(crate) async fn recount(tx: &mut PgConnection, user: UserId, thread: ThreadId) -> Result<()> {
    sqlx::query(concat!(
        "update thread_participants tp set \
           received_count = c.received, sent_count = c.sent, unread_count = c.unread \
         from (select ",
        counted_by_caller!(),
        "from messages m \
           where m.thread_id = $2 and m.consumed_at is null and m.purged_at is null \
         ) c \
         where tp.thread_id = $2 and tp.user_id = $1"
    ))
    .bind(user.as_uuid())
    .bind(thread.as_uuid())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
