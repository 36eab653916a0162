-- Email that comes back (decision 26): replies to notifications, bounces and complaints.
--
-- Every received message is written here whole before the SMTP listener answers 250 or the
-- webhook 2xx, with an `inbound_mail` job in the same transaction; the job reads it, decides,
-- and records what became of it. Nothing received is lost, and every refusal is on record.
create table inbound_mail (
    id uuid primary key,
    received_at timestamptz not null default now(),
    -- How it arrived.
    via text not null check (via in ('smtp', 'webhook')),
    -- The SMTP envelope (the webhook's provider may not say: then null and empty).
    envelope_from text,
    envelope_to text[] not null default '{}',
    -- The message as received, headers and body.
    raw bytea not null,
    -- received → posted (a reply in a thread) | refused (with reason) | bounce | complaint |
    -- ignored (automatic mail that needs nothing, e.g. a delayed-delivery notice).
    status text not null default 'received'
        check (status in ('received', 'posted', 'refused', 'bounce', 'complaint', 'ignored')),
    -- Short classified reason (unknown_token, wrong_sender, auto_reply, duplicate, ...).
    reason text,
    -- What we could say about it (for operators and the explanatory email).
    detail text,
    -- The received message's own Message-ID (a duplicate's check).
    message_id text,
    -- Whom and what it was about, once known.
    user_id uuid references users (id) on delete set null,
    thread_id uuid references threads (id) on delete set null,
    posted_id uuid references messages (id) on delete set null,
    -- When the explanatory email about a refusal went out (at most once).
    answered_at timestamptz,
    processed_at timestamptz
);

-- One reply per received Message-ID and user: the same email arriving twice (by SMTP and by
-- the webhook, or an MTA's retry) posts once.
create unique index inbound_mail_posted_once on inbound_mail (user_id, message_id)
    where status = 'posted';
-- A user's received mail, newest first (their refusals; answering caps).
create index inbound_mail_by_user on inbound_mail (user_id, received_at desc);
-- Operators' list, newest first, and the purge of old rows.
create index inbound_mail_received_at on inbound_mail (received_at);

-- Reply addresses issued before this instant no longer work (the owner revoked them).
alter table users add column reply_addresses_revoked_at timestamptz;
-- When the user last marked a notification as spam (a feedback report): their email was
-- turned off then, and `GET /me` says why.
alter table users add column email_complained_at timestamptz;

alter table jobs drop constraint jobs_kind_check;
alter table jobs add constraint jobs_kind_check
    check (kind in ('deliver', 'notify_email', 'purge_expired', 'verify_email', 'inbound_mail'));

alter table queue_controls drop constraint queue_controls_kind_check;
alter table queue_controls add constraint queue_controls_kind_check
    check (kind in ('deliver', 'notify_email', 'purge_expired', 'verify_email', 'inbound_mail'));
