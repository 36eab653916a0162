-- Daily digests (issue 13, decision 28): a per-user email mode. `email_notifications` stays the
-- on/off switch (one-click unsubscribe and complaints turn it off); `email_digest` chooses, when
-- on, one email a day at `digest_hour` in `time_zone` instead of one per message.
alter table users
    add column email_digest boolean not null default false,
    add column digest_hour smallint not null default 8 check (digest_hour between 0 and 23),
    -- An IANA name PostgreSQL knows (checked against pg_timezone_names when set).
    add column time_zone text not null default 'UTC',
    -- When this user's next digest is due; null unless in digest mode.
    add column next_digest_at timestamptz;

-- The digest scheduler's scan: users whose digest is due.
create index users_digest_due on users (next_digest_at) where next_digest_at is not null;

-- The next `hour` o'clock in `tz` strictly after `after` (a local day later if today's has
-- passed; on a daylight-saving change the local hour is taken as PostgreSQL resolves it).
create function next_digest_at(hour integer, tz text, after timestamptz)
returns timestamptz language sql stable as $$
    select case when today > after then today else tomorrow end
    from (select
        ((date_trunc('day', after at time zone tz) + make_interval(hours => hour))
            at time zone tz) as today,
        ((date_trunc('day', after at time zone tz) + interval '1 day'
            + make_interval(hours => hour)) at time zone tz) as tomorrow) s
$$;

alter table jobs drop constraint jobs_kind_check;
alter table jobs add constraint jobs_kind_check
    check (kind in ('deliver', 'notify_email', 'purge_expired', 'verify_email', 'inbound_mail',
                    'digest_email'));

alter table queue_controls drop constraint queue_controls_kind_check;
alter table queue_controls add constraint queue_controls_kind_check
    check (kind in ('deliver', 'notify_email', 'purge_expired', 'verify_email', 'inbound_mail',
                    'digest_email'));
