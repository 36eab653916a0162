-- A thread's messages that are neither erased by the purge nor consumed (read once), newest
-- first: what every reader of a thread walks (its listing's newest message, its header, its
-- pages, marking it read, deleting one's copies). The purge keeps an erased message's row, and
-- the thread's full index (`messages_thread_created`) kept it in every walk: a sender's
-- thousands of messages expiring in ten seconds, erased, lay for good above the one message
-- their reader could see, and each look at the thread read them all (an audit measured an
-- inbox page at 92–114 ms against 1.3 ms, and a delete past the statement limit after a few
-- weeks of them). The full index stays for the walks that want every row (a reply's parent,
-- an email's earlier messages).
--
-- Plain `create index` (sqlx runs a migration in a transaction): the build reads `messages`
-- and blocks writes to it meanwhile. On a large table, create it beforehand with
-- `create index concurrently if not exists` and this definition.
create index if not exists messages_thread_live
    on messages (thread_id, created_at desc, id desc)
    where purged_at is null and consumed_at is null;
