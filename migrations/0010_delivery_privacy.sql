-- Email failures and the privacy of deliveries (decision 18).
--
-- `deliveries.reason` now holds only a short classified reason (a skip reason, or for failures
-- `rejected`, `temporary_failure`, `invalid_address`); the raw SMTP text, which real servers
-- fill with the recipient's address, moves to `error`, shown to the recipient and admins only.
alter table deliveries add column error text;

update deliveries set error = reason, reason = 'temporary_failure'
where reason is not null
  and (status = 'failed' or status = 'queued');

-- When the user last turned email notifications back on: unsubscribe links issued before it
-- stop working, so an old email cannot turn them off again.
alter table users add column email_resubscribed_at timestamptz;
