-- The verification emails each address was sent, so the worker can cap them per address over
-- all accounts (an hour and a day; decision 14) without scanning the job ledger.
--
-- A row is written, under a per-address advisory lock, before the email is handed to SMTP, and
-- deleted if the send fails: jobs in flight count, so concurrent jobs cannot overshoot the cap.
-- Rows older than a day no longer matter; the worker deletes them as it writes new ones.
create table verification_emails (
    id bigint generated always as identity primary key,
    -- Lower case: one mailbox however its claimants spelled it.
    address text not null check (address = lower(address)),
    sent_at timestamptz not null default now()
);

-- The caps' count: one address's rows of the last day.
create index verification_emails_address on verification_emails (address, sent_at);
-- Deleting the rows older than a day.
create index verification_emails_sent_at on verification_emails (sent_at);

-- The emails already sent in the last day still count.
insert into verification_emails (address, sent_at)
select lower(payload->>'email'), finished_at
from jobs
where kind = 'verify_email' and state = 'done' and finished_at > now() - interval '1 day'
  and payload->>'email' is not null;
