-- Email ownership and bounces (hardening).
--
-- `email_verified_at` is set once the owner followed the link sent to the address; nothing but
-- that verification email goes to an unverified address. `email_bounced_at` is set when the
-- address was rejected permanently (SMTP 5xx); no email goes there until its owner verifies it
-- again, which clears it.
alter table users
    add column email_verified_at timestamptz,
    add column email_bounced_at timestamptz;

-- Accounts made before verification existed have been receiving email all along: they are
-- taken as verified rather than cut off (decision 14).
update users set email_verified_at = created_at;
