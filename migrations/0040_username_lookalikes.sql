-- What a username looks like at a glance (decision 90): lower case, `_ . -` dropped, and the
-- letters that pass for one another read as one (0 as o; 1 and i as l; rn as m; vv as w). A new
-- username whose look is another's is refused at sign-up. One definition, used by the index and
-- by the sign-up's lookup alike.
create function convos_username_look(name text) returns text
    language sql immutable strict parallel safe
    as $$ select replace(replace(translate(lower(name), '01i_.-', 'oll'), 'rn', 'm'), 'vv', 'w') $$;

-- Sign-up's lookup of a look (not unique: accounts made before may share one).
create index users_username_look on users (convos_username_look(username));
