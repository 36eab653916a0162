-- When the operators suspended an account (decision 88): it cannot log in, its sessions are
-- gone, and its reply addresses stop working, until an operator lifts the suspension. Null for
-- every account in good standing; read with the user's row (no index needed).
alter table users add column if not exists suspended_at timestamptz;
