//! Sending, reading, flagging and deleting messages.
//!
//! Every write that changes what a participant sees also updates that participant's
//! `thread_participants` counters in the same transaction. Writes to one thread first lock the
//! thread's row, so they are serialised per thread and can never deadlock on the two
//! participant rows.

use crate::counters::{self, Side, count_new_message, uncount};
use crate::jobs::{self, NotifySettings};
use crate::visibility::{message_select, shown_name, visible_to_caller};
use crate::{Result, StoreError, Written};
use chrono::{DateTime, Utc};
use convos_core::api::{Message, NewContent, UserSummary};
use convos_core::events::Event;
use convos_core::{IdempotencyKey, MessageId, Subject, ThreadId, UserId, Username};
use sha2::{Digest, Sha256};
// Dynamic SQL below only splices in column names chosen from fixed lists, never input.
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A message row as the caller sees it.
#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: Uuid,
    thread_id: Uuid,
    subject: String,
    body: Option<String>,
    read_once: bool,
    created_at: DateTime<Utc>,
    in_reply_to: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    is_read: bool,
    sender_id: Uuid,
    sender_username: String,
    sender_display_name: String,
    recipient_id: Uuid,
    recipient_username: String,
    recipient_display_name: String,
}

impl MessageRow {
    /// The keyset position of this message in its thread.
    pub(crate) fn cursor(&self) -> crate::cursor::Cursor {
        crate::cursor::Cursor {
            at: self.created_at,
            id: self.id,
        }
    }

    /// The API shape. Read-once bodies are withheld unless `reveal` (the consuming read).
    /// The body as stored (a read-once body included).
    pub(crate) fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    pub(crate) fn into_api(self, reveal: bool) -> Message {
        Message {
            id: self.id.into(),
            thread_id: self.thread_id.into(),
            subject: self.subject,
            body: if self.read_once && !reveal {
                None
            } else {
                self.body
            },
            sender: UserSummary {
                id: self.sender_id.into(),
                username: self.sender_username,
                display_name: self.sender_display_name,
            },
            recipient: UserSummary {
                id: self.recipient_id.into(),
                username: self.recipient_username,
                display_name: self.recipient_display_name,
            },
            is_read: self.is_read,
            created_at: self.created_at,
            in_reply_to: self.in_reply_to.map(Into::into),
            expires_at: self.expires_at,
            read_once: self.read_once,
        }
    }
}

/// An `Idempotency-Key` with the fingerprint of the request that carried it.
#[derive(Clone, Debug)]
pub struct Idempotency {
    key: IdempotencyKey,
    request_hash: Vec<u8>,
}

impl Idempotency {
    /// Binds `key` to this request: its route and its body.
    pub fn new(key: IdempotencyKey, route: &str, body: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        Self {
            key,
            request_hash: hasher.finalize().to_vec(),
        }
    }
}

/// What a create produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new message, as its sender sees it.
    New(Box<Message>),
    /// The message an earlier request with the same `Idempotency-Key` created.
    Replayed(MessageId),
}

impl Created {
    /// The message's id, either way.
    pub fn id(&self) -> MessageId {
        match self {
            Created::New(message) => message.id,
            Created::Replayed(id) => *id,
        }
    }
}

/// The message an earlier request with the same key created, if the key is still live (24
/// hours); `IdempotencyMismatch` if that request was a different one. A read-only check that
/// lets the API answer a replay before spending the caller's rate limit; [`create_thread`] and
/// [`reply`] still claim the key atomically.
pub async fn replayed(
    db: &PgPool,
    sender: UserId,
    idem: &Idempotency,
) -> Result<Option<MessageId>> {
    let row: Option<(Vec<u8>, Uuid)> = sqlx::query_as(
        "select request_hash, message_id from idempotency_keys \
         where user_id = $1 and key = $2 and created_at >= now() - interval '24 hours'",
    )
    .bind(sender.as_uuid())
    .bind(idem.key.as_str())
    .fetch_optional(db)
    .await?;
    match row {
        None => Ok(None),
        Some((hash, _)) if hash != idem.request_hash => Err(StoreError::IdempotencyMismatch),
        Some((_, id)) => Ok(Some(id.into())),
    }
}

/// Claims `idem` for `message`; if an earlier request holds it, returns that request's message.
async fn claim_key(
    tx: &mut PgConnection,
    sender: UserId,
    idem: &Idempotency,
    message: MessageId,
) -> Result<Option<MessageId>> {
    // Keys are honoured for 24 hours; an older claim is released first.
    sqlx::query(
        "delete from idempotency_keys \
         where user_id = $1 and key = $2 and created_at < now() - interval '24 hours'",
    )
    .bind(sender.as_uuid())
    .bind(idem.key.as_str())
    .execute(&mut *tx)
    .await?;
    // A concurrent request with the same key blocks here until the first one commits.
    let claimed = sqlx::query(
        "insert into idempotency_keys (user_id, key, request_hash, message_id) \
         values ($1, $2, $3, $4) on conflict (user_id, key) do nothing",
    )
    .bind(sender.as_uuid())
    .bind(idem.key.as_str())
    .bind(&idem.request_hash)
    .bind(message.as_uuid())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 1 {
        return Ok(None);
    }
    let (hash, original): (Vec<u8>, Uuid) = sqlx::query_as(
        "select request_hash, message_id from idempotency_keys where user_id = $1 and key = $2",
    )
    .bind(sender.as_uuid())
    .bind(idem.key.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if hash != idem.request_hash {
        return Err(StoreError::IdempotencyMismatch);
    }
    Ok(Some(original.into()))
}

/// Whom a new message goes to: an account, or a username as the API receives it, resolved
/// inside the insert itself (one round trip fewer than looking it up first).
#[derive(Clone, Copy, Debug)]
pub enum Recipient<'a> {
    /// An account id.
    Id(UserId),
    /// A username; [`StoreError::UnknownRecipient`] when nobody has it and
    /// [`StoreError::SelfRecipient`] when it is the sender's own.
    Username(&'a Username),
}

impl From<UserId> for Recipient<'_> {
    fn from(id: UserId) -> Self {
        Recipient::Id(id)
    }
}

async fn insert_message(
    tx: &mut PgConnection,
    id: MessageId,
    thread: ThreadId,
    sender: UserId,
    recipient: Recipient<'_>,
    content: &NewContent,
    in_reply_to: Option<Uuid>,
) -> Result<MessageRow> {
    let to = match recipient {
        Recipient::Id(_) => "r.id = $4",
        Recipient::Username(_) => "lower(r.username) = lower($4) and r.id <> $3",
    };
    // The insert answers with the message as its sender sees it, so the response costs no
    // second query.
    let sql = format!(
        "with m as ( \
           insert into messages \
             (id, thread_id, sender_id, recipient_id, body, in_reply_to, expires_at, read_once) \
           select $1, $2, $3, r.id, $5, $6, \
                  clock_timestamp() + make_interval(secs => $7::int), $8 \
           from users r where {to} \
             and not exists (select 1 from blocks b where b.user_id = r.id and b.blocked_id = $3) \
           returning * \
         ) \
         select m.id, m.thread_id, t.subject, m.body, m.read_once, m.created_at, m.in_reply_to, \
                m.expires_at, m.sender_read as is_read, \
                s.id as sender_id, s.username as sender_username, \
                s.display_name as sender_display_name, \
                r.id as recipient_id, r.username as recipient_username, \
                {recipient_name} as recipient_display_name \
         from m \
         join threads t on t.id = m.thread_id \
         join users s on s.id = m.sender_id \
         join users r on r.id = m.recipient_id",
        // The sender may have blocked the recipient: then by their username (decision 87).
        recipient_name = shown_name!("$3", "r"),
    );
    let query = sqlx::query_as::<_, MessageRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .bind(thread.as_uuid())
        .bind(sender.as_uuid());
    let query = match recipient {
        Recipient::Id(user) => query.bind(user.as_uuid()),
        Recipient::Username(name) => query.bind(name.as_str()),
    };
    let row = query
        .bind(content.body.as_str())
        .bind(in_reply_to)
        .bind(
            content
                .expires_in
                .map(|e| i32::try_from(e.seconds()).unwrap_or(i32::MAX)),
        )
        .bind(content.read_once)
        .fetch_optional(&mut *tx)
        .await?;
    // Nothing was inserted: say why (rare, so a second look costs nothing).
    let found: Option<Uuid> = match (row, recipient) {
        (Some(row), _) => return Ok(row),
        (None, Recipient::Id(user)) => Some(user.as_uuid()),
        (None, Recipient::Username(name)) => {
            sqlx::query_scalar("select id from users where lower(username) = lower($1)")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?
        }
    };
    Err(match found {
        Some(id) if id == sender.as_uuid() => StoreError::SelfRecipient,
        Some(id) if crate::blocks::is_blocked(tx, id, sender).await? => StoreError::Blocked,
        Some(_) if matches!(recipient, Recipient::Id(_)) => StoreError::NotFound,
        _ => StoreError::UnknownRecipient,
    })
}

/// The jobs a new message causes, in its own transaction: the live event for both
/// participants, and the recipient's email notification.
async fn enqueue_new_message(
    tx: &mut PgConnection,
    notify: &NotifySettings,
    id: MessageId,
    thread: ThreadId,
    sender: UserId,
    recipient: UserId,
) -> Result<()> {
    let event = Event::MessageCreated {
        message_id: id,
        thread_id: thread,
    };
    jobs::enqueue_event(
        tx,
        &format!("event:message.created:{id}"),
        event,
        vec![recipient, sender],
    )
    .await?;
    jobs::enqueue_notification(tx, notify, id, thread, recipient).await
}

/// Tells `users`' other sessions that something changed; each call is its own event.
pub(crate) async fn announce(
    tx: &mut PgConnection,
    event: Event,
    users: Vec<UserId>,
) -> Result<()> {
    let key = format!("event:{}:{}", event.name(), Uuid::now_v7());
    jobs::enqueue_event(tx, &key, event, users).await
}

/// Starts a thread with its first message from `sender` to `recipient`.
pub async fn create_thread<'a>(
    db: &PgPool,
    notify: &NotifySettings,
    sender: UserId,
    recipient: impl Into<Recipient<'a>>,
    subject: &Subject,
    content: &NewContent,
    idem: Option<&Idempotency>,
) -> Result<Written<Created>> {
    let mut tx = db.begin().await?;
    let id = MessageId::generate();
    if let Some(idem) = idem
        && let Some(original) = claim_key(&mut tx, sender, idem, id).await?
    {
        return Ok(Written::new(Created::Replayed(original), false));
    }
    let thread = ThreadId::generate();
    sqlx::query("insert into threads (id, subject, created_by) values ($1, $2, $3)")
        .bind(thread.as_uuid())
        .bind(subject.as_str())
        .bind(sender.as_uuid())
        .execute(&mut *tx)
        .await?;
    let row = insert_message(&mut tx, id, thread, sender, recipient.into(), content, None).await?;
    let recipient = UserId::from(row.recipient_id);
    count_new_message(&mut tx, thread, sender, recipient, row.created_at).await?;
    enqueue_new_message(&mut tx, notify, id, thread, sender, recipient).await?;
    tx.commit().await?;
    Ok(Written::with_jobs(Created::New(Box::new(
        row.into_api(false),
    ))))
}

/// Locks thread `thread` for a write by `caller` and returns the other participant, or
/// `NotFound` when the caller is not a participant who can still see the thread.
pub(crate) async fn lock_thread(
    tx: &mut Transaction<'_, Postgres>,
    caller: UserId,
    thread: ThreadId,
) -> Result<UserId> {
    let peer: Option<Uuid> = sqlx::query_scalar(
        "select tp.peer_id from thread_participants tp join threads t on t.id = tp.thread_id \
         where tp.thread_id = $2 and tp.user_id = $1 for no key update of t",
    )
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    let peer = peer.ok_or(StoreError::NotFound)?;
    // From the caller's counters, kept under this lock, less their expired messages not yet
    // purged (as a thread's header reads them), and only when the counters hold any: looked for
    // message by message, a long thread the caller had deleted was walked to its end by every
    // write that answered 404 (decision 55).
    let visible: bool = sqlx::query_scalar(concat!(
        "select case when tp.received_count + tp.sent_count = 0 then false \
                else tp.received_count + tp.sent_count > \
                  (select x.received + x.sent from (",
        crate::counters::expired_counts!(),
        ") x) end \
         from thread_participants tp where tp.user_id = $1 and tp.thread_id = $2"
    ))
    .bind(caller.as_uuid())
    .bind(thread.as_uuid())
    .fetch_one(&mut **tx)
    .await?;
    if visible {
        Ok(peer.into())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Replies in `thread`: the recipient is the other participant and the reply answers the
/// thread's newest message.
pub async fn reply(
    db: &PgPool,
    notify: &NotifySettings,
    sender: UserId,
    thread: ThreadId,
    content: &NewContent,
    idem: Option<&Idempotency>,
) -> Result<Written<Created>> {
    let mut tx = db.begin().await?;
    let id = MessageId::generate();
    // The key first: a retry racing its first attempt waits for it here and answers with its
    // message, even if the thread was deleted meanwhile (it was a 404 that left the client
    // unable to tell whether its reply was made).
    if let Some(idem) = idem
        && let Some(original) = claim_key(&mut tx, sender, idem, id).await?
    {
        return Ok(Written::new(Created::Replayed(original), false));
    }
    let recipient = lock_thread(&mut tx, sender, thread).await?;
    let newest: Option<Uuid> = sqlx::query_scalar(
        "select id from messages where thread_id = $1 order by created_at desc, id desc limit 1",
    )
    .bind(thread.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let row = insert_message(
        &mut tx,
        id,
        thread,
        sender,
        recipient.into(),
        content,
        newest,
    )
    .await?;
    count_new_message(&mut tx, thread, sender, recipient, row.created_at).await?;
    enqueue_new_message(&mut tx, notify, id, thread, sender, recipient).await?;
    tx.commit().await?;
    Ok(Written::with_jobs(Created::New(Box::new(
        row.into_api(false),
    ))))
}

/// The message as `caller` sees it, without changing anything (read-once bodies withheld).
pub async fn get(db: &PgPool, caller: UserId, id: MessageId) -> Result<Message> {
    let row: Option<MessageRow> = sqlx::query_as(concat!(
        message_select!(),
        "where m.id = $2 and ",
        visible_to_caller!()
    ))
    .bind(caller.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(db)
    .await?;
    row.map(|r| r.into_api(false)).ok_or(StoreError::NotFound)
}

/// The message an idempotent replay answers with: the sender's original, even if it has since
/// expired, been consumed or been deleted by them (the replay must not turn into a 404). Its
/// body is withheld unless the sender could still read it.
pub async fn replay_view(db: &PgPool, sender: UserId, id: MessageId) -> Result<Message> {
    let row: Option<MessageRow> = sqlx::query_as(concat!(
        message_select!(),
        "where m.id = $2 and m.sender_id = $1"
    ))
    .bind(sender.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(db)
    .await?;
    let visible = get(db, sender, id).await.is_ok();
    let mut message = row.map(|r| r.into_api(false)).ok_or(StoreError::NotFound)?;
    if !visible {
        message.body = None;
    }
    Ok(message)
}

/// Like [`get`], but inside a transaction and locking the message row.
async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    caller: UserId,
    id: MessageId,
) -> Result<MessageRow> {
    let row: Option<MessageRow> = sqlx::query_as(concat!(
        message_select!(),
        "where m.id = $2 and ",
        visible_to_caller!(),
        " for update of m"
    ))
    .bind(caller.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.ok_or(StoreError::NotFound)
}

async fn thread_of(db: &PgPool, id: MessageId) -> Result<ThreadId> {
    let thread: Option<Uuid> = sqlx::query_scalar("select thread_id from messages where id = $1")
        .bind(id.as_uuid())
        .fetch_optional(db)
        .await?;
    thread.map(Into::into).ok_or(StoreError::NotFound)
}

/// What the caller's read of a message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The message, with its body.
    pub message: Message,
    /// True when this read consumed a read-once message (it is gone for both sides now).
    pub consumed: bool,
}

/// The recipient's read of a message: for a read-once message it returns the body exactly once
/// and consumes the message atomically; any other message is returned as by [`get`].
pub async fn open(db: &PgPool, caller: UserId, id: MessageId) -> Result<Written<Opened>> {
    let message = get(db, caller, id).await?;
    if !(message.read_once && message.recipient.id == caller) {
        let opened = Opened {
            message,
            consumed: false,
        };
        return Ok(Written::new(opened, false));
    }
    let mut tx = db.begin().await?;
    let peer = lock_thread(&mut tx, caller, message.thread_id).await?;
    // Under the thread lock a concurrent opener has either committed (the row is no longer
    // visible) or not started: exactly one of them gets the body.
    let mut row = get_for_update(&mut tx, caller, id).await?;
    let was_read = row.is_read;
    row.is_read = true;
    let (sender_read, sender_deleted): (bool, bool) = sqlx::query_as(
        "update messages set consumed_at = clock_timestamp(), recipient_read = true \
         where id = $1 returning sender_read, sender_deleted_at is not null",
    )
    .bind(id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    // The message leaves both participants' counts.
    uncount(
        &mut tx,
        message.thread_id,
        caller,
        Side::Received,
        !was_read,
    )
    .await?;
    if !sender_deleted {
        uncount(&mut tx, message.thread_id, peer, Side::Sent, !sender_read).await?;
    }
    announce(
        &mut tx,
        Event::ThreadUpdated {
            thread_id: message.thread_id,
        },
        vec![caller, peer],
    )
    .await?;
    tx.commit().await?;
    Ok(Written::with_jobs(Opened {
        message: row.into_api(true),
        consumed: true,
    }))
}

/// Sets the caller's own read flag on a message; idempotent (a flag already as asked writes no
/// job).
pub async fn set_read(
    db: &PgPool,
    caller: UserId,
    id: MessageId,
    read: bool,
) -> Result<Written<Message>> {
    let thread = thread_of(db, id).await?;
    let mut tx = db.begin().await?;
    lock_thread(&mut tx, caller, thread).await?;
    let row = get_for_update(&mut tx, caller, id).await?;
    let changed = row.is_read != read;
    if changed {
        let column = if row.sender_id == caller.as_uuid() {
            "sender_read"
        } else {
            "recipient_read"
        };
        sqlx::query(AssertSqlSafe(format!(
            "update messages set {column} = $2 where id = $1"
        )))
        .bind(id.as_uuid())
        .bind(read)
        .execute(&mut *tx)
        .await?;
        counters::read_changed(&mut tx, thread, caller, read).await?;
        let event = Event::MessageRead {
            message_id: id,
            thread_id: thread,
            is_read: read,
        };
        announce(&mut tx, event, vec![caller]).await?;
    }
    tx.commit().await?;
    Ok(Written::new(get(db, caller, id).await?, changed))
}

/// Deletes the caller's copy of a message; the other participant keeps theirs.
pub async fn delete_for_me(db: &PgPool, caller: UserId, id: MessageId) -> Result<Written<()>> {
    let thread = thread_of(db, id).await?;
    let mut tx = db.begin().await?;
    lock_thread(&mut tx, caller, thread).await?;
    let row = get_for_update(&mut tx, caller, id).await?;
    let side = if row.sender_id == caller.as_uuid() {
        Side::Sent
    } else {
        Side::Received
    };
    let column = match side {
        Side::Sent => "sender_deleted_at",
        Side::Received => "recipient_deleted_at",
    };
    sqlx::query(AssertSqlSafe(format!(
        "update messages set {column} = now() where id = $1"
    )))
    .bind(id.as_uuid())
    .execute(&mut *tx)
    .await?;
    uncount(&mut tx, thread, caller, side, !row.is_read).await?;
    announce(
        &mut tx,
        Event::ThreadUpdated { thread_id: thread },
        vec![caller],
    )
    .await?;
    tx.commit().await?;
    Ok(Written::with_jobs(()))
}
