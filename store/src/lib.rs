//! PostgreSQL access for Convos, shared by the server and the worker.
//!
//! Every query lives here, in small per-resource modules. Functions take the caller's id and
//! return what that caller may see: visibility rules (delete-for-me, expiry, read-once) are
//! enforced in SQL, so no caller can forget them.

pub mod cursor;
pub mod deliveries;
pub mod jobs;
pub mod messages;
pub mod ops;
pub mod purge;
pub mod search;
pub mod threads;
pub mod tokens;
pub mod users;
pub mod verification;
mod visibility;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The embedded migrations from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// What can go wrong in the store, in terms the API can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist or the caller may not see it.
    #[error("not found")]
    NotFound,
    /// A unique value is already taken; names the API field it concerns.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The same `Idempotency-Key` was used before for a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyMismatch,
    /// A new thread's recipient names nobody.
    #[error("no user has this username")]
    UnknownRecipient,
    /// A new thread's recipient is its sender.
    #[error("you cannot send a message to yourself")]
    SelfRecipient,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens a connection pool. `max_connections` bounds what one process asks of PostgreSQL.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("convos");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Maps a unique violation on `constraint` to [`StoreError::Conflict`] naming `field`.
pub(crate) fn on_unique(err: sqlx::Error, map: &[(&str, &'static str)]) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
        && let Some(constraint) = db.constraint()
        && let Some((_, field)) = map.iter().find(|(c, _)| *c == constraint)
    {
        return StoreError::Conflict(field);
    }
    StoreError::Database(err)
}
