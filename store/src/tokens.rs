//! API tokens (sessions): only a SHA-256 of each token is stored, revocation is a timestamp,
//! and a token expires after an idle and an absolute lifetime.

use crate::{Result, users};
use chrono::{DateTime, Utc};
use convos_core::api::{Preferences, SessionInfo, User};
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

/// A session to issue, once its owner's password has been checked.
#[derive(Clone, Copy, Debug)]
pub struct NewSession<'a> {
    /// The owner.
    pub user: UserId,
    /// The bearer token handed out (only its hash is stored).
    pub token: &'a str,
    /// A short label the server derived from the request (the column allows at most 128
    /// characters).
    pub client: Option<&'a str>,
    /// The password hash the login was checked against: the session is issued only if it is
    /// still the user's.
    pub checked_hash: &'a str,
    /// Live sessions the user may hold, this one included (at least 1).
    pub max_live: u32,
    /// The session lifetimes, which decide what is live.
    pub lifetimes: Lifetimes,
}

/// A session issued by [`insert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The new session.
    pub id: TokenId,
    /// The user's oldest sessions, ended to stay within [`NewSession::max_live`]; their event
    /// streams should be closed.
    pub ended: Vec<TokenId>,
}

/// Issues a session, in one transaction that:
///
/// 1. locks the user's row and checks that `checked_hash` is still their password hash. A
///    password change commits either before (then the login is refused: `Ok(None)`) or after
///    (then it waits for this transaction, and its revocation sees the new session), so no
///    session checked against an old password outlives the change;
/// 2. deletes the user's ended (revoked or expired) session rows, so rows do not pile up;
/// 3. inserts the new session;
/// 4. ends the oldest live sessions beyond `max_live`, never the new one.
///
/// Logins of one user are serialised by the row lock, so they cannot overshoot the cap.
pub async fn insert(db: &PgPool, new: NewSession<'_>) -> Result<Option<Issued>> {
    let mut tx = db.begin().await?;
    let current: Option<i32> = sqlx::query_scalar(
        "select 1 from users where id = $1 and password_hash = $2 and suspended_at is null \
         for no key update",
    )
    .bind(new.user.as_uuid())
    .bind(new.checked_hash)
    .fetch_optional(&mut *tx)
    .await?;
    if current.is_none() {
        return Ok(None);
    }
    sqlx::query(concat!(
        "delete from api_tokens t where t.user_id = $1 and not (",
        live!("t", "$2", "$3"),
        ")"
    ))
    .bind(new.user.as_uuid())
    .bind(new.lifetimes.idle_days)
    .bind(new.lifetimes.max_days)
    .execute(&mut *tx)
    .await?;
    let id = Uuid::now_v7();
    sqlx::query("insert into api_tokens (id, user_id, token_hash, client) values ($1, $2, $3, $4)")
        .bind(id)
        .bind(new.user.as_uuid())
        .bind(hash(new.token))
        .bind(new.client)
        .execute(&mut *tx)
        .await?;
    let ended: Vec<Uuid> = sqlx::query_scalar(concat!(
        "update api_tokens set revoked_at = now() where id in ( \
           select t.id from api_tokens t \
           where t.user_id = $1 and t.id <> $2 and ",
        live!("t", "$3", "$4"),
        "  order by t.created_at desc, t.id desc offset $5 \
         ) returning id"
    ))
    .bind(new.user.as_uuid())
    .bind(id)
    .bind(new.lifetimes.idle_days)
    .bind(new.lifetimes.max_days)
    .bind(i64::from(new.max_live.max(1)) - 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Issued {
        id: TokenId(id),
        ended: ended.into_iter().map(TokenId).collect(),
    }))
}

/// A live token and its owner, as [`authenticate`] finds them.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The token (session).
    pub token: TokenId,
    /// Its owner.
    pub user: User,
    /// The owner's preferences.
    pub preferences: Preferences,
    /// When the session ends however much it is used (its absolute expiry).
    pub expires_at: DateTime<Utc>,
    /// Whether this request recorded the token's use (it does at most once a minute), so
    /// callers can refresh what they keep about the session's use just as seldom.
    pub touched: bool,
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
           returning a.id \
         ) \
         select t.id as token_id, t.expires_at, exists (select 1 from touched) as touched, ",
        users::user_columns_of!("u"),
        " from t join users u on u.id = t.user_id and u.suspended_at is null"
    ))
    .bind(hash(token))
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let (user, preferences) = r.user.into_user();
        Authenticated {
            token: TokenId(r.token_id),
            user,
            preferences,
            expires_at: r.expires_at,
            touched: r.touched,
        }
    }))
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    token_id: Uuid,
    expires_at: DateTime<Utc>,
    touched: bool,
    #[sqlx(flatten)]
    user: users::UserRow,
}

/// The most sessions [`list`] returns. Logins keep a user within their cap (a setting), so this
/// only matters if the cap was raised that far, or for sessions issued before there was one.
pub const LIST_MAX: i64 = 1_000;

/// The live sessions of `user`, newest first, marking `current`; at most [`LIST_MAX`].
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
        " order by t.created_at desc, t.id desc limit $4"
    ))
    .bind(user.as_uuid())
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .bind(LIST_MAX)
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

/// Whether a token still works: not revoked, not idle past `lifetimes.idle_days`, not past its
/// absolute limit (the rule [`authenticate`] applies).
pub async fn is_live(db: &PgPool, id: TokenId, lifetimes: Lifetimes) -> Result<bool> {
    let live: Option<bool> = sqlx::query_scalar(concat!(
        "select ",
        live!("t", "$2", "$3"),
        " from api_tokens t where t.id = $1"
    ))
    .bind(id.0)
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
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

/// Revokes one of `user`'s live sessions, asked by session `asking`, which may end itself and
/// the sessions made before it, not those made after it (decision 76): a stolen token cannot
/// end the sessions its owner logs in with after the theft, from which the owner ends the
/// thief's. [`crate::StoreError::NotFound`] when `id` is not a live session of theirs
/// (someone else's, already ended, or never issued): the answer is the same, so nobody learns
/// which sessions exist; [`crate::StoreError::NewerSession`] when it was made after `asking`.
pub async fn revoke_own(
    db: &PgPool,
    user: UserId,
    id: SessionId,
    lifetimes: Lifetimes,
    asking: TokenId,
) -> Result<TokenId> {
    let revoked: Option<Uuid> = sqlx::query_scalar(concat!(
        "update api_tokens t set revoked_at = now() \
         where t.id = $1 and t.user_id = $2 and ",
        live!("t", "$3", "$4"),
        " and (t.id = $5 or t.created_at <= (select created_at from api_tokens where id = $5)) \
         returning t.id"
    ))
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .bind(asking.0)
    .fetch_optional(db)
    .await?;
    if let Some(revoked) = revoked {
        return Ok(TokenId(revoked));
    }
    // Ended nothing: a live session of theirs made after `asking`, or none at all.
    let newer: bool = sqlx::query_scalar(concat!(
        "select exists (select 1 from api_tokens t where t.id = $1 and t.user_id = $2 and ",
        live!("t", "$3", "$4"),
        ")"
    ))
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .bind(lifetimes.idle_days)
    .bind(lifetimes.max_days)
    .fetch_one(db)
    .await?;
    Err(if newer {
        crate::StoreError::NewerSession
    } else {
        crate::StoreError::NotFound
    })
}

/// Revokes every session of `user` made before `keep` ("log out everywhere else", asked by
/// `keep`); those made after it stay, as [`revoke_own`] says why. Returns the ended ones, so
/// their event streams can be closed.
pub async fn revoke_others(db: &PgPool, user: UserId, keep: TokenId) -> Result<Vec<TokenId>> {
    revoke_others_in(db, user, keep, true).await
}

async fn revoke_others_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    user: UserId,
    keep: TokenId,
    older_only: bool,
) -> Result<Vec<TokenId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "update api_tokens set revoked_at = now() \
         where user_id = $1 and id <> $2 and revoked_at is null \
           and (not $3 or created_at <= (select created_at from api_tokens where id = $2)) \
         returning id",
    )
    .bind(user.as_uuid())
    .bind(keep.0)
    .bind(older_only)
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
    // Every other session, however new: the password proves the owner.
    let ended = revoke_others_in(&mut *tx, user, keep, false).await?;
    tx.commit().await?;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIFETIMES: Lifetimes = Lifetimes {
        idle_days: 30,
        max_days: 90,
    };

    async fn user(db: &PgPool, password_hash: &str) -> UserId {
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into users (id, username, email, display_name, password_hash) \
             values ($1, 'alice', 'alice@example.com', 'Alice', $2)",
        )
        .bind(id)
        .bind(password_hash)
        .execute(db)
        .await
        .unwrap();
        id.into()
    }

    fn login<'a>(user: UserId, token: &'a str, checked_hash: &'a str) -> NewSession<'a> {
        NewSession {
            user,
            token,
            client: None,
            checked_hash,
            max_live: 50,
            lifetimes: LIFETIMES,
        }
    }

    async fn rows(db: &PgPool) -> i64 {
        sqlx::query_scalar("select count(*) from api_tokens")
            .fetch_one(db)
            .await
            .unwrap()
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_session_checked_against_a_replaced_password_is_not_issued(db: PgPool) {
        let alice = user(&db, "old hash").await;
        sqlx::query("update users set password_hash = 'new hash'")
            .execute(&db)
            .await
            .unwrap();

        let stale = insert(&db, login(alice, "cvs_stale", "old hash"))
            .await
            .unwrap();

        assert_eq!(stale, None);
        assert_eq!(rows(&db).await, 0);
        let fresh = insert(&db, login(alice, "cvs_fresh", "new hash"))
            .await
            .unwrap();
        assert!(fresh.is_some_and(|i| i.ended.is_empty()));
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_login_waits_for_a_password_change_under_way_and_is_refused_after_it(db: PgPool) {
        let alice = user(&db, "old hash").await;
        let mut change = db.begin().await.unwrap();
        sqlx::query("update users set password_hash = 'new hash'")
            .execute(&mut *change)
            .await
            .unwrap();

        let racing = tokio::spawn({
            let db = db.clone();
            async move { insert(&db, login(alice, "cvs_racing", "old hash")).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !racing.is_finished(),
            "the login waits for the change to end"
        );
        change.commit().await.unwrap();

        assert_eq!(racing.await.unwrap().unwrap(), None);
        assert_eq!(rows(&db).await, 0);
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn logins_beyond_the_cap_end_the_oldest_sessions_and_ended_rows_are_cleared(db: PgPool) {
        let alice = user(&db, "hash").await;
        let capped = |token| NewSession {
            max_live: 2,
            ..login(alice, token, "hash")
        };
        let first = insert(&db, capped("cvs_1")).await.unwrap().unwrap();
        let second = insert(&db, capped("cvs_2")).await.unwrap().unwrap();
        assert!(second.ended.is_empty());

        let third = insert(&db, capped("cvs_3")).await.unwrap().unwrap();
        assert_eq!(third.ended, vec![first.id], "the oldest ends");
        let fourth = insert(&db, capped("cvs_4")).await.unwrap().unwrap();
        assert_eq!(fourth.ended, vec![second.id]);

        let live = list(&db, alice, fourth.id, LIFETIMES).await.unwrap();
        let ids: Vec<_> = live.iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            vec![SessionId::from(fourth.id.0), SessionId::from(third.id.0)]
        );
        assert_eq!(
            rows(&db).await,
            3,
            "the first session's row went at the fourth login"
        );
        assert!(
            authenticate(&db, "cvs_1", LIFETIMES)
                .await
                .unwrap()
                .is_none()
        );
    }
}
