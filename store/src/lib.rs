//! PostgreSQL access for Convos, shared by the server and the worker.
//!
//! Every query lives here, in small per-resource modules. Functions take the caller's id and
//! return what that caller may see: visibility rules (delete-for-me, expiry, read-once) are
//! enforced in SQL, so no caller can forget them.

pub mod blocks;
mod counters;
pub mod cursor;
pub mod deliveries;
pub mod digests;
pub mod email_links;
pub mod inbound;
pub mod jobs;
pub mod messages;
pub mod ops;
pub mod purge;
pub mod reports;
pub mod search;
pub mod threads;
pub mod tokens;
pub mod unsubscribe;
pub mod users;
pub mod verification;
mod visibility;
pub mod written;

pub use written::Written;

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
    /// A time zone PostgreSQL does not know.
    #[error("unknown time zone")]
    UnknownTimeZone,
    /// A session was asked to end one made after it (decision 76).
    #[error(
        "this session can end only sessions made before it: end that one from a newer session \
         (log in again), or change your password to end every other session"
    )]
    NewerSession,
    /// A new thread's recipient is its sender.
    #[error("you cannot send a message to yourself")]
    SelfRecipient,
    /// The recipient has blocked the sender (decision 87).
    #[error("this person does not take messages from you")]
    Blocked,
    /// PostgreSQL cancelled a statement that ran past its time limit (`statement_timeout`) or
    /// waited too long for a lock (`lock_timeout`); the request may succeed later.
    #[error("the database statement took too long and was cancelled")]
    TimedOut,
    /// PostgreSQL could not be reached when connecting: where (host, port and database; never
    /// the password) and why.
    #[error("could not connect to postgres at {place}")]
    Connect {
        /// `host:port/database`.
        place: String,
        /// What failed.
        #[source]
        cause: sqlx::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Database(sqlx::Error),
}

/// SQLSTATE of a statement cancelled by `statement_timeout` (or a user's cancel request).
const QUERY_CANCELED: &str = "57014";
/// SQLSTATE of a lock wait ended by `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

impl From<sqlx::Error> for StoreError {
    /// Every query error passes here, so a time limit is recognised whichever function hit it.
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && matches!(
                db.code().as_deref(),
                Some(QUERY_CANCELED | LOCK_NOT_AVAILABLE)
            )
        {
            return StoreError::TimedOut;
        }
        StoreError::Database(err)
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Time limits every connection of a pool sets for its own statements.
///
/// `None` leaves PostgreSQL's setting (by default: no limit). Statements that must not be cut
/// short (migrations, the worker's purges and vacuums) run on a pool without limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatementLimits {
    /// How long one statement may run (`statement_timeout`), lock waits included.
    pub statement_timeout: Option<Duration>,
    /// How long one statement may wait for a lock (`lock_timeout`).
    pub lock_timeout: Option<Duration>,
}

impl StatementLimits {
    /// No limits: for migrations and background jobs.
    pub const NONE: StatementLimits = StatementLimits {
        statement_timeout: None,
        lock_timeout: None,
    };

    /// Statements limited to `timeout`, lock waits included.
    pub fn statements(timeout: Duration) -> Self {
        Self {
            statement_timeout: Some(timeout),
            lock_timeout: None,
        }
    }
}

/// Opens a connection pool. `max_connections` bounds what one process asks of PostgreSQL;
/// `limits` are set on every connection at start-up (a session default that `SET LOCAL` can
/// tighten for one transaction). Gives up after [`CONNECT_TIMEOUT`], saying where and why.
pub async fn connect(url: &str, max_connections: u32, limits: StatementLimits) -> Result<PgPool> {
    let mut settings = Vec::new();
    if let Some(t) = limits.statement_timeout {
        settings.push(("statement_timeout", millis(t)));
    }
    if let Some(t) = limits.lock_timeout {
        settings.push(("lock_timeout", millis(t)));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|cause| StoreError::Connect {
            place: "the configured URL".into(),
            cause,
        })?
        .application_name("convos")
        .options(settings);
    let place = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options.clone())
        .await;
    let cause = match pool {
        Ok(pool) => return Ok(pool),
        // The pool retries a refused connection until its timeout, then names only the
        // timeout: one more attempt, alone and as bounded, tells why.
        Err(sqlx::Error::PoolTimedOut) => {
            use sqlx::Connection;
            let alone = sqlx::PgConnection::connect_with(&options);
            match tokio::time::timeout(CONNECT_TIMEOUT, alone).await {
                Ok(Err(cause)) => cause,
                Ok(Ok(_)) | Err(_) => sqlx::Error::PoolTimedOut,
            }
        }
        Err(cause) => cause,
    };
    Err(StoreError::Connect { place, cause })
}

/// How long connecting to PostgreSQL may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A duration as PostgreSQL's millisecond setting value; at least 1, because 0 means "no limit".
pub(crate) fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, i32::MAX as u128).to_string()
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
    StoreError::from(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_url() -> String {
        std::env::var("DATABASE_URL").expect("DATABASE_URL names a PostgreSQL to test against")
    }

    #[tokio::test]
    async fn a_statement_past_the_pools_time_limit_is_cancelled_as_timed_out() {
        let limits = StatementLimits::statements(Duration::from_millis(200));
        let db = connect(&database_url(), 1, limits).await.expect("connects");
        let shown: String = sqlx::query_scalar("show statement_timeout")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(shown, "200ms");

        let err = sqlx::query("select pg_sleep(5)")
            .execute(&db)
            .await
            .map_err(StoreError::from)
            .expect_err("cancelled");

        assert!(matches!(err, StoreError::TimedOut), "{err:?}");
        let alive: i32 = sqlx::query_scalar("select 1").fetch_one(&db).await.unwrap();
        assert_eq!(alive, 1, "the connection is still usable");
    }

    #[tokio::test]
    async fn a_pool_without_limits_keeps_the_servers_default() {
        let db = connect(&database_url(), 1, StatementLimits::NONE)
            .await
            .expect("connects");
        let shown: String = sqlx::query_scalar("show statement_timeout")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(shown, "0");
    }

    #[test]
    fn a_limit_is_whole_milliseconds_and_never_zero() {
        assert_eq!(millis(Duration::from_millis(2_000)), "2000");
        assert_eq!(
            millis(Duration::from_micros(10)),
            "1",
            "0 would mean no limit"
        );
    }
}
