-- An operator's retry of dead email jobs puts their failed deliveries back in the queue,
-- found by thread and recipient as the queued ones are (`deliveries_queued`). Without an index
-- each retried job read every delivery ever made. Failed deliveries are few, and only a
-- delivery that fails writes here.
--
-- Plain `create index` (sqlx runs a migration in a transaction, where `concurrently` is not
-- allowed): the build reads all of `deliveries` and blocks writes to it meanwhile. For a table
-- too large for that pause, create it beforehand with `create index concurrently if not
-- exists` and this definition.
create index if not exists deliveries_failed on deliveries (thread_id, recipient_id)
    where status = 'failed';
