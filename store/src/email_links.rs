//! What the signed links in notification emails change about a user's email (decision 27):
//! pausing it for a while, turning it back on. Muting a thread and marking a message read go
//! through [`crate::threads::set_flag`] and [`crate::messages::set_read`], and turning email
//! off through [`crate::unsubscribe::turn_email_off`], like the same changes made in the API.

use crate::Result;
use chrono::{DateTime, Utc};
use convos_core::UserId;
use sqlx::PgPool;

/// A user's email, as the links' pages show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmailState {
    /// Email notifications are on.
    pub on: bool,
    /// Until when they are paused, if that is in the future.
    pub paused_until: Option<DateTime<Utc>>,
    /// When the user last turned email back on (links issued before it no longer turn it off).
    pub resubscribed_at: Option<DateTime<Utc>>,
    /// When the user last revoked what their past emails can do (`DELETE
    /// /api/v1/me/reply-addresses`, decision 59): links issued before it only unsubscribe.
    pub links_revoked_at: Option<DateTime<Utc>>,
}

impl EmailState {
    /// Whether a link issued at `issued_at` may still turn email off: not one from before the
    /// user last turned it back on (in the same second counts as before), as for the
    /// unsubscribe links of decision 18.
    pub fn may_turn_off(&self, issued_at: DateTime<Utc>) -> bool {
        self.resubscribed_at.is_none_or(|at| at < issued_at)
    }

    /// Whether a link issued at `issued_at` was revoked (decision 59): issued before the user's
    /// last revocation, or in the same second (a link's time is in whole seconds), so no link
    /// signed before a revocation outlives it.
    pub fn revoked(&self, issued_at: DateTime<Utc>) -> bool {
        self.links_revoked_at.is_some_and(|at| issued_at <= at)
    }
}

/// A user's row as [`state`] reads it: on, paused until, resubscribed at, links revoked at.
type StateRow = (
    bool,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The email state of `user`; `None` if there is no such user.
pub async fn state(db: &PgPool, user: UserId) -> Result<Option<EmailState>> {
    let row: Option<StateRow> = sqlx::query_as(
        "select email_notifications, \
                case when email_paused_until > now() then email_paused_until end, \
                email_resubscribed_at, reply_addresses_revoked_at \
         from users where id = $1",
    )
    .bind(user.as_uuid())
    .fetch_optional(db)
    .await?;
    Ok(row.map(
        |(on, paused_until, resubscribed_at, links_revoked_at)| EmailState {
            on,
            paused_until,
            resubscribed_at,
            links_revoked_at,
        },
    ))
}

/// Pauses `user`'s email notifications for `days` days from now (replacing any pause) and
/// returns until when; `None` if there is no such user.
pub async fn pause(db: &PgPool, user: UserId, days: i32) -> Result<Option<DateTime<Utc>>> {
    let until: Option<DateTime<Utc>> = sqlx::query_scalar(
        "update users set email_paused_until = now() + make_interval(days => $2), \
           updated_at = now() where id = $1 returning email_paused_until",
    )
    .bind(user.as_uuid())
    .bind(days)
    .fetch_optional(db)
    .await?;
    Ok(until)
}

/// Ends any pause of `user`'s email notifications. Returns whether the user exists.
pub async fn unpause(db: &PgPool, user: UserId) -> Result<bool> {
    let updated =
        sqlx::query("update users set email_paused_until = null, updated_at = now() where id = $1")
            .bind(user.as_uuid())
            .execute(db)
            .await?
            .rows_affected();
    Ok(updated == 1)
}

/// Turns `user`'s email notifications back on, as `PATCH /me` does: if they were off, the time
/// is recorded, so older unsubscribe links no longer turn them off, and a daily-digest reader's
/// next digest is placed if it is not (one that came due while email was off was unplaced, and
/// nothing else would place it again). Returns whether the user exists.
pub async fn turn_email_on(db: &PgPool, user: UserId) -> Result<bool> {
    let updated = sqlx::query(
        "update users set \
           email_resubscribed_at = case when email_notifications then email_resubscribed_at \
                                        else now() end, \
           email_notifications = true, \
           next_digest_at = case when email_digest \
             then coalesce(next_digest_at, next_digest_at(digest_hour, time_zone, now())) end, \
           updated_at = now() \
         where id = $1",
    )
    .bind(user.as_uuid())
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}
