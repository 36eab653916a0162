-- Email ownership (decision 14): an address belongs to the account that verified it.
--
-- Before, the first account to type an address owned it, so anyone could lock the real owner
-- out. Now any number of accounts may claim an address; only one can have it verified. An
-- unverified claim blocks nobody, and once another account verifies the address it can never
-- be verified (its links stop working), so a squatted claim simply lapses.
drop index users_email_key;

-- Sign-up's "is this address someone's?" and the uniqueness of verified addresses.
create unique index users_verified_email_key on users (lower(email))
    where email_verified_at is not null;

-- The verification email is a job like any other (its link is signed, so no table is needed).
alter table jobs drop constraint jobs_kind_check;
alter table jobs add constraint jobs_kind_check
    check (kind in ('deliver', 'notify_email', 'purge_expired', 'verify_email'));

alter table queue_controls drop constraint queue_controls_kind_check;
alter table queue_controls add constraint queue_controls_kind_check
    check (kind in ('deliver', 'notify_email', 'purge_expired', 'verify_email'));
