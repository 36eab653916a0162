//! The people a user has blocked (decision 87): they can no longer write to the user.

use crate::{Result, StoreError};
use convos_core::api::UserSummary;
use convos_core::domain::mailbox_of;
use convos_core::{UserId, Username};
use sqlx::PgPool;
use uuid::Uuid;

/// People one user may block at most; one more is refused.
pub const MAX_BLOCKS: i64 = 1_000;

/// What blocking someone did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// They are blocked (now, or were already).
    Blocked(UserSummary),
    /// The user has blocked [`MAX_BLOCKS`] people already.
    TooMany,
    /// One cannot block oneself.
    Oneself,
}

/// `user` blocks the account named `username`: from now on it can start no thread with `user`
/// and write in none of their threads. [`StoreError::NotFound`] when nobody has the name.
pub async fn block(db: &PgPool, user: UserId, username: &Username) -> Result<Blocked> {
    let mut tx = db.begin().await?;
    // The blocker's row, held: two blocks at once cannot both pass the count. Not `for update`,
    // which would hold up every row written meanwhile that names the blocker (their messages).
    sqlx::query("select 1 from users where id = $1 for no key update")
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    let target = summary_by_name(&mut tx, username).await?;
    if target.id == user {
        return Ok(Blocked::Oneself);
    }
    let (already, count): (bool, i64) = sqlx::query_as(
        "select exists (select 1 from blocks where user_id = $1 and blocked_id = $2), \
                (select count(*) from (select from blocks where user_id = $1 limit $3) n)",
    )
    .bind(user.as_uuid())
    .bind(target.id.as_uuid())
    .bind(MAX_BLOCKS)
    .fetch_one(&mut *tx)
    .await?;
    if !already && count >= MAX_BLOCKS {
        return Ok(Blocked::TooMany);
    }
    sqlx::query("insert into blocks (user_id, blocked_id) values ($1, $2) on conflict do nothing")
        .bind(user.as_uuid())
        .bind(target.id.as_uuid())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Blocked::Blocked(target))
}

/// `user` unblocks the account named `username` (nothing to do if it was not blocked).
/// [`StoreError::NotFound`] when nobody has the name.
pub async fn unblock(db: &PgPool, user: UserId, username: &Username) -> Result<()> {
    let mut conn = db.acquire().await?;
    let target = summary_by_name(&mut conn, username).await?;
    sqlx::query("delete from blocks where user_id = $1 and blocked_id = $2")
        .bind(user.as_uuid())
        .bind(target.id.as_uuid())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The people `user` has blocked, by username (at most [`MAX_BLOCKS`]).
pub async fn list(db: &PgPool, user: UserId) -> Result<Vec<UserSummary>> {
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        // Their username for a name: what they chose is theirs to show others, not the blocker.
        "select u.id, u.username, u.username from blocks b \
         join users u on u.id = b.blocked_id \
         where b.user_id = $1 order by u.username limit $2",
    )
    .bind(user.as_uuid())
    .bind(MAX_BLOCKS)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(crate::users::summary).collect())
}

/// Whether `recipient` has blocked `sender`.
pub(crate) async fn is_blocked(
    conn: &mut sqlx::PgConnection,
    recipient: Uuid,
    sender: UserId,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from blocks where user_id = $1 and blocked_id = $2)",
    )
    .bind(recipient)
    .bind(sender.as_uuid())
    .fetch_one(conn)
    .await?)
}

/// Whether `email` reaches the mailbox (any spelling of it, [`mailbox_of`]) of a verified
/// account that has blocked `user`: a claim there would only mail the blocker (decision 87).
/// Reads the addresses of `user`'s blockers at the mailbox's domain, by the `blocked_id` index.
pub async fn mailbox_owner_blocked(db: &PgPool, user: UserId, email: &str) -> Result<bool> {
    let mailbox = mailbox_of(email);
    let Some((_, domain)) = mailbox.rsplit_once('@') else {
        return Ok(false);
    };
    // `mailbox_of` spells Gmail's two domains as one.
    let domains: Vec<&str> = if domain == "gmail.com" {
        vec!["gmail.com", "googlemail.com"]
    } else {
        vec![domain]
    };
    let addresses: Vec<String> = sqlx::query_scalar(
        "select u.email from blocks b join users u on u.id = b.user_id \
         where b.blocked_id = $1 and u.email_verified_at is not null \
           and lower(substring(u.email from '@([^@]*)$')) = any($2)",
    )
    .bind(user.as_uuid())
    .bind(&domains)
    .fetch_all(db)
    .await?;
    Ok(addresses.iter().any(|owned| mailbox_of(owned) == mailbox))
}

/// The person named `username`, as the one who blocks them sees them: by their username.
async fn summary_by_name(
    conn: &mut sqlx::PgConnection,
    username: &Username,
) -> Result<UserSummary> {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        "select id, username, username from users where lower(username) = lower($1)",
    )
    .bind(username.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(crate::users::summary(row.ok_or(StoreError::NotFound)?))
}
