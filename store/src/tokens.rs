//! API tokens: only a SHA-256 of each token is stored, and revocation is a timestamp.

use crate::{Result, users};
use convos_core::UserId;
use convos_core::api::{Settings, User};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Identifies one issued token (one session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// The live token matching `token`, with its owner.
pub async fn authenticate(db: &PgPool, token: &str) -> Result<Option<(TokenId, User, Settings)>> {
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "update api_tokens set last_used_at = now() \
         where token_hash = $1 and revoked_at is null \
           and (last_used_at is null or last_used_at < now() - interval '1 minute') \
         returning id, user_id",
    )
    .bind(hash(token))
    .fetch_optional(db)
    .await?;
    // The update above only touches tokens not used within the last minute; look the others up.
    let row =
        match row {
            Some(row) => Some(row),
            None => sqlx::query_as(
                "select id, user_id from api_tokens where token_hash = $1 and revoked_at is null",
            )
            .bind(hash(token))
            .fetch_optional(db)
            .await?,
        };
    let Some((token_id, user_id)) = row else {
        return Ok(None);
    };
    let (user, settings) = users::get(db, user_id.into()).await?;
    Ok(Some((TokenId(token_id), user, settings)))
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
