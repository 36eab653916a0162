//! One-click unsubscribe (the links in notification emails): whether a link still works, and
//! turning the user's email off through it.

use crate::Result;
use chrono::{DateTime, Utc};
use convos_core::UserId;
use sqlx::PgPool;

/// Whether an unsubscribe link of `user` issued at `issued_at` still works: the user exists
/// and has not turned email back on since (in the same second counts as since).
pub async fn link_current(db: &PgPool, user: UserId, issued_at: DateTime<Utc>) -> Result<bool> {
    let current: Option<bool> = sqlx::query_scalar(
        "select true from users where id = $1 \
           and (email_resubscribed_at is null or email_resubscribed_at < $2)",
    )
    .bind(user.as_uuid())
    .bind(issued_at)
    .fetch_optional(db)
    .await?;
    Ok(current.is_some())
}

/// Turns email notifications off for a user (one-click unsubscribe) through a link issued at
/// `issued_at`. Returns whether the link still works (see [`link_current`]).
pub async fn turn_email_off(db: &PgPool, user: UserId, issued_at: DateTime<Utc>) -> Result<bool> {
    let updated = sqlx::query(
        "update users set email_notifications = false, updated_at = now() where id = $1 \
           and (email_resubscribed_at is null or email_resubscribed_at < $2)",
    )
    .bind(user.as_uuid())
    .bind(issued_at)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Turns `user`'s email off after they marked a notification as spam (a feedback report), and
/// records when, so they can be shown why.
pub async fn complained(db: &PgPool, user: UserId) -> Result<()> {
    sqlx::query(
        "update users set email_notifications = false, email_complained_at = now(), \
           updated_at = now() where id = $1",
    )
    .bind(user.as_uuid())
    .execute(db)
    .await?;
    Ok(())
}
