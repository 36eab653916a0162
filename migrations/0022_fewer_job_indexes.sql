-- Every index of `jobs` takes an entry each time a job changes state (the update is a new row
-- version, never HOT, since `state` is indexed), so the ledger's cost per job grows with each
-- index (decision 38). `jobs_kind_state` indexed every job, finished ones included, for three
-- counts: in-flight jobs of a kind (the relay's room, the ops board) and dead jobs of a kind
-- (the board). The in-flight index now leads with the kind, and dead jobs have a small index
-- of their own, which only a job becoming dead writes to.
drop index jobs_inflight;
create index jobs_inflight on jobs (kind, deadline_at) where state in ('dispatched', 'running');
create index jobs_dead on jobs (kind) where state = 'dead';
drop index jobs_kind_state;
