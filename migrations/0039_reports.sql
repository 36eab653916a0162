-- Messages people reported to the operators (decision 89). Each keeps a copy of what was
-- reported (subject, body, sender) as the reporter received it, so the report outlives a
-- deletion or the purge of an ephemeral message; the sender's and reporter's ids go with their
-- accounts, their usernames stay. Resolved reports are deleted 90 days after their resolution.
create table reports (
    id uuid primary key,
    reporter_id uuid references users (id) on delete set null,
    reporter_username text not null,
    reported_id uuid references users (id) on delete set null,
    reported_username text not null,
    message_id uuid not null,
    thread_id uuid not null,
    reason text not null check (reason in ('spam', 'harassment', 'other')),
    note text not null default '' check (char_length(note) <= 500),
    subject text not null,
    -- Null when the message's body was already erased (expired or read once, then purged).
    body text,
    sent_at timestamptz not null,
    created_at timestamptz not null default now(),
    resolved_at timestamptz,
    resolved_by text,
    resolution text check (resolution in ('dismissed', 'actioned')),
    resolution_note text not null default '' check (char_length(resolution_note) <= 500)
);
-- One report of a message by its recipient; a second is answered with the first.
create unique index reports_reporter_message on reports (reporter_id, message_id);
-- A reporter's reports of the last day (at most 20).
create index reports_reporter_day on reports (reporter_id, created_at);
-- The operators' queue: open reports, oldest first; resolved ones, newest first (and, by the
-- same index, those past their 90 days for the worker's clean-up).
create index reports_open on reports (created_at, id) where resolved_at is null;
create index reports_resolved on reports (resolved_at, id) where resolved_at is not null;
-- How many open reports name one account (shown beside each report).
create index reports_reported_open on reports (reported_id) where resolved_at is null;
