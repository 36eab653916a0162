-- Each message's search vector holds its thread's subject words beside its body words (decision
-- 23), so a search is one index path over the caller's own messages: a common word no longer
-- makes search look up each candidate's thread to match its subject.
--
-- Subject words carry weight A and body words weight D, which ranking weighs apart. A read-once
-- message's body is never indexed (it is never searchable): its vector holds the subject alone.
-- A thread's subject never changes, so a message's subject words are fixed at insert.

-- The one definition of a message's search vector: the trigger below, this migration's backfill
-- and the benchmark's generated corpus (which inserts with triggers off) all call it.
create function message_search_vector(subject text, body text, read_once boolean)
returns tsvector language sql immutable parallel safe as $$
  select setweight(to_tsvector('simple', coalesce(subject, '')), 'A')
      || case when read_once then ''::tsvector
              else setweight(to_tsvector('simple', coalesce(body, '')), 'D') end
$$;

create function messages_set_search() returns trigger language plpgsql as $$
begin
  new.search := message_search_vector(
    (select subject from threads where id = new.thread_id), new.body, new.read_once);
  return new;
end
$$;

-- Dropping the generated column drops the two participant GIN indexes of 0012 with it.
alter table messages drop column search;
alter table messages add column search tsvector;

create trigger messages_search before insert or update of body, read_once, thread_id
  on messages for each row execute function messages_set_search();

-- Rewrites every message once (about a minute per million on the development machine; writes
-- to `messages` wait meanwhile, as sqlx runs a migration in one transaction).
update messages m set search = message_search_vector(t.subject, m.body, m.read_once)
  from threads t where t.id = m.thread_id;

-- Each participant's words, as in 0012: a rare word is found among the caller's own messages.
create index messages_recipient_search on messages using gin (recipient_id, search);
create index messages_sender_search on messages using gin (sender_id, search);

-- Subjects are searched through messages now.
drop index threads_search;
alter table threads drop column search;
