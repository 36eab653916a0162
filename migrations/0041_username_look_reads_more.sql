-- The look of a username (decision 90) reads two more pairs as one: `cl` as `d` and `5` as `s`
-- (a probe signed up `clalia` beside `dalia`, and `c0nvo5`). Same steps otherwise; the index
-- over it is rebuilt, since every look it holds may have changed.
create or replace function convos_username_look(name text) returns text
    language sql immutable strict parallel safe
    as $$ select replace(replace(replace(translate(lower(name), '015i_.-', 'olsl'),
                                         'rn', 'm'), 'vv', 'w'), 'cl', 'd') $$;

reindex index users_username_look;
