-- A job's key is unique (one effect per key), and its unique index took an entry on the
-- insert of every job and on each of its state changes (never HOT, since `state` is indexed).
-- A `deliver` job's key is unique by construction: it names a new message's id, or an id made
-- for the event. The index now holds every other kind's keys only, so a live event, most of the
-- ledger's jobs, writes three index entries fewer in its life (decision 42).
drop index jobs_key;
create unique index jobs_key on jobs (key) where kind <> 'deliver';
