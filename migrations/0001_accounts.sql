-- Accounts and API tokens.

create table users (
    id uuid primary key,
    -- Stored lower-case by the API; the check keeps anything else out.
    username text not null check (username ~ '^[a-z0-9_.-]{3,32}$'),
    email text not null check (char_length(email) <= 254),
    display_name text not null check (char_length(display_name) between 1 and 64),
    -- argon2id PHC string.
    password_hash text not null,
    is_admin boolean not null default false,
    email_notifications boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Uniqueness is case-insensitive for both; the username index also serves the
-- directory's prefix search (`lower(username) like 'ab%'`).
create unique index users_username_key on users (lower(username) text_pattern_ops);
create unique index users_email_key on users (lower(email));

create table api_tokens (
    id uuid primary key,
    user_id uuid not null references users (id) on delete cascade,
    -- SHA-256 of the 32 random bytes; the token itself is shown once and never stored.
    token_hash bytea not null unique,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

create index api_tokens_user on api_tokens (user_id);
