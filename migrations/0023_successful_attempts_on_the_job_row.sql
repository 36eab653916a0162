-- A successful attempt is kept on its job's row instead of in a history row of its own
-- (decision 40): the history insert was about 30% of the outcome statement, the ledger's
-- costliest, and its row repeated what the job row already holds (the worker, the end, no
-- error) but for the attempt's start, which `jobs.started_at` now holds: the start of the
-- attempt whose outcome the row records.
--
-- `job_history` is the whole history: the rows of `job_attempts` (failed and lost attempts,
-- late runs, and the successful ones workers before decision 40 wrote), and each done or
-- skipped job's last attempt, from its row, when no history row has it.
alter table jobs add column started_at timestamptz;

create view job_history as
select job_id, attempt, worker, started_at, finished_at, error
from job_attempts
union all
select j.id, j.attempts, coalesce(j.worker, 'unknown'), j.started_at, j.finished_at, null
from jobs j
where j.state in ('done', 'skipped') and j.started_at is not null
  and not exists (select 1 from job_attempts a where a.job_id = j.id and a.attempt = j.attempts);
