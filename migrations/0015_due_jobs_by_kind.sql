-- The relay hands out due jobs one kind at a time (`jobs::dispatch_due`), so the index of due
-- jobs leads with the kind: a pass for one kind no longer steps over the other kinds' due
-- entries (nor over their dead entries, which a busy ledger leaves until vacuum). The ops
-- board's "oldest due" per kind reads it too.
create index jobs_due_by_kind on jobs (kind, next_run_at) where state in ('pending', 'retry');
drop index jobs_due;
