-- The email job that last tried each delivery (decision 59's operator actions): a dead job's
-- discard fails the deliveries it tried and left queued, not those a live job has taken on
-- since; a retry queues again the failed deliveries its own job tried, not those another job's
-- discard ended. Null for deliveries no job tried, or decided before this column. Adding a
-- nullable column rewrites nothing.
alter table deliveries add column tried_by uuid;
