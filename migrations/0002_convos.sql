-- Threads, messages and each participant's view of them.

-- A thread owns the subject; messages have none of their own.
create table threads (
    id uuid primary key,
    subject text not null check (char_length(subject) between 1 and 140),
    created_by uuid not null references users (id),
    created_at timestamptz not null default now()
);

create table messages (
    id uuid primary key,
    thread_id uuid not null references threads (id),
    sender_id uuid not null references users (id),
    recipient_id uuid not null references users (id),
    -- Null once an ephemeral message's body has been purged.
    body text check (char_length(body) between 1 and 64000),
    created_at timestamptz not null default clock_timestamp(),
    in_reply_to uuid references messages (id),
    expires_at timestamptz,
    read_once boolean not null default false,
    -- Set, atomically, by the recipient's one read of a read-once message.
    consumed_at timestamptz,
    -- Set by the purge job when it has erased the body of an expired or consumed message.
    purged_at timestamptz,
    -- Each participant's own read flag; a sender's own message starts read for them.
    sender_read boolean not null default true,
    recipient_read boolean not null default false,
    -- Delete-for-me, per participant.
    sender_deleted_at timestamptz,
    recipient_deleted_at timestamptz,
    check (sender_id <> recipient_id),
    check (read_once or consumed_at is null)
);

-- A thread's messages, newest first: the thread view and "the newest message I can see".
create index messages_thread_created on messages (thread_id, created_at desc, id desc);

-- Ephemeral messages that may have expired without the purge job having run yet: read paths
-- subtract them from the participant counters below.
create index messages_thread_ephemeral on messages (thread_id)
    where expires_at is not null and purged_at is null and consumed_at is null;

-- One row per thread and participant, kept consistent in the same transaction as every
-- message insert, read flag change, delete and consumption. It is what mailbox listings scan.
create table thread_participants (
    thread_id uuid not null references threads (id),
    user_id uuid not null references users (id),
    -- The other participant (threads are between two people).
    peer_id uuid not null references users (id),
    archived boolean not null default false,
    muted boolean not null default false,
    -- Messages this user received / sent that are still visible to them.
    received_count integer not null default 0 check (received_count >= 0),
    sent_count integer not null default 0 check (sent_count >= 0),
    -- Of those, the ones whose read flag is false for this user.
    unread_count integer not null default 0 check (unread_count >= 0),
    last_activity_at timestamptz not null,
    primary key (thread_id, user_id)
);

-- One partial index per folder, so "my <folder>, newest activity first, one page" is an index
-- range scan whatever the mailbox size. The key order matches the keyset cursor.
create index thread_participants_inbox
    on thread_participants (user_id, last_activity_at desc, thread_id desc)
    where received_count > 0 and not archived;
create index thread_participants_sent
    on thread_participants (user_id, last_activity_at desc, thread_id desc)
    where sent_count > 0;
create index thread_participants_archive
    on thread_participants (user_id, last_activity_at desc, thread_id desc)
    where archived and received_count + sent_count > 0;
create index thread_participants_all
    on thread_participants (user_id, last_activity_at desc, thread_id desc)
    where received_count + sent_count > 0;
-- The unread total on /me.
create index thread_participants_unread
    on thread_participants (user_id)
    where unread_count > 0 and not archived;

-- Idempotency-Key: the same key from the same user within 24 hours returns the original message.
create table idempotency_keys (
    user_id uuid not null references users (id) on delete cascade,
    key text not null,
    -- SHA-256 of the request's route and body, to refuse a key reused for a different request.
    request_hash bytea not null,
    message_id uuid not null references messages (id) deferrable initially deferred,
    created_at timestamptz not null default now(),
    primary key (user_id, key)
);
