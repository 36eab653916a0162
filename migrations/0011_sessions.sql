-- Sessions users can see and end (hardening).
--
-- A session is one API token. `client` names what logged in (the request's User-Agent,
-- sanitised and cut to 100 characters by the server) so the owner can tell sessions apart in
-- `GET /api/v1/sessions`. Sessions expire `session_idle_days` after their last use (or their
-- creation, if never used) and `session_max_days` after their creation however busy; the
-- lifetimes are settings, so the queries apply them rather than a stored expiry. The session
-- list reads one user's tokens through `api_tokens_user` (0001).
alter table api_tokens
    add column client text check (char_length(client) <= 128);
