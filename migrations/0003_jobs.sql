-- The job ledger (a transactional outbox) and notification bookkeeping.
-- Jobs are written in the same transaction as the message that causes them; Redis only carries
-- the current working set to the workers (decision 1).

create table jobs (
    id uuid primary key,
    kind text not null check (kind in ('deliver', 'notify_email', 'purge_expired')),
    -- One effect per key: a job for the same thing is never enqueued twice.
    key text not null,
    -- notify_email: one not-yet-started job per (thread, recipient), so messages arriving
    -- within the delay window share one email.
    coalesce_key text,
    payload jsonb not null,
    state text not null default 'pending'
        check (state in ('pending', 'dispatched', 'running', 'retry', 'done', 'skipped', 'dead')),
    attempts integer not null default 0,
    max_attempts integer not null check (max_attempts > 0),
    next_run_at timestamptz not null default now(),
    -- For dispatched and running jobs: when the job counts as lost and is dispatched again.
    deadline_at timestamptz,
    last_error text,
    -- What a finished job did (e.g. "sent", "skipped: already_read").
    outcome text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    finished_at timestamptz
);

create unique index jobs_key on jobs (key);
create unique index jobs_pending_coalesce on jobs (coalesce_key)
    where state = 'pending' and coalesce_key is not null;
-- The relay's two scans: due work, and in-flight work past its deadline.
create index jobs_due on jobs (next_run_at) where state in ('pending', 'retry');
create index jobs_inflight on jobs (deadline_at) where state in ('dispatched', 'running');
create index jobs_kind_state on jobs (kind, state);

-- Every attempt, with its error and duration (for the ops views).
create table job_attempts (
    job_id uuid not null references jobs (id) on delete cascade,
    attempt integer not null,
    worker text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    error text,
    primary key (job_id, attempt)
);

-- Per message and recipient: what became of the email notification, for the sender to see.
create table deliveries (
    message_id uuid not null references messages (id),
    recipient_id uuid not null references users (id),
    thread_id uuid not null references threads (id),
    status text not null default 'queued'
        check (status in ('queued', 'sent', 'skipped', 'failed')),
    -- Skip reason (already_read, deleted, expired, muted, email_off, daily_cap) or error.
    reason text,
    email_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (message_id, recipient_id)
);

create index deliveries_queued on deliveries (thread_id, recipient_id) where status = 'queued';

-- Emails actually handed to SMTP, for the daily cap and for threading headers.
create table emails (
    id uuid primary key,
    recipient_id uuid not null references users (id),
    thread_id uuid not null references threads (id),
    -- The newest message the email is about; its Message-ID is derived from it.
    message_id uuid not null references messages (id),
    sent_at timestamptz not null default now()
);

create index emails_recipient_sent on emails (recipient_id, sent_at desc);
