-- Search reads only the caller's own messages (decision 17).
--
-- Each participant's messages, newest first: search walks the caller's received and sent
-- messages from the newest and stops at its candidate bound, so a common word costs about the
-- same in any mailbox. The key order matches search's candidate order (`created_at desc, id
-- desc`).
create index if not exists messages_recipient_created
    on messages (recipient_id, created_at desc, id desc);
create index if not exists messages_sender_created
    on messages (sender_id, created_at desc, id desc);

-- Each participant's body words: a rare word is found among the caller's own messages (the
-- participant's posting list intersected with the word's, inside the index), not among
-- everyone's. `btree_gin` (PostgreSQL's contrib, a trusted extension: the database owner may
-- create it without being a superuser) lets a GIN index hold the uuid beside the words. These
-- two serve every search on message bodies, so the body-only index of 0005 goes.
create extension if not exists btree_gin;
create index if not exists messages_recipient_search
    on messages using gin (recipient_id, search);
create index if not exists messages_sender_search
    on messages using gin (sender_id, search);
drop index if exists messages_search;

-- Plain `create index`: sqlx runs a migration in a transaction, where `concurrently` is not
-- allowed, so the build blocks writes to `messages` while it runs (about 1.5 s per million
-- messages for each btree and 12 s for each GIN index on the development machine). For a
-- table too large for that pause, create the four indexes beforehand with `create index
-- concurrently if not exists` and these definitions; this migration then only drops the old one.
