-- The caller's unread totals (`GET /api/v1/me`) subtract the messages that expired and await the
-- purge. They were looked for thread by thread, one probe for each of the caller's unread
-- threads: 100,000 unread threads (one send each, from anyone) took 0.2–0.4 s a call, growing
-- towards the statement limit. These find the caller's expired messages directly, a few rows
-- between purges; only ephemeral messages not yet erased are indexed, so an ordinary send
-- writes neither (decision 54).
--
-- Plain `create index` (sqlx runs a migration in a transaction): each build reads `messages`
-- and blocks writes to it meanwhile. On a large table, create them beforehand with
-- `create index concurrently if not exists` and these definitions.
create index if not exists messages_recipient_expiring on messages (recipient_id, expires_at)
    where expires_at is not null and purged_at is null and consumed_at is null;
create index if not exists messages_sender_expiring on messages (sender_id, expires_at)
    where expires_at is not null and purged_at is null and consumed_at is null;

