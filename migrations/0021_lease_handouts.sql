-- Each hand-out of a job has its own number (decision 36). A lease given back uncounted (a
-- paused queue, a ticket that could not be pushed, an email job's lease that lapsed
-- unclaimed) is handed out again under the same attempt number; the hand-out number tells the
-- two tickets apart, so a stray ticket of the first hand-out runs nothing.
alter table jobs add column handouts integer not null default 0;
