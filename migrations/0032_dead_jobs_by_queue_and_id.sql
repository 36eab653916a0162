-- Dead jobs by queue and id (UUIDv7, so newest first is id order): an operator's bulk retry or
-- discard walks a queue's dead (or retrying) jobs a window at a time, newest first (decision 67). Indexed by
-- queue alone, each window sorted every dead job of the queue: a million after a relay's
-- outage, seconds a window. The board's dead counts read this index as they read the old one.
-- Only a job becoming dead (or leaving that state) writes to it.
--
-- Plain `create index` (sqlx runs a migration in a transaction): the build reads `jobs` and
-- blocks writes to it meanwhile. On a large ledger, create it beforehand with
-- `create index concurrently if not exists` and this definition.
create index if not exists jobs_dead_by_id on jobs (kind, id) where state = 'dead';
drop index if exists jobs_dead;
-- The same for jobs waiting to retry, which "retry them now" walks the same way: through the
-- due index (by queue and time), each window sorted the queue's whole backlog. Only a job
-- entering or leaving `retry` (a failed attempt) writes to it, never a first run.
create index if not exists jobs_retrying_by_id on jobs (kind, id) where state = 'retry';
