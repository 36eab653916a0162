-- A notify job claims the deliveries it is about to email, so two jobs for the same thread and
-- recipient (one retrying, one new) can never both send them. A claim older than the job
-- deadline belongs to a crashed job and can be taken over.
alter table deliveries add column claimed_by uuid;
alter table deliveries add column claimed_at timestamptz;
