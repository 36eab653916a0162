-- A user's threads with unread messages, newest activity first: a page of `?unread=true` reads
-- these threads, in order, however many read threads the folder holds (it walked the folder's
-- own index and tested every thread: 305 ms a page in a 100,000-thread inbox read but for its
-- newest threads). The same rows as the index it replaces, which the unread counts per folder
-- on /me read by user (now this key's first column).
--
-- Plain `create index` (sqlx runs a migration in a transaction): the build reads
-- `thread_participants` and blocks writes to it meanwhile. On a large table, create it
-- beforehand with `create index concurrently if not exists` and this definition.
create index if not exists thread_participants_unread_by_activity
    on thread_participants (user_id, last_activity_at desc, thread_id desc)
    where unread_count > 0;
drop index if exists thread_participants_any_unread;
