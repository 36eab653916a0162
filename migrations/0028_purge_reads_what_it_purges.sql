-- Every worker purges every minute, and usually finds nothing to do. Without these it read
-- all of `messages` for consumed read-once messages (no index has `consumed_at`), every live
-- ephemeral message for the expired ones, and every idempotency key for those past a day.
--
-- Read-once messages opened and not yet erased: a handful, erased within a minute.
create index messages_consumed_unpurged on messages (id)
    where consumed_at is not null and purged_at is null;
-- Ephemeral messages not yet erased, by expiry: the purge reads the expired ones in order.
create index messages_expiring on messages (expires_at)
    where expires_at is not null and purged_at is null and consumed_at is null;
-- Idempotency keys by age: rows are written in time order, so a block-range index stays a few
-- pages and costs a send next to nothing; the purge reads the ranges it deletes from and the
-- newest one (not summarised yet), whatever the number of keys.
create index idempotency_keys_created on idempotency_keys using brin (created_at)
    with (pages_per_range = 32);
