-- Every job id is a UUIDv7, so the primary key is in creation order and the operators' job
-- list reads one page of it instead of sorting every matching job (decision 44). The server
-- and worker make v7 ids in Rust; this makes them in SQL, for the statements that insert jobs
-- for rows they select (daily digests), and takes a time for tests that fake an old ledger.
-- PostgreSQL 18's `uuidv7()` does the same; this one has a name of its own so that both can
-- live side by side.
create function convos_uuidv7(at timestamptz default clock_timestamp()) returns uuid
language sql volatile parallel safe as $$
  select encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send(floor(extract(epoch from at) * 1000)::bigint) from 3)
              from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;
