-- Turning email back on from a link in an email left a daily-digest reader's next digest
-- unplaced when one had come due while email was off: they got no email again, ever, while
-- their settings said daily. The link now places it (as `PATCH /me` always did); this places
-- it for those already caught. One pass over `users`, each row at most once.
update users set next_digest_at = next_digest_at(digest_hour, time_zone, now())
where email_notifications and email_digest and next_digest_at is null;
