//! Mailbox listings and thread-wide actions, from one participant's point of view.

use crate::counters::{self, expired_correction};
use crate::cursor::{Cursor, split_page};
use crate::messages::{MessageRow, announce, lock_thread};
use crate::visibility::{
    message_select, shown_name, visible_in_thread_to_caller, visible_to_caller,
};
use crate::{Result, StoreError, Written};
use chrono::{DateTime, Utc};
use convos_core::api::{Folder, LastMessage, Message, Page, Thread, UserSummary};
use convos_core::events::Event;
use convos_core::{MessageId, ThreadId, UserId, excerpt};
// Dynamic SQL below only splices in fragments and column names from this crate, never input.
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// Characters of body shown in a thread listing's excerpt.
pub const EXCERPT_CHARS: usize = 100;

/// The predicate selecting `folder`. The part before `and (` repeats the partial index's own
/// predicate word for word, so the planner picks that index; the rest discounts messages that
/// expired since they were counted.
fn predicate(folder: Folder) -> &'static str {
    match folder {
        Folder::Inbox => {
            "tp.received_count > 0 and not tp.archived and (tp.received_count > x.received)"
        }
        Folder::Sent => "tp.sent_count > 0 and (tp.sent_count > x.sent)",
        Folder::Archive => {
            "tp.archived and tp.received_count + tp.sent_count > 0 \
                 and (tp.received_count + tp.sent_count > x.received + x.sent)"
        }
        Folder::All => {
            "tp.received_count + tp.sent_count > 0 \
                 and (tp.received_count + tp.sent_count > x.received + x.sent)"
        }
    }
}

/// Columns of a thread row; pairs with [`ThreadRow`].
macro_rules! thread_select {
    () => {
        concat!(
            "select tp.thread_id, t.subject, tp.archived, tp.muted, tp.last_activity_at, \
                    (tp.received_count + tp.sent_count - x.received - x.sent)::int8 as message_count, \
                    (tp.unread_count - x.unread)::int8 as unread_count, \
                    me.id as me_id, me.username as me_username, me.display_name as me_display_name, \
                    peer.id as peer_id, peer.username as peer_username, ",
            shown_name!("me.id", "peer"),
            " as peer_display_name, \
                    lm.id as lm_id, lm.sender_id as lm_sender_id, lm.body as lm_body, lm.body_cut as lm_body_cut, \
                    lm.read_once as lm_read_once, lm.created_at as lm_created_at, \
                    lm.expires_at as lm_expires_at \
             from thread_participants tp \
             join threads t on t.id = tp.thread_id \
             join users me on me.id = tp.user_id \
             join users peer on peer.id = tp.peer_id ",
            expired_correction!(),
            // The last message's body is read for its excerpt only, so only its first 1,000
            // characters: whole bodies, a page of 100 threads whose last messages had 64,000
            // characters moved up to 25 MB from PostgreSQL (eight such listings at once per
            // user) to show 100 characters of each. `left` decompresses only the start of a
            // stored body and `octet_length` reads its stored size. Only a whitespace run of
            // 900 characters hides words the excerpt would have shown.
            "left join lateral ( \
                select m.id, m.sender_id, left(m.body, 1000) as body, \
                       octet_length(m.body) > octet_length(left(m.body, 1000)) as body_cut, \
                       m.read_once, m.created_at, m.expires_at \
                from messages m \
                where m.thread_id = tp.thread_id and ",
            visible_in_thread_to_caller!(),
            " order by m.created_at desc, m.id desc limit 1 \
             ) lm on true "
        )
    };
}

#[derive(sqlx::FromRow)]
struct ThreadRow {
    thread_id: Uuid,
    subject: String,
    archived: bool,
    muted: bool,
    last_activity_at: DateTime<Utc>,
    message_count: i64,
    unread_count: i64,
    me_id: Uuid,
    me_username: String,
    me_display_name: String,
    peer_id: Uuid,
    peer_username: String,
    peer_display_name: String,
    lm_id: Option<Uuid>,
    lm_sender_id: Option<Uuid>,
    lm_body: Option<String>,
    lm_body_cut: Option<bool>,
    lm_read_once: Option<bool>,
    lm_created_at: Option<DateTime<Utc>>,
    lm_expires_at: Option<DateTime<Utc>>,
}

impl ThreadRow {
    fn into_api(self) -> Thread {
        let me = UserSummary {
            id: self.me_id.into(),
            username: self.me_username,
            display_name: self.me_display_name,
        };
        let peer = UserSummary {
            id: self.peer_id.into(),
            username: self.peer_username,
            display_name: self.peer_display_name,
        };
        let last_message = match (self.lm_id, self.lm_sender_id, self.lm_created_at) {
            (Some(id), Some(sender), Some(created_at)) => Some(LastMessage {
                id: id.into(),
                sender: if sender == self.me_id {
                    me.clone()
                } else {
                    peer.clone()
                },
                body_excerpt: if self.lm_read_once == Some(true) {
                    None
                } else {
                    self.lm_body.as_deref().map(|b| {
                        let mut shown = excerpt(b, EXCERPT_CHARS);
                        if self.lm_body_cut == Some(true) && !shown.ends_with('…') {
                            shown.push('…');
                        }
                        shown
                    })
                },
                created_at,
                expires_at: self.lm_expires_at,
            }),
            _ => None,
        };
        Thread {
            id: self.thread_id.into(),
            subject: self.subject,
            participants: vec![me, peer],
            message_count: self.message_count.max(0),
            unread_count: self.unread_count.max(0),
            last_message,
            last_message_at: self.last_activity_at,
            archived: self.archived,
            muted: self.muted,
        }
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            at: self.last_activity_at,
            id: self.thread_id,
        }
    }
}

/// Where a newest-first listing starts when no cursor is given: after anything storable.
fn start_cursor() -> Cursor {
    // Year 9999, well inside PostgreSQL's timestamptz range (chrono's MAX_UTC is not).
    let at = DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default();
    Cursor {
        at,
        id: Uuid::max(),
    }
}

/// Where an oldest-first listing starts: before any message could have been sent.
fn oldest_cursor() -> Cursor {
    Cursor {
        at: DateTime::<Utc>::UNIX_EPOCH,
        id: Uuid::nil(),
    }
}

/// The SQL of [`list`]: binds the caller (`$1`), the cursor (`$2`, `$3`) and the limit (`$4`).
/// Public so that tests can check its query plan.
pub fn list_sql(folder: Folder, unread_only: bool) -> String {
    format!(
        "{} where tp.user_id = $1 and {} {} \
           and (tp.last_activity_at, tp.thread_id) < ($2, $3) \
         order by tp.last_activity_at desc, tp.thread_id desc limit $4",
        thread_select!(),
        predicate(folder),
        if unread_only {
            // `unread_count > 0` word for word, so the planner can read the unread threads
            // in order (`thread_participants_unread_by_activity`), not the whole folder.
            "and tp.unread_count > 0 and tp.unread_count > x.unread"
        } else {
            ""
        },
    )
}

/// One page of `folder`, newest activity first.
pub async fn list(
    db: &PgPool,
    caller: UserId,
    folder: Folder,
    unread_only: bool,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Page<Thread>> {
    let after = after.unwrap_or_else(start_cursor);
    let sql = list_sql(folder, unread_only);
    let rows: Vec<ThreadRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(caller.as_uuid())
        .bind(after.at)
        .bind(after.id)
        .bind(limit + 1)
        .fetch_all(db)
        .await?;
    let (rows, next_cursor) = split_page(rows, limit, ThreadRow::cursor);
    Ok(Page {
        items: rows.into_iter().map(ThreadRow::into_api).collect(),
        next_cursor,
    })
}

/// The SQL of [`get`]: binds the caller (`$1`) and the thread (`$2`). Public so that its query
/// plan can be checked.
pub fn get_sql() -> &'static str {
    concat!(
        thread_select!(),
        "where tp.user_id = $1 and tp.thread_id = $2 \
           and tp.received_count + tp.sent_count > x.received + x.sent"
    )
}

/// A thread is long, for the actions that walk all of it, when it holds more messages than
/// this (the server's default `long_thread_messages`; the worker's reading of a thread a reply
/// by email answered). Decision 55.
pub const LONG_THREAD_MESSAGES: i64 = 10_000;

/// How many messages `thread` holds that are neither erased nor consumed, counted up to `limit`
/// (at most that many index entries read, without waiting on any lock), if the caller is in
/// it: what marking the whole thread read or deleting it walks, whatever the caller still holds
/// of it.
pub async fn size_up_to(
    db: &PgPool,
    caller: UserId,
    thread: ThreadId,
    limit: i64,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "select (select count(*) from (select from messages m where m.thread_id = $2 \
                   and m.purged_at is null and m.consumed_at is null limit $3) n) \
         from thread_participants tp where tp.user_id = $1 and tp.thread_id = $2",
    )
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .bind(limit)
    .fetch_optional(db)
    .await?)
}

/// One thread, if the caller can see any message in it.
pub async fn get(db: &PgPool, caller: UserId, thread: ThreadId) -> Result<Thread> {
    let row: Option<ThreadRow> = sqlx::query_as(get_sql())
        .bind(caller.as_uuid())
        .bind(thread.as_uuid())
        .fetch_optional(db)
        .await?;
    row.map(ThreadRow::into_api).ok_or(StoreError::NotFound)
}

/// Message order within a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Newest first (the default).
    Desc,
    /// Oldest first.
    Asc,
}

/// Bytes of bodies one page of a thread's messages holds at most, as JSON, past its first
/// message: a page of 100 of the heaviest bodies was 25 MB of UTF-8 (38 MB of JSON with
/// escapes), built and held in memory for each request. A page cut short carries a
/// `next_cursor` as a full one does.
pub const PAGE_BODY_BYTES: i64 = 1 << 20;

/// The walk of [`messages`]: binds the caller (`$1`), the thread (`$2`), the cursor (`$3`,
/// `$4`) and the limit (`$5`). Public so that its query plan can be checked and reported.
pub fn messages_sql(order: Order) -> String {
    let (cmp, dir) = match order {
        Order::Desc => ("<", "desc"),
        Order::Asc => (">", "asc"),
    };
    format!(
        "{} where m.thread_id = $2 and {} and (m.created_at, m.id) {cmp} ($3, $4) \
         order by m.created_at {dir}, m.id {dir} limit $5",
        message_select!(),
        visible_in_thread_to_caller!(),
    )
}

/// The SQL of [`messages`]: [`messages_sql`], cut where its bodies pass `$6` bytes of UTF-8
/// (its first message kept whatever its size), each row saying how many the walk read
/// (`fetched`), so a page cut short knows more follow. Only the rows kept are detoasted: the
/// sizes come from the values' headers. A read-once body is never listed, so it is neither
/// counted nor sent.
pub fn page_of_messages_sql(order: Order) -> String {
    let dir = match order {
        Order::Desc => "desc",
        Order::Asc => "asc",
    };
    format!(
        "select id, thread_id, subject, case when read_once then null else body end as body, \
                read_once, created_at, in_reply_to, expires_at, is_read, sender_id, \
                sender_username, sender_display_name, recipient_id, recipient_username, \
                recipient_display_name, fetched \
         from ( \
           select page.*, count(*) over () as fetched, \
             coalesce(sum(listed) over (order by page.created_at {dir}, page.id {dir} \
                                        rows unbounded preceding), 0) - listed as before \
           from (select walk.*, \
                   case when walk.read_once then 0 \
                        else coalesce(octet_length(walk.body), 0) end as listed \
                 from ({}) walk) page) sized \
         where before < $6 order by created_at {dir}, id {dir}",
        messages_sql(order)
    )
}

/// Bytes `text` takes as a JSON string's contents: quotes, backslashes and the control
/// characters with a short escape (`\n`) take two, other control characters six (`\u0001`).
fn json_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// How many of `rows` a page keeps: all, or as many as keep their bodies, written as JSON,
/// within [`PAGE_BODY_BYTES`] after the first (escapes can make a body six times its UTF-8).
fn within_budget(rows: &[MessageRow]) -> usize {
    let mut written = 0;
    for (kept, row) in rows.iter().enumerate() {
        if kept > 0 && written >= PAGE_BODY_BYTES as usize {
            return kept;
        }
        written += row.body().map_or(0, json_len);
    }
    rows.len()
}

/// A row of [`page_of_messages_sql`].
#[derive(sqlx::FromRow)]
struct SizedRow {
    #[sqlx(flatten)]
    row: MessageRow,
    fetched: i64,
}

/// One page of the messages the caller can see in a thread: at most `limit`, and its bodies
/// within about [`PAGE_BODY_BYTES`] (the last kept may pass it, by one body at most).
pub async fn messages(
    db: &PgPool,
    caller: UserId,
    thread: ThreadId,
    order: Order,
    limit: i64,
    after: Option<Cursor>,
) -> Result<Page<Message>> {
    // Visibility of the thread itself first: a stranger learns nothing, not even emptiness.
    get(db, caller, thread).await?;
    let after = after.unwrap_or(match order {
        Order::Desc => start_cursor(),
        Order::Asc => oldest_cursor(),
    });
    let sql = page_of_messages_sql(order);
    let sized: Vec<SizedRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(caller.as_uuid())
        .bind(thread.as_uuid())
        .bind(after.at)
        .bind(after.id)
        .bind(limit + 1)
        .bind(PAGE_BODY_BYTES)
        .fetch_all(db)
        .await?;
    let fetched = sized.first().map_or(0, |r| r.fetched);
    let mut rows: Vec<MessageRow> = sized.into_iter().map(|r| r.row).collect();
    rows.truncate(within_budget(&rows));
    let (rows, next_cursor) = if (rows.len() as i64) < fetched {
        // Cut by its bytes (fewer than `limit` kept): what follows starts after the last kept.
        let next = rows.last().map(|r| r.cursor().encode());
        (rows, next)
    } else {
        split_page(rows, limit, MessageRow::cursor)
    };
    Ok(Page {
        items: rows.into_iter().map(|r| r.into_api(false)).collect(),
        next_cursor,
    })
}

/// Marks every message the caller can see in the thread as read.
pub async fn mark_read(db: &PgPool, caller: UserId, thread: ThreadId) -> Result<Written<Thread>> {
    mark_read_through(db, caller, thread, None).await
}

/// Marks the messages the caller can see in the thread as read, up to and including `last`:
/// what an email about `last` showed them. Answering that email reads no message written after
/// it, which they have not seen.
pub async fn mark_read_up_to(
    db: &PgPool,
    caller: UserId,
    thread: ThreadId,
    last: MessageId,
) -> Result<Written<Thread>> {
    mark_read_through(db, caller, thread, Some(last)).await
}

async fn mark_read_through(
    db: &PgPool,
    caller: UserId,
    thread: ThreadId,
    last: Option<MessageId>,
) -> Result<Written<Thread>> {
    let mut tx = db.begin().await?;
    lock_thread(&mut tx, caller, thread).await?;
    let changed = sqlx::query(concat!(
        "update messages m set \
           sender_read = sender_read or m.sender_id = $1, \
           recipient_read = recipient_read or m.recipient_id = $1 \
         where m.thread_id = $2 \
           and ((m.sender_id = $1 and not m.sender_read) \
             or (m.recipient_id = $1 and not m.recipient_read)) \
           and ($3::uuid is null \
             or (m.created_at, m.id) <= (select created_at, id from messages where id = $3)) \
           and ",
        visible_to_caller!()
    ))
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .bind(last.map(|id| id.as_uuid()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        // Only when something changed: the recount reads the whole thread, and a repeated
        // mark-read of a long thread paid for it every time.
        counters::recount(&mut tx, caller, thread).await?;
        announce(
            &mut tx,
            Event::ThreadUpdated { thread_id: thread },
            vec![caller],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Written::new(get(db, caller, thread).await?, changed > 0))
}

/// A per-participant thread flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Out of the inbox until the next message arrives.
    Archived,
    /// No notifications.
    Muted,
}

/// Sets or clears a flag on the caller's view of a thread.
pub async fn set_flag(
    db: &PgPool,
    caller: UserId,
    thread: ThreadId,
    flag: Flag,
    on: bool,
) -> Result<Written<Thread>> {
    get(db, caller, thread).await?;
    let column = match flag {
        Flag::Archived => "archived",
        Flag::Muted => "muted",
    };
    let mut tx = db.begin().await?;
    let changed = sqlx::query(AssertSqlSafe(format!(
        "update thread_participants set {column} = $3 \
         where thread_id = $2 and user_id = $1 and {column} <> $3"
    )))
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .bind(on)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        announce(
            &mut tx,
            Event::ThreadUpdated { thread_id: thread },
            vec![caller],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Written::new(get(db, caller, thread).await?, changed > 0))
}

/// Whether `user` ever took part in `thread` (their copies may all be deleted).
pub async fn took_part(db: &PgPool, user: UserId, thread: ThreadId) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from thread_participants where thread_id = $2 and user_id = $1)",
    )
    .bind(user.as_uuid())
    .bind(thread.as_uuid())
    .fetch_one(db)
    .await?)
}

/// Mutes or unmutes `thread` for `caller` from an email's link, which proves they take part
/// in it: unlike [`set_flag`], also when every message of theirs in it is deleted, since the
/// next message brings the thread back, and would email them again (a mail client's one-click
/// unsubscribe must succeed, RFC 8058). Returns the thread's subject; `NotFound` only when
/// `caller` never took part in it.
pub async fn set_muted_by_email(
    db: &PgPool,
    caller: UserId,
    thread: ThreadId,
    on: bool,
) -> Result<Written<String>> {
    match set_flag(db, caller, thread, Flag::Muted, on).await {
        Err(StoreError::NotFound) => {}
        done => return Ok(done?.map(|thread| thread.subject)),
    }
    // Gone from the caller's mailbox: no view shows the flag, so nothing is announced.
    let subject: Option<String> = sqlx::query_scalar(
        "update thread_participants p set muted = $3 from threads t \
         where t.id = p.thread_id and p.thread_id = $2 and p.user_id = $1 \
         returning t.subject",
    )
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .bind(on)
    .fetch_optional(db)
    .await?;
    subject
        .map(|s| Written::new(s, false))
        .ok_or(StoreError::NotFound)
}

/// Deletes every copy the caller has in the thread; the other participant keeps theirs. Erased
/// and consumed messages are no one's copies any more (no view shows them, no count holds
/// them): they are left as they are, not walked (decision 80).
pub async fn delete_for_me(db: &PgPool, caller: UserId, thread: ThreadId) -> Result<Written<()>> {
    let mut tx = db.begin().await?;
    lock_thread(&mut tx, caller, thread).await?;
    sqlx::query(
        "update messages m set \
           sender_deleted_at = case when m.sender_id = $1 \
             then coalesce(sender_deleted_at, now()) else sender_deleted_at end, \
           recipient_deleted_at = case when m.recipient_id = $1 \
             then coalesce(recipient_deleted_at, now()) else recipient_deleted_at end \
         where m.thread_id = $2 and m.purged_at is null and m.consumed_at is null \
           and ((m.sender_id = $1 and m.sender_deleted_at is null) \
             or (m.recipient_id = $1 and m.recipient_deleted_at is null))",
    )
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .execute(&mut *tx)
    .await?;
    // Every copy of the caller's is deleted now: nothing is left to count (a recount read the
    // whole thread again).
    counters::clear(&mut tx, caller, thread).await?;
    announce(
        &mut tx,
        Event::ThreadUpdated { thread_id: thread },
        vec![caller],
    )
    .await?;
    tx.commit().await?;
    Ok(Written::with_jobs(()))
}

/// The caller's (`$1`) threads with unread messages: their folder columns and `u`, the unread
/// messages less those that expired and await the purge. The expired ones are found through
/// the caller's own expiring messages (migration 0029), a few rows between purges, and joined
/// to their threads; looked for thread by thread, they cost a probe per unread thread (100,000
/// threads, one send each from anyone: 0.2–0.4 s a call, decision 54).
macro_rules! unread_threads {
    () => {
        concat!(
            "with x as (select m.thread_id, ",
            crate::counters::counted_by_caller!(),
            "from messages m \
             where (m.recipient_id = $1 or m.sender_id = $1) \
               and m.expires_at is not null and m.purged_at is null and m.consumed_at is null \
               and m.expires_at <= now() \
             group by m.thread_id) \
             select tp.received_count, tp.sent_count, tp.archived, \
                    greatest(tp.unread_count - coalesce(x.unread, 0), 0) as u \
             from thread_participants tp left join x on x.thread_id = tp.thread_id \
             where tp.user_id = $1 and tp.unread_count > 0"
        )
    };
}

/// The caller's unread messages: in threads they have not archived, and per folder (a thread in
/// several folders counts in each). One read of their unread threads (threads with no unread
/// message are never read).
pub async fn unread(db: &PgPool, caller: UserId) -> Result<(i64, convos_core::api::FolderCounts)> {
    let (total, inbox, sent, archive, all): (i64, i64, i64, i64, i64) = sqlx::query_as(concat!(
        "select \
               coalesce(sum(u) filter (where not archived), 0)::int8, \
               coalesce(sum(u) filter (where received_count > 0 and not archived), 0)::int8, \
               coalesce(sum(u) filter (where sent_count > 0), 0)::int8, \
               coalesce(sum(u) filter (where archived), 0)::int8, \
               coalesce(sum(u), 0)::int8 \
             from (",
        unread_threads!(),
        ") t"
    ))
    .bind(caller.as_uuid())
    .fetch_one(db)
    .await?;
    Ok((
        total,
        convos_core::api::FolderCounts {
            inbox,
            sent,
            archive,
            all,
        },
    ))
}
