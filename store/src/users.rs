//! Accounts: sign-up, lookup, profile and the user directory.

use crate::visibility::shown_name;
use crate::{Result, StoreError, Written, on_unique};
use chrono::{DateTime, Utc};
use convos_core::api::{EmailMode, EmailStopped, Preferences, ProfileChange, User, UserSummary};
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
    email_verified_at: Option<DateTime<Utc>>,
    email_bounced_at: Option<DateTime<Utc>>,
    email_complained_at: Option<DateTime<Utc>>,
    email_digest: bool,
    digest_hour: i16,
    time_zone: String,
    email_paused_until: Option<DateTime<Utc>>,
}

impl UserRow {
    pub(crate) fn into_user(self) -> (User, Preferences) {
        (
            User {
                id: self.id.into(),
                username: self.username,
                email: self.email,
                display_name: self.display_name,
                is_admin: self.is_admin,
                created_at: self.created_at,
                email_verified: self.email_verified_at.is_some(),
                // A complaint after a bounce is the later word; email stays off until the
                // user turns it back on, which a bounce alone does not need.
                email_stopped: if self.email_complained_at.is_some() && !self.email_notifications {
                    Some(EmailStopped::Complaint)
                } else if self.email_bounced_at.is_some() {
                    Some(EmailStopped::Bounced)
                } else {
                    None
                },
            },
            Preferences {
                email_notifications: self.email_notifications,
                email_mode: match (self.email_notifications, self.email_digest) {
                    (false, _) => EmailMode::Off,
                    (true, true) => EmailMode::Daily,
                    (true, false) => EmailMode::Each,
                },
                digest_hour: self.digest_hour,
                time_zone: self.time_zone,
                email_paused_until: self.email_paused_until.filter(|until| *until > Utc::now()),
            },
        )
    }
}

macro_rules! user_columns {
    () => {
        "id, username, email, display_name, is_admin, email_notifications, created_at, \
         email_verified_at, email_bounced_at, email_complained_at, email_digest, digest_hour, \
         time_zone, email_paused_until"
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
            ".created_at, ",
            $alias,
            ".email_verified_at, ",
            $alias,
            ".email_bounced_at, ",
            $alias,
            ".email_complained_at, ",
            $alias,
            ".email_digest, ",
            $alias,
            ".digest_hour, ",
            $alias,
            ".time_zone, ",
            $alias,
            ".email_paused_until"
        )
    };
}
pub(crate) use user_columns_of;

/// Creates an account whose address is taken as verified, for operators (`admin create-user`,
/// the demo seed); `Conflict("username" | "email")` when the username is taken or another
/// account verified the address.
pub async fn insert(
    db: impl PgExecutor<'_>,
    username: &Username,
    email: &EmailAddress,
    display_name: &DisplayName,
    password_hash: &str,
    is_admin: bool,
) -> Result<User> {
    let row: UserRow = sqlx::query_as(concat!(
        "insert into users (id, username, email, display_name, password_hash, is_admin, \
           email_verified_at) \
         values ($1, $2, $3, $4, $5, $6, now()) returning ",
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
    .map_err(on_taken)?;
    Ok(row.into_user().0)
}

/// What a sign-up needs besides the new account's fields.
#[derive(Clone, Copy, Debug)]
pub struct SignUp<'a> {
    /// The login name.
    pub username: &'a Username,
    /// The address to verify.
    pub email: &'a EmailAddress,
    /// The name shown to others.
    pub display_name: &'a DisplayName,
    /// The password's argon2id PHC string.
    pub password_hash: &'a str,
    /// Hours the verification link will work.
    pub link_hours: u64,
}

/// Signs up: creates the account with its address unverified and, in the same transaction,
/// the job that emails the verification link. `Conflict("username")` when the username is
/// taken; `Conflict("email")` when another account verified the address (unverified claims
/// by others do not count: whoever verifies first owns it).
pub async fn sign_up(db: &PgPool, new: SignUp<'_>) -> Result<Written<User>> {
    let mut tx = db.begin().await?;
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "insert into users (id, username, email, display_name, password_hash) \
         select $1, $2, $3, $4, $5 \
         where not exists (select 1 from users \
                           where lower(email) = lower($3) and email_verified_at is not null) \
         returning ",
        user_columns!()
    ))
    .bind(UserId::generate().as_uuid())
    .bind(new.username.as_str())
    .bind(new.email.as_str())
    .bind(new.display_name.as_str())
    .bind(new.password_hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(on_taken)?;
    let Some(row) = row else {
        return Err(StoreError::Conflict("email"));
    };
    let (user, _) = row.into_user();
    crate::verification::enqueue_email(&mut tx, user.id, new.email.as_str(), new.link_hours)
        .await?;
    tx.commit().await?;
    Ok(Written::with_jobs(user))
}

/// What would make a sign-up fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignUpConflict {
    /// The username is taken (in any case).
    Username,
    /// The username looks like a taken one at a glance (`v1ctoria` for `victoria`; decision
    /// 90): `convos_username_look`, migration 0040.
    LookalikeUsername,
    /// Another account verified the address.
    Email,
}

/// What would make a sign-up fail, if anything. Three index lookups, so sign-up can refuse
/// before paying for the password hash; [`sign_up`]'s unique indexes stay the final word for
/// exact names and addresses (two sign-ups may pass this check at once).
pub async fn sign_up_conflict(
    db: &PgPool,
    username: &Username,
    email: &EmailAddress,
) -> Result<Option<SignUpConflict>> {
    let (username_taken, lookalike, email_taken): (bool, bool, bool) = sqlx::query_as(
        "select exists (select 1 from users where lower(username) = lower($1)), \
                exists (select 1 from users \
                        where convos_username_look(username) = convos_username_look($1)), \
                exists (select 1 from users \
                        where lower(email) = lower($2) and email_verified_at is not null)",
    )
    .bind(username.as_str())
    .bind(email.as_str())
    .fetch_one(db)
    .await?;
    Ok(if username_taken {
        Some(SignUpConflict::Username)
    } else if lookalike {
        Some(SignUpConflict::LookalikeUsername)
    } else if email_taken {
        Some(SignUpConflict::Email)
    } else {
        None
    })
}

fn on_taken(e: sqlx::Error) -> StoreError {
    on_unique(
        e,
        &[
            ("users_username_key", "username"),
            ("users_verified_email_key", "email"),
        ],
    )
}

/// The account and its settings.
pub async fn get(db: &PgPool, id: UserId) -> Result<(User, Preferences)> {
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
) -> Result<(User, Preferences)> {
    if let Some(zone) = &change.time_zone
        && !time_zone_known(db, zone).await?
        && !time_zone_is(db, id, zone).await?
    {
        return Err(StoreError::UnknownTimeZone);
    }
    let row: Option<UserRow> = sqlx::query_as(concat!(
        // Turning email back on retires the unsubscribe links sent before (decision 18). A
        // change of the email settings places the next digest anew (or none).
        "update users set display_name = coalesce($2, display_name), \
                email_resubscribed_at = case when $3 and not email_notifications then now() \
                                             else email_resubscribed_at end, \
                email_notifications = coalesce($3, email_notifications), \
                email_digest = coalesce($4, email_digest), \
                digest_hour = coalesce($5, digest_hour), \
                time_zone = coalesce($6, time_zone), \
                next_digest_at = case \
                  when $3 is null and $4 is null and $5 is null and $6 is null \
                    then next_digest_at \
                  when coalesce($3, email_notifications) and coalesce($4, email_digest) \
                    then next_digest_at(coalesce($5, digest_hour), coalesce($6, time_zone), now()) \
                  end, \
                updated_at = now() \
         where id = $1 returning ",
        user_columns!()
    ))
    .bind(id.as_uuid())
    .bind(change.display_name.as_ref().map(DisplayName::as_str))
    .bind(change.email_notifications)
    .bind(change.email_digest)
    .bind(change.digest_hour)
    .bind(change.time_zone.as_deref())
    .fetch_optional(db)
    .await?;
    row.map(UserRow::into_user).ok_or(StoreError::NotFound)
}

/// Whether `zone` is an IANA time zone name PostgreSQL knows (any case). What else
/// `AT TIME ZONE` takes is refused: POSIX rules (`UTC+5`, five hours *behind* UTC; `XYZ+167`, a
/// week); `localtime`, `posixrules`, `Factory` and the `posix/` and `right/` copies, whose
/// meaning is the database host's; abbreviations (`IST`, +05:30 or +02 by the server's
/// `timezone_abbreviations`), and the names PostgreSQL reads as one (`CET`, `EST`: a fixed
/// offset, so a Paris digest an hour off half the year), but those of UTC. The names are read
/// once per process (`pg_timezone_names` takes about 40 ms to list them); a failed read is
/// tried again next time.
pub async fn time_zone_known(db: &PgPool, zone: &str) -> Result<bool> {
    static KNOWN: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    let known = match KNOWN.get() {
        Some(known) => known,
        None => {
            // Requests arriving together may each read them once; the first read is kept.
            let names: Vec<String> = sqlx::query_scalar(
                "select lower(name) from pg_timezone_names \
                 where name !~ '^(posix|right)/' \
                   and name not in ('localtime', 'posixrules', 'Factory') \
                 except select lower(abbrev) from pg_timezone_abbrevs \
                 where utc_offset <> interval '0'",
            )
            .fetch_all(db)
            .await?;
            KNOWN.get_or_init(|| names.into_iter().collect())
        }
    };
    Ok(known.contains(&zone.to_lowercase()))
}

/// Whether `zone` is `user`'s time zone already (any case): one stored before today's rules is
/// kept when a client sends it back with another change.
async fn time_zone_is(db: &PgPool, user: UserId, zone: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from users where id = $1 and lower(time_zone) = lower($2))",
    )
    .bind(user.as_uuid())
    .bind(zone)
    .fetch_one(db)
    .await?)
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

/// Who the directory shows the caller (`$1`): accounts not suspended, and not those who
/// blocked the caller (they take nothing from them; decisions 87 and 88).
macro_rules! listed_to_caller {
    () => {
        "u.suspended_at is null \
         and not exists (select 1 from blocks b where b.user_id = u.id and b.blocked_id = $1)"
    };
}

/// The directory: users whose username starts with `prefix`, alphabetically, minus the caller,
/// suspended accounts and those who blocked the caller.
///
/// It reads one page, whatever the number of users: the usernames' index (`text_pattern_ops`,
/// byte order) is walked in its own order (`using ~<~`) from the prefix to the next one, bounds
/// computed here, so that a prepared statement's generic plan walks it too. Ordered by
/// `lower(username)` in the collation's order, with a `like` condition, every user was sorted
/// for a page when the prefix was empty or short (a second at a million users).
pub async fn directory(
    db: &PgPool,
    caller: UserId,
    prefix: &str,
    limit: i64,
) -> Result<Vec<UserSummary>> {
    let from = prefix.to_lowercase();
    // Usernames are `a-z`, `0-9`, `_`, `.` and `-`: no other prefix matches any (a DEL, with
    // no text after it in byte order, was read as no prefix and listed everyone).
    if !from.chars().all(Username::holds) {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, String, String)> = match next_prefix(&from) {
        None => {
            sqlx::query_as(concat!(
                "select id, username, ",
                shown_name!("$1", "u"),
                " from users u where id <> $1 and ",
                listed_to_caller!(),
                " order by lower(username) using ~<~ limit $2"
            ))
            .bind(caller.as_uuid())
            .bind(limit)
            .fetch_all(db)
            .await?
        }
        Some(to) => {
            sqlx::query_as(concat!(
                "select id, username, ",
                shown_name!("$1", "u"),
                " from users u \
                     where lower(username) ~>=~ $2 and lower(username) ~<~ $3 and id <> $1 and ",
                listed_to_caller!(),
                " order by lower(username) using ~<~ limit $4"
            ))
            .bind(caller.as_uuid())
            .bind(&from)
            .bind(to)
            .bind(limit)
            .fetch_all(db)
            .await?
        }
    };
    Ok(rows.into_iter().map(summary).collect())
}

/// A user as others see them, from a row of `id, username, display_name`.
pub(crate) fn summary((id, username, display_name): (Uuid, String, String)) -> UserSummary {
    UserSummary {
        id: id.into(),
        username,
        display_name,
    }
}

/// The first text after every text starting with `prefix` (ASCII) in byte order: `prefix`
/// with its last byte counted up (a last byte of 0x7F is dropped and the one before counted
/// up). `None` for an empty prefix, or one with nothing after it: no upper bound.
fn next_prefix(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7F {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::next_prefix;

    #[test]
    fn the_prefix_after_a_prefix_counts_up_its_last_byte() {
        assert_eq!(next_prefix(""), None, "no bound after nothing");
        assert_eq!(next_prefix("ab").as_deref(), Some("ac"));
        assert_eq!(next_prefix("a_").as_deref(), Some("a`"));
        assert_eq!(next_prefix("a\u{7f}").as_deref(), Some("b"));
        assert_eq!(next_prefix("\u{7f}\u{7f}"), None);
    }
}

/// What an operator's suspension did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    /// The account.
    pub user: UserId,
    /// The sessions it ended (their event streams are told).
    pub ended: Vec<crate::tokens::TokenId>,
}

/// Suspends (`on`) the account named `username`, or lifts its suspension, for the operator
/// `actor` (decision 88): suspended, it cannot log in, its sessions end and its reply addresses
/// stop working. Recorded in the audit log. [`StoreError::NotFound`] when nobody has the name.
pub async fn suspend(
    db: &PgPool,
    actor: UserId,
    username: &Username,
    on: bool,
) -> Result<Suspension> {
    let mut tx = db.begin().await?;
    let user: Uuid = sqlx::query_scalar(
        "update users set suspended_at = case when $2 then coalesce(suspended_at, now()) end, \
           updated_at = now() \
         where lower(username) = lower($1) returning id",
    )
    .bind(username.as_str())
    .bind(on)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let ended: Vec<Uuid> = if on {
        sqlx::query_scalar("delete from api_tokens where user_id = $1 returning id")
            .bind(user)
            .fetch_all(&mut *tx)
            .await?
    } else {
        Vec::new()
    };
    crate::ops::audit(
        &mut *tx,
        actor.as_uuid(),
        if on { "suspend" } else { "unsuspend" },
        username.as_str(),
        ended.len() as u64,
    )
    .await?;
    tx.commit().await?;
    Ok(Suspension {
        user: user.into(),
        ended: ended.into_iter().map(crate::tokens::TokenId).collect(),
    })
}

/// Whether `user`'s account is suspended.
pub async fn is_suspended(db: &PgPool, user: UserId) -> Result<bool> {
    Ok(
        sqlx::query_scalar("select suspended_at is not null from users where id = $1")
            .bind(user.as_uuid())
            .fetch_optional(db)
            .await?
            .unwrap_or(false),
    )
}
