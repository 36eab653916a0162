-- The queue board's "succeeded" and "failed" in the last hour and day, counted as outcomes are
-- written instead of from the ledger's rows (decision 49). Counting the rows read every job
-- finished and every attempt failed that day on each refresh of each operator's board (about
-- 0.3 s for a million finished jobs), so the board grew with the day's traffic until it ran
-- past the statement timeout.
--
-- One row per kind, minute and process: each worker adds its outcome batch's counts to its own
-- row (one sequential writer per process); the lost-job sweeps share `lost`. The board sums at
-- most a day of minutes per kind, through the primary key. The purge deletes rows older than
-- two days.
create table job_outcome_counts (
    kind text not null,
    minute timestamptz not null,
    -- The process that counted (a worker's name; `lost` for the lost-job sweep).
    counted_by text not null,
    succeeded bigint not null default 0,
    failed bigint not null default 0,
    primary key (kind, minute, counted_by)
);

-- What the last day already holds, so that the board does not start from zero on upgrade.
insert into job_outcome_counts (kind, minute, counted_by, succeeded)
select kind, date_trunc('minute', finished_at), 'before-0026', count(*)
from jobs
where state in ('done', 'skipped') and finished_at > now() - interval '1 day'
group by 1, 2;

insert into job_outcome_counts (kind, minute, counted_by, failed)
select j.kind, date_trunc('minute', a.finished_at), 'before-0026', count(*)
from job_attempts a join jobs j on j.id = a.job_id
where a.error is not null and a.finished_at > now() - interval '1 day'
group by 1, 2
on conflict (kind, minute, counted_by) do update set failed = excluded.failed;
