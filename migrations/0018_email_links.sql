-- Stopping email from the email (decision 27): a pause of all of a user's email notifications,
-- set and cleared through the signed page linked from every notification. While
-- `email_paused_until` is in the future, notify_email skips with reason `paused`; null or past
-- means not paused. Read only with the user's row, by primary key: no index.
alter table users add column email_paused_until timestamptz;
