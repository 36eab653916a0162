-- The purge runs once a period (a minute by default) and usually finds nothing to do. Without
-- these it read all of `messages` for consumed read-once messages (no index has
-- `consumed_at`), every live ephemeral message for the expired ones, and every idempotency key
-- for those past a day.
--
-- Plain `create index` (sqlx runs a migration in a transaction, where `concurrently` is not
-- allowed): each build reads its table and blocks writes to it meanwhile. For a table too
-- large for that pause, create them beforehand with `create index concurrently if not exists`
-- and these definitions.
--
-- Read-once messages opened and not yet erased: a handful, erased within a period.
create index if not exists messages_consumed_unpurged on messages (id)
    where consumed_at is not null and purged_at is null;
-- Ephemeral messages not yet erased, by expiry: the purge reads the expired ones in order.
create index if not exists messages_expiring on messages (expires_at)
    where expires_at is not null and purged_at is null and consumed_at is null;
-- Idempotency keys by age (a B-tree: a block-range index would stop narrowing once purged
-- pages are reused by new keys).
create index if not exists idempotency_keys_created on idempotency_keys (created_at);
