//! API tokens: only a SHA-256 of each token is stored, and revocation is a timestamp.

use crate::{Result, users};
use convos_core::UserId;
use convos_core::api::{Settings, User};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Identifies one issued token (one session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenId(pub Uuid);

/// The stored form of a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Records a newly issued token for `user`.
pub async fn insert(db: &PgPool, user: UserId, token: &str) -> Result<TokenId> {
    let id = Uuid::now_v7();
    sqlx::query("insert into api_tokens (id, user_id, token_hash) values ($1, $2, $3)")
        .bind(id)
        .bind(user.as_uuid())
        .bind(hash(token))
        .execute(db)
        .await?;
    Ok(TokenId(id))
}

/// The live token matching `token`, with its owner: one round trip, which also records the
/// token's use (at most once a minute, so busy clients do not write on every request).
pub async fn authenticate(db: &PgPool, token: &str) -> Result<Option<(TokenId, User, Settings)>> {
    let row: Option<AuthRow> = sqlx::query_as(concat!(
        "with t as ( \
           select id, user_id, last_used_at from api_tokens \
           where token_hash = $1 and revoked_at is null \
         ), touched as ( \
           update api_tokens a set last_used_at = now() from t \
           where a.id = t.id \
             and (t.last_used_at is null or t.last_used_at < now() - interval '1 minute') \
         ) \
         select t.id as token_id, ",
        users::user_columns_of!("u"),
        " from t join users u on u.id = t.user_id"
    ))
    .bind(hash(token))
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let (user, settings) = r.user.into_user();
        (TokenId(r.token_id), user, settings)
    }))
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    token_id: Uuid,
    #[sqlx(flatten)]
    user: users::UserRow,
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
