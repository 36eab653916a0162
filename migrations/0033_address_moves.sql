-- An account moves to another address (decision 77): when it last did, so reports about mail
-- sent to the address it left (a late bounce, a complaint, or one forged by whoever reads that
-- mailbox later) are told apart and ignored; and when it first proved an address it has since
-- left, so that its messages are not held back as an unverified sender's while the new address
-- waits to be confirmed. Both null until the account first moves; adding nullable columns
-- rewrites nothing.
alter table users add column email_changed_at timestamptz;
alter table users add column email_proven_at timestamptz;
