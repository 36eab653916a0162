-- A thread's expired messages not yet purged, which a thread's header, a folder's pages and
-- every write to the thread subtract from the caller's counters, were found through an index
-- of the thread's ephemeral messages by thread alone: every one of them was read to find the
-- expired few, and an attacker's messages expiring next month were read on each look at the
-- thread. Indexed by thread and expiry, the expired ones are a range (decision 55).
--
-- Plain `create index` (sqlx runs a migration in a transaction): the build reads `messages`
-- and blocks writes to it meanwhile. On a large table, create it beforehand with
-- `create index concurrently if not exists` and this definition.
create index if not exists messages_thread_expiring on messages (thread_id, expires_at)
    where expires_at is not null and purged_at is null and consumed_at is null;
drop index if exists messages_thread_ephemeral;
