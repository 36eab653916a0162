//! API tokens (sessions): only a SHA-256 of each token is stored, revocation is a timestamp,
//! and a token expires after an idle and an absolute lifetime.

use crate::{Result, users};
use chrono::{DateTime, Utc};
use convos_core::api::{SessionInfo, Settings, User};
use convos_core::{SessionId, UserId};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Identifies one issued token (one session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenId(pub Uuid);

/// How long sessions live; a token past either limit is refused like a revoked one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Days a session survives without being used.
    pub idle_days: i32,
    /// Days a session lasts at most, however much it is used.
    pub max_days: i32,
}

/// The predicate of a live token of table alias `t` under lifetimes `$idle`/`$max` days.
macro_rules! live {
    ($t:literal, $idle:literal, $max:literal) => {
        concat!(
            $t,
            ".revoked_at is null \
             and ",
            $t,
            ".created_at > now() - make_interval(days => ",
            $max,
            ") \
             and coalesce(",
            $t,
            ".last_used_at, ",
            $t,
            ".created_at) \
                 > now() - make_interval(days => ",
            $idle,
            ")"
        )
    };
}

/// When a token stops working unless used again: the earlier of its idle and absolute expiry.
macro_rules! expires_at {
    ($t:literal, $idle:literal, $max:literal) => {
        concat!(
            "least(",
            $t,
            ".created_at + make_interval(days => ",
            $max,
            "), \
             coalesce(",
            $t,
            ".last_used_at, ",
            $t,
            ".created_at) \
                 + make_interval(days => ",
            $idle,
            "))"
        )
    };
}

/// The stored form of a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Records a newly issued token for `user`, logged in by `client` (a short label the server
/// derived from the request; the column allows at most 128 characters).
pub async fn insert(
    db: &PgPool,
    user: UserId,
    token: &str,
    client: Option<&str>,
) -> Result<TokenId> {
    let id = Uuid::now_v7();
    sqlx::query("insert into api_tokens (id, user_id, token_hash, client) values ($1, $2, $3, $4)")
        .bind(id)
        .bind(user.as_uuid())
        .bind(hash(token))
        .bind(client)
        .execute(db)
        .await?;
    Ok(TokenId(id))
}

/// A live token and its owner, as [`authenticate`] finds them.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The token (session).
    pub token: TokenId,
    /// Its owner.
    pub user: User,
    /// The owner's settings.
    pub settings: Settings,
    /// When the session ends however much it is used (its absolute expiry).
    pub expires_at: DateTime<Utc>,
}

/// The live token matching `token`, with its owner: one round trip, which also records the
/// token's use (at most once a minute, so busy clients do not write on every request). A
/// revoked or expired token matches nothing.
pub async fn authenticate(
    db: &PgPool,
    token: &str,
    lifetimes: Lifetimes,
) -> Result<Option<Authenticated>> {
    let row: Option<AuthRow> = sqlx::query_as(concat!(
        "with t as ( \
           select id, user_id, last_used_at, \
                  created_at + make_interval(days => $3) as expires_at \
           from api_tokens t \
           where token_hash = $1 and ",
        live!("t", "$2", "$3"),
        " ), touched as ( \
           update api_tokens a set last_used_at = now() from t \
           where a.id = t.id \
             and (t.last_used_at is null or t.last_used_at < now() - interval '1 minute') \
         ) \
         select t.id as token_id, t.expires_at, ",
        users::user_columns_of!("u"),
        " from t join users u on u.id = t.user_id"
    ))
    .bind(hash(token))
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let (user, settings) = r.user.into_user();
        Authenticated {
            token: TokenId(r.token_id),
            user,
            settings,
            expires_at: r.expires_at,
        }
    }))
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    token_id: Uuid,
    expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    user: users::UserRow,
}

/// The live sessions of `user`, newest first, marking `current`.
pub async fn list(
    db: &PgPool,
    user: UserId,
    current: TokenId,
    lifetimes: Lifetimes,
) -> Result<Vec<SessionInfo>> {
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
        "select t.id, t.client, t.created_at, t.last_used_at, ",
        expires_at!("t", "$2", "$3"),
        " as expires_at from api_tokens t where t.user_id = $1 and ",
        live!("t", "$2", "$3"),
        " order by t.created_at desc, t.id desc"
    ))
    .bind(user.as_uuid())
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SessionInfo {
            id: SessionId::from(r.id),
            client: r.client,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            current: r.id == current.0,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    client: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
}

/// Whether a token still works (not revoked).
pub async fn is_live(db: &PgPool, id: TokenId) -> Result<bool> {
    let live: Option<bool> =
        sqlx::query_scalar("select revoked_at is null from api_tokens where id = $1")
            .bind(id.0)
            .fetch_optional(db)
            .await?;
    Ok(live.unwrap_or(false))
}

/// Revokes a token; it stops working at once.
pub async fn revoke(db: &PgPool, id: TokenId) -> Result<()> {
    sqlx::query("update api_tokens set revoked_at = now() where id = $1 and revoked_at is null")
        .bind(id.0)
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes one of `user`'s live sessions. [`crate::StoreError::NotFound`] when `id` is not a
/// live session of theirs (someone else's, already ended, or never issued): the answer is the
/// same, so nobody learns which sessions exist.
pub async fn revoke_own(
    db: &PgPool,
    user: UserId,
    id: SessionId,
    lifetimes: Lifetimes,
) -> Result<TokenId> {
    let revoked: Option<Uuid> = sqlx::query_scalar(concat!(
        "update api_tokens t set revoked_at = now() \
         where t.id = $1 and t.user_id = $2 and ",
        live!("t", "$3", "$4"),
        " returning t.id"
    ))
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .fetch_optional(db)
    .await?;
    revoked.map(TokenId).ok_or(crate::StoreError::NotFound)
}

/// Revokes every session of `user` but `keep` ("log out everywhere else"); returns the ended
/// ones, so their event streams can be closed.
pub async fn revoke_others(db: &PgPool, user: UserId, keep: TokenId) -> Result<Vec<TokenId>> {
    revoke_others_in(db, user, keep).await
}

async fn revoke_others_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    user: UserId,
    keep: TokenId,
) -> Result<Vec<TokenId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "update api_tokens set revoked_at = now() \
         where user_id = $1 and id <> $2 and revoked_at is null returning id",
    )
    .bind(user.as_uuid())
    .bind(keep.0)
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().map(TokenId).collect())
}

/// Sets `user`'s password hash and revokes every other session, in one transaction: a thief
/// holding an old token loses it the moment the owner changes the password. Returns the ended
/// sessions.
pub async fn change_password(
    db: &PgPool,
    user: UserId,
    new_hash: &str,
    keep: TokenId,
) -> Result<Vec<TokenId>> {
    let mut tx = db.begin().await?;
    let updated =
        sqlx::query("update users set password_hash = $2, updated_at = now() where id = $1")
            .bind(user.as_uuid())
            .bind(new_hash)
            .execute(&mut *tx)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(crate::StoreError::NotFound);
    }
    let ended = revoke_others_in(&mut *tx, user, keep).await?;
    tx.commit().await?;
    Ok(ended)
}
