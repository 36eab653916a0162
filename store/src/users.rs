//! Accounts: sign-up, lookup, profile and the user directory.

use crate::{Result, StoreError, on_unique};
use chrono::{DateTime, Utc};
use convos_core::api::{ProfileChange, Settings, User, UserSummary};
use convos_core::{DisplayName, EmailAddress, UserId, Username};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    username: String,
    email: String,
    display_name: String,
    is_admin: bool,
    email_notifications: bool,
    created_at: DateTime<Utc>,
}

impl UserRow {
    pub(crate) fn into_user(self) -> (User, Settings) {
        (
            User {
                id: self.id.into(),
                username: self.username,
                email: self.email,
                display_name: self.display_name,
                is_admin: self.is_admin,
                created_at: self.created_at,
            },
            Settings {
                email_notifications: self.email_notifications,
            },
        )
    }
}

macro_rules! user_columns {
    () => {
        "id, username, email, display_name, is_admin, email_notifications, created_at"
    };
}

/// The same columns of the users table aliased `$alias`, for joins.
macro_rules! user_columns_of {
    ($alias:literal) => {
        concat!(
            $alias,
            ".id, ",
            $alias,
            ".username, ",
            $alias,
            ".email, ",
            $alias,
            ".display_name, ",
            $alias,
            ".is_admin, ",
            $alias,
            ".email_notifications, ",
            $alias,
            ".created_at"
        )
    };
}
pub(crate) use user_columns_of;

/// Creates an account; `Conflict("username" | "email")` when either is taken.
pub async fn insert(
    db: impl PgExecutor<'_>,
    username: &Username,
    email: &EmailAddress,
    display_name: &DisplayName,
    password_hash: &str,
    is_admin: bool,
) -> Result<User> {
    let row: UserRow = sqlx::query_as(concat!(
        "insert into users (id, username, email, display_name, password_hash, is_admin) \
         values ($1, $2, $3, $4, $5, $6) returning ",
        user_columns!()
    ))
    .bind(UserId::generate().as_uuid())
    .bind(username.as_str())
    .bind(email.as_str())
    .bind(display_name.as_str())
    .bind(password_hash)
    .bind(is_admin)
    .fetch_one(db)
    .await
    .map_err(|e| {
        on_unique(
            e,
            &[
                ("users_username_key", "username"),
                ("users_email_key", "email"),
            ],
        )
    })?;
    Ok(row.into_user().0)
}

/// The account and its settings.
pub async fn get(db: &PgPool, id: UserId) -> Result<(User, Settings)> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users where id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(db)
    .await?;
    row.map(UserRow::into_user).ok_or(StoreError::NotFound)
}

/// The id and password hash for a login, if the username exists.
pub async fn credentials(db: &PgPool, username: &str) -> Result<Option<(UserId, String)>> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("select id, password_hash from users where lower(username) = lower($1)")
            .bind(username)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, hash)| (id.into(), hash)))
}

/// Applies a validated profile change and returns the result.
pub async fn update_profile(
    db: &PgPool,
    id: UserId,
    change: &ProfileChange,
) -> Result<(User, Settings)> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "update users set display_name = coalesce($2, display_name), \
                email_notifications = coalesce($3, email_notifications), updated_at = now() \
         where id = $1 returning ",
        user_columns!()
    ))
    .bind(id.as_uuid())
    .bind(change.display_name.as_ref().map(DisplayName::as_str))
    .bind(change.email_notifications)
    .fetch_optional(db)
    .await?;
    row.map(UserRow::into_user).ok_or(StoreError::NotFound)
}

/// Resolves a username to the public summary, for addressing a message.
pub async fn find_by_username(db: &PgPool, username: &Username) -> Result<Option<UserSummary>> {
    let row: Option<(Uuid, String, String)> =
        sqlx::query_as("select id, username, display_name from users where lower(username) = $1")
            .bind(username.as_str())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, username, display_name)| UserSummary {
        id: id.into(),
        username,
        display_name,
    }))
}

/// The directory: users whose username starts with `prefix`, alphabetically, minus the caller.
pub async fn directory(
    db: &PgPool,
    caller: UserId,
    prefix: &str,
    limit: i64,
) -> Result<Vec<UserSummary>> {
    // `_` is legal in usernames and a LIKE wildcard, so the prefix is escaped.
    let pattern = format!(
        "{}%",
        prefix
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "select id, username, display_name from users \
         where lower(username) like $2 and id <> $1 \
         order by lower(username) limit $3",
    )
    .bind(caller.as_uuid())
    .bind(pattern)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, username, display_name)| UserSummary {
            id: id.into(),
            username,
            display_name,
        })
        .collect())
}
