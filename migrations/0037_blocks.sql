-- The people each user has blocked: a blocked person can start no thread with the blocker and
-- write in none of their threads (decision 87). Read by the key on every send (is the sender
-- blocked by the recipient?) and listed by the blocker.
create table blocks (
    user_id uuid not null references users (id) on delete cascade,
    blocked_id uuid not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (user_id, blocked_id),
    check (user_id <> blocked_id)
);
-- A deleted account's blocks of others go with it (the cascade on `blocked_id` reads by it).
create index blocks_blocked on blocks (blocked_id);
