//! Email ownership: the verification email's job, confirming a link, and what the worker must
//! know before sending one (decision 14).
//!
//! An address is an account's once its owner followed a link sent to it
//! (`users.email_verified_at`). Any number of accounts may claim an address; the unique index
//! `users_verified_email_key` lets only one have it verified, so the first to confirm owns it
//! and the other claims can never be confirmed.

use crate::jobs::enqueue;
use crate::{Result, StoreError, Written};
use chrono::{DateTime, Utc};
use convos_core::UserId;
use convos_core::jobs::{JobKind, VerifyEmailJob};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// Writes one verification-email job for `user`'s claim on `email`, in the caller's transaction.
pub async fn enqueue_email(
    tx: &mut PgConnection,
    user: UserId,
    email: &str,
    link_hours: u64,
) -> Result<()> {
    let payload = serde_json::to_value(VerifyEmailJob {
        recipient_id: user,
        email: email.to_owned(),
        valid_hours: link_hours,
    })
    .unwrap_or_default();
    // A fresh key per request: each sign-up or resend is one email (the limits are upstream).
    let key = format!("verify_email:{user}:{}", Uuid::now_v7());
    enqueue(
        tx,
        JobKind::VerifyEmail,
        &key,
        None,
        payload,
        Duration::ZERO,
    )
    .await?;
    Ok(())
}

/// What became of a request for another verification email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resend {
    /// The email is queued, to this address.
    Queued(String),
    /// The address is verified (and has not bounced since): nothing to send.
    AlreadyVerified,
    /// Another account verified this address first; this account's claim has lapsed.
    TakenByAnother,
}

/// Queues another verification email for `user`'s current address, unless there is no point
/// (then no job is written).
pub async fn resend(db: &PgPool, user: UserId, link_hours: u64) -> Result<Written<Resend>> {
    let mut tx = db.begin().await?;
    let Some(state) = state_in(&mut tx, user).await? else {
        return Err(StoreError::NotFound);
    };
    if state.verified && !state.bounced {
        return Ok(Written::new(Resend::AlreadyVerified, false));
    }
    if state.taken_by_other {
        return Ok(Written::new(Resend::TakenByAnother, false));
    }
    enqueue_email(&mut tx, user, &state.email, link_hours).await?;
    tx.commit().await?;
    Ok(Written::with_jobs(Resend::Queued(state.email)))
}

/// What became of a request to change an account's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressChange {
    /// The account has the new address, unconfirmed, and a verification email to it is queued.
    Changed,
    /// The account has this address already (in any case).
    Same,
    /// Another account has this address verified.
    TakenByAnother,
}

/// Moves `user` to `email` (decision 77): the address is the account's at once and
/// unconfirmed, so nothing is emailed about messages until the link sent to it is followed;
/// the old address's bounce and complaint are forgotten (another mailbox), reports about mail
/// sent to it are ignored from now on (`email_changed_at`), and what the emails already sent
/// to it can do is revoked, as `DELETE /api/v1/me/reply-addresses` does. An account that had
/// its address confirmed keeps counting as a proven sender (`email_proven_at`). Refused when another account has the address verified; a claim is checked again when
/// confirmed, so two accounts racing for one address cannot both have it.
pub async fn change_address(
    db: &PgPool,
    user: UserId,
    email: &str,
    link_hours: u64,
) -> Result<Written<AddressChange>> {
    let mut tx = db.begin().await?;
    let found: Option<(bool, bool)> = sqlx::query_as(
        "select lower(email) = lower($2), \
                exists (select 1 from users o where lower(o.email) = lower($2) \
                          and o.email_verified_at is not null and o.id <> $1) \
         from users where id = $1 for update",
    )
    .bind(user.as_uuid())
    .bind(email)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((same, taken)) = found else {
        return Err(StoreError::NotFound);
    };
    if same {
        return Ok(Written::new(AddressChange::Same, false));
    }
    if taken {
        return Ok(Written::new(AddressChange::TakenByAnother, false));
    }
    sqlx::query(
        "update users set email = $2, email_proven_at = coalesce(email_proven_at, email_verified_at), \
           email_verified_at = null, email_bounced_at = null, email_complained_at = null, \
           email_changed_at = now(), reply_addresses_revoked_at = now(), updated_at = now() \
         where id = $1",
    )
    .bind(user.as_uuid())
    .bind(email)
    .execute(&mut *tx)
    .await?;
    enqueue_email(&mut tx, user, email, link_hours).await?;
    tx.commit().await?;
    Ok(Written::with_jobs(AddressChange::Changed))
}

/// An account's address and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailState {
    /// The account's username.
    pub username: String,
    /// The account's current address.
    pub email: String,
    /// The name the account shows (for the email's `To:`).
    pub display_name: String,
    /// Its owner confirmed it.
    pub verified: bool,
    /// When it was last confirmed.
    pub verified_at: Option<DateTime<Utc>>,
    /// Mail to it was refused for good since (it needs confirming again).
    pub bounced: bool,
    /// Another account has this address verified.
    pub taken_by_other: bool,
}

/// The account's address and its state; `None` when there is no such account.
pub async fn state(db: &PgPool, user: UserId) -> Result<Option<EmailState>> {
    let mut conn = db.acquire().await?;
    state_in(&mut conn, user).await
}

#[derive(sqlx::FromRow)]
struct StateRow {
    username: String,
    email: String,
    display_name: String,
    email_verified_at: Option<DateTime<Utc>>,
    bounced: bool,
    taken_by_other: bool,
}

async fn state_in(conn: &mut PgConnection, user: UserId) -> Result<Option<EmailState>> {
    let row: Option<StateRow> = sqlx::query_as(
        "select u.username, u.email, u.display_name, u.email_verified_at, \
                u.email_bounced_at is not null as bounced, \
                exists (select 1 from users o where lower(o.email) = lower(u.email) \
                          and o.email_verified_at is not null and o.id <> u.id) \
                  as taken_by_other \
         from users u where u.id = $1",
    )
    .bind(user.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| EmailState {
        username: r.username,
        email: r.email,
        display_name: r.display_name,
        verified: r.email_verified_at.is_some(),
        verified_at: r.email_verified_at,
        bounced: r.bounced,
        taken_by_other: r.taken_by_other,
    }))
}

/// What following a (genuine, unexpired) verification link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The address is now verified (and any bounce forgotten).
    Verified,
    /// It already was, by this link or a newer one: nothing changed.
    AlreadyVerified,
    /// The link no longer applies: the account's address changed, the account is gone, or the
    /// address was confirmed again after the link was sent.
    Superseded,
    /// Another account verified this address first.
    TakenByAnother,
}

/// Confirms `user`'s claim on `email` made by a link issued at `issued`: sets
/// `email_verified_at` to now and clears `email_bounced_at`, and skips the account's
/// verification emails to that address still waiting to be sent (they would only repeat the
/// link). The account's row is held from the first read, so a change of address committed
/// meanwhile is seen (the link is then superseded), never confirmed over.
pub async fn confirm(
    db: &PgPool,
    user: UserId,
    email: &str,
    issued: DateTime<Utc>,
) -> Result<Confirmed> {
    let mut tx = db.begin().await?;
    sqlx::query("select 1 from users where id = $1 for update")
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    let Some(state) = state_in(&mut tx, user).await? else {
        return Ok(Confirmed::Superseded);
    };
    if !state.email.eq_ignore_ascii_case(email) {
        return Ok(Confirmed::Superseded);
    }
    if state.verified && !state.bounced {
        return Ok(Confirmed::AlreadyVerified);
    }
    if state.verified_at.is_some_and(|at| at >= issued) {
        // Sent before the last confirmation, and the address bounced since: only a link sent
        // after the bounce proves the mailbox works again.
        return Ok(Confirmed::Superseded);
    }
    if state.taken_by_other {
        return Ok(Confirmed::TakenByAnother);
    }
    let updated = sqlx::query(
        "update users set email_verified_at = now(), email_bounced_at = null, updated_at = now() \
         where id = $1 and lower(email) = lower($2)",
    )
    .bind(user.as_uuid())
    .bind(email)
    .execute(&mut *tx)
    .await;
    match updated {
        Ok(done) if done.rows_affected() == 1 => {}
        Ok(_) => return Ok(Confirmed::Superseded),
        // Another account confirmed the same address at the same moment: the index decides.
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("users_verified_email_key") && e.is_unique_violation() =>
        {
            return Ok(Confirmed::TakenByAnother);
        }
        Err(e) => return Err(e.into()),
    }
    // Skipped jobs count on the queue board like those a worker skips (decision 49).
    sqlx::query(
        "with skipped as ( \
           update jobs set state = 'skipped', outcome = 'skipped: already verified', \
             updated_at = now(), finished_at = now() \
           where kind = 'verify_email' and state in ('pending', 'retry') \
             and payload->>'recipient_id' = $1::text \
             and lower(payload->>'email') = lower($2) \
           returning 1) \
         insert into job_outcome_counts as c (kind, minute, counted_by, succeeded) \
         select 'verify_email', date_trunc('minute', now()), 'confirm', count(*) from skipped \
         having count(*) > 0 \
         on conflict (kind, minute, counted_by) do update \
           set succeeded = c.succeeded + excluded.succeeded",
    )
    .bind(user.as_uuid())
    .bind(email)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Confirmed::Verified)
}

/// How many verification emails one address may be sent, over all accounts that claim it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressCaps {
    /// At most this many in any hour.
    pub per_hour: i64,
    /// At most this many in any day.
    pub per_day: i64,
}

/// A verification email counted against its address before it is sent. Give it back with
/// [`release`] if the email did not go out.
#[derive(Debug)]
#[must_use = "a reservation for an email that was not sent must be released"]
pub struct Reservation(i64);

/// Verification emails one mailbox gets at most, over all accounts: 5 an hour, 10 a day.
pub const MAILBOX_CAPS: AddressCaps = AddressCaps {
    per_hour: 5,
    per_day: 10,
};

/// How long until `email`'s mailbox may get another verification email under `caps`; `None`
/// when it may now. Read without reserving (the email job reserves): an owner asking for their
/// link is told the mailbox is full, where the job would skip it unseen (decision 86).
pub async fn mailbox_full_for(
    db: &PgPool,
    email: &str,
    caps: AddressCaps,
) -> Result<Option<std::time::Duration>> {
    let email = convos_core::domain::mailbox_of(email);
    let waits: (Option<f64>, Option<f64>) = sqlx::query_as(
        "with day as (select sent_at from verification_emails \
           where address = lower($1) and sent_at > now() - interval '1 day') \
         select \
           (select extract(epoch from min(sent_at) + interval '1 hour' - now())::float8 \
              from (select sent_at from day where sent_at > now() - interval '1 hour' \
                    order by sent_at desc limit $2) h having count(*) >= $2), \
           (select extract(epoch from min(sent_at) + interval '1 day' - now())::float8 \
              from (select sent_at from day order by sent_at desc limit $3) d \
              having count(*) >= $3)",
    )
    .bind(&email)
    .bind(caps.per_hour)
    .bind(caps.per_day)
    .fetch_one(db)
    .await?;
    let wait = [waits.0, waits.1]
        .into_iter()
        .flatten()
        .fold(0.0_f64, f64::max);
    Ok((wait > 0.0).then(|| std::time::Duration::from_secs_f64(wait)))
}

/// Counts one verification email to `email` if its mailbox is under `caps`; `None` when it is
/// not. Every spelling of one mailbox counts together (`mailbox_of`: `+tags`, case, Gmail's
/// dots). Emails reserved and not yet sent count too, and the check and the count happen under
/// a lock on the mailbox, so jobs running at once cannot all see room.
pub async fn reserve_email(
    db: &PgPool,
    email: &str,
    caps: AddressCaps,
) -> Result<Option<Reservation>> {
    let email = &convos_core::domain::mailbox_of(email);
    let mut tx = db.begin().await?;
    // Held until commit; the two-key form keeps these locks apart from any single-key ones.
    sqlx::query("select pg_advisory_xact_lock($1, hashtext(lower($2)))")
        .bind(ADDRESS_LOCK_CLASS)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    let (last_hour, last_day): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where sent_at > now() - interval '1 hour'), count(*) \
         from verification_emails \
         where address = lower($1) and sent_at > now() - interval '1 day'",
    )
    .bind(email)
    .fetch_one(&mut *tx)
    .await?;
    if last_hour >= caps.per_hour || last_day >= caps.per_day {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar(
        "insert into verification_emails (address) values (lower($1)) returning id",
    )
    .bind(email)
    .fetch_one(&mut *tx)
    .await?;
    // Rows older than a day count for nothing; a few go with every new one, so the table
    // holds about a day's emails. Rows another job is deleting are left to it.
    sqlx::query(
        "delete from verification_emails where id in \
           (select id from verification_emails where sent_at < now() - interval '1 day' \
            order by sent_at limit 100 for update skip locked)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Reservation(id)))
}

/// Gives back a reservation whose email was not sent, so it does not count.
pub async fn release(db: &PgPool, reservation: Reservation) -> Result<()> {
    sqlx::query("delete from verification_emails where id = $1")
        .bind(reservation.0)
        .execute(db)
        .await?;
    Ok(())
}

/// The advisory lock class of [`reserve_email`]'s per-address locks ("vrfy").
const ADDRESS_LOCK_CLASS: i32 = 0x7672_6679;
