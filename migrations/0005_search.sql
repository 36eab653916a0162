-- Full-text search over subjects and bodies ('simple': no stemming, any language).

alter table messages add column search tsvector
    generated always as (to_tsvector('simple', coalesce(body, ''))) stored;
alter table threads add column search tsvector
    generated always as (to_tsvector('simple', subject)) stored;

create index messages_search on messages using gin (search);
create index threads_search on threads using gin (search);
