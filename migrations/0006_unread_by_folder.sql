-- Unread counts per folder on /me read only the caller's threads that have unread messages.
create index thread_participants_any_unread on thread_participants (user_id) where unread_count > 0;
