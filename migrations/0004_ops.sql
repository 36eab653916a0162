-- Operations: pausing queues, seeing workers, auditing operator actions, discarding jobs.

-- A discarded job was dead and an operator chose not to run it again.
alter table jobs drop constraint jobs_state_check;
alter table jobs add constraint jobs_state_check
    check (state in ('pending', 'dispatched', 'running', 'retry', 'done', 'skipped', 'dead',
                     'discarded'));

-- One row per queue that has ever been paused or resumed; absent means running.
create table queue_controls (
    kind text primary key check (kind in ('deliver', 'notify_email', 'purge_expired')),
    paused boolean not null default false,
    updated_at timestamptz not null default now(),
    updated_by uuid references users (id)
);

-- Every worker process reports here on each relay pass.
create table worker_heartbeats (
    name text primary key,
    host text not null,
    pid integer not null,
    started_at timestamptz not null,
    last_seen_at timestamptz not null default now()
);

-- Who did what to the queues, and to how many jobs.
create table audit_log (
    id uuid primary key,
    actor_id uuid not null references users (id),
    action text not null,
    target text not null,
    affected bigint not null,
    details jsonb not null default '{}',
    created_at timestamptz not null default now()
);

create index audit_log_created on audit_log (created_at desc);
-- Board and list queries by state and time.
create index jobs_finished on jobs (kind, finished_at) where finished_at is not null;
create index job_attempts_finished on job_attempts (finished_at) where error is not null;
