//! Limits on password checks that cannot be turned into a lock-out of the account's owner.
//!
//! Every password check (a login, the current password of a password change, or the password
//! of a change of address) is counted
//! against three limits on *failures* before it runs, and given back when it succeeds:
//!
//! 1. per client address, over all usernames (`login_failures_per_min_per_addr`): a sprayer
//!    from one address gets 429 after a few dozen guesses a minute, whatever names it tries;
//! 2. per username *from one address* (`login_failures_per_min`): guessing one account from
//!    one address is slower still, and touches nobody else's attempts at that account;
//! 3. per username over all addresses (`login_failures_per_hour_per_username`), a ceiling on
//!    guessing spread over many addresses. It sits well above what one address can reach
//!    through limit 2, and a *known* address of the user is exempt, so the owner keeps getting
//!    in from where they usually are.
//!
//! Successful checks cost a hash too, and from a known address they wait in the hasher's first
//! lane, so they are limited as well: per user (`logins_per_hour_per_user`) and per address
//! (`logins_per_hour_per_addr`). Those counters grow only on success, so only someone who knows
//! the password can use them up; a check over either is refused before it is hashed.
//!
//! An address becomes known for a user when they log in from it, and stays known for as long
//! as a session could live (`session_max_days`): every time a session records its use (at most
//! once a minute) the address it is used from is known afresh. So when a session ends and its
//! owner must log in again, the address they used it from is still known. A user has at most
//! [`MAX_KNOWN`] known addresses, the most recently used, in one Redis set: a key of its own per
//! address let one account's sessions, used from ever new IPv6 /64s, write 72,000 keys a day,
//! each kept 90 days.
//!
//! IPv6 clients are counted by their /64, which one subscriber typically holds whole. Like
//! every limit here, these fail open when Redis is unreachable (decision 6).

use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::hashing::Lane;
use crate::rate_limit::Decision;
use crate::state::AppState;
use std::net::IpAddr;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY_SECS: u64 = 24 * 3600;

/// How long an address stays known for a user after a login or a session's use from it: as
/// long as a session lives, so an address stays known until its sessions have all ended.
fn known_for(state: &AppState) -> u64 {
    let lifetimes = crate::auth::lifetimes(&state.settings);
    let days = lifetimes.max_days.max(lifetimes.idle_days).max(1);
    u64::from(days.unsigned_abs()) * DAY_SECS
}

/// The most addresses known for one user: the most recently used are kept.
pub const MAX_KNOWN: isize = 64;

/// The Redis sorted set of `username`'s (lower case) known addresses ([`addr_key`]s), each
/// scored with the Unix time in milliseconds it stops being known (milliseconds, so the most
/// recently used rank last even within a second).
fn known_key(state: &AppState, username: &str) -> String {
    format!("{}login-known:{username}", state.settings.redis_prefix)
}

/// Milliseconds since the Unix epoch.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Makes `addr` known for `username` for [`known_for`] from now; the set drops the addresses
/// no longer known, and the oldest past [`MAX_KNOWN`].
async fn mark_known(state: &AppState, username: &str, addr: &str) {
    let key = known_key(state, username);
    let now = unix_millis();
    let lasts = known_for(state);
    if let Ok(mut conn) = state.redis.get().await {
        let _: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .zadd(&key, addr, now + lasts * 1000)
            .ignore()
            .zrembyscore(&key, "-inf", now)
            .ignore()
            .zremrangebyrank(&key, 0, -(MAX_KNOWN + 1))
            .ignore()
            .expire(&key, lasts as i64)
            .ignore()
            .query_async(&mut conn)
            .await;
    }
}

/// A session of `username` was used from `addr` (recorded at most once a minute): the address
/// stays known for as long as a session could live from now.
pub async fn session_used(state: &AppState, username: &str, addr: ClientAddr) {
    mark_known(state, &username.to_lowercase(), &addr_key(addr)).await;
}

/// The Redis key counting successful checks of `kind` (`user` or `addr`) for `subject`.
fn successes_key(state: &AppState, kind: &str, subject: &str) -> String {
    format!("{}login-ok:{kind}:{subject}", state.settings.redis_prefix)
}

/// How long until the successes counted at `key` drop below `limit`, if they are not below it
/// now. Read only: the counter grows in [`count_success`], once a check has succeeded.
async fn successes_over(state: &AppState, key: &str, limit: u32) -> Option<Duration> {
    let mut conn = state.redis.get().await.ok()?;
    let (count, ttl_ms): (Option<u64>, i64) = redis::pipe()
        .get(key)
        .pttl(key)
        .query_async(&mut conn)
        .await
        .ok()?;
    (count.unwrap_or(0) >= u64::from(limit))
        .then(|| Duration::from_millis(ttl_ms.max(1000).unsigned_abs()))
}

/// Counts one successful check at `key`, in a window of an hour from the first.
async fn count_success(state: &AppState, key: &str) {
    if let Ok(mut conn) = state.redis.get().await {
        let _: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .incr(key, 1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(HOUR.as_millis() as u64)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await;
    }
}

/// One counted password check; report how it ended with [`Attempt::succeeded`] or
/// [`Attempt::not_checked`] (a failure needs no call: it stays counted).
#[must_use = "a successful check must give its counts back"]
pub struct Attempt {
    username: String,
    addr: String,
    /// A known address of this user: exempt from the username-wide ceiling, and checked in the
    /// hasher's first lane.
    known: bool,
}

/// The limiter key of a client address: IPv4 whole, IPv6 by /64.
pub(crate) fn addr_key(addr: ClientAddr) -> String {
    match addr.0 {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl Attempt {
    /// Counts a password check for `username` (any case) from `addr`; 429 when over a limit.
    pub async fn begin(
        state: &AppState,
        username: &str,
        addr: ClientAddr,
    ) -> Result<Self, ApiError> {
        let settings = &state.settings;
        let username = username.to_lowercase();
        let addr = addr_key(addr);
        // Successes first: they are only read here, so a refusal costs no count.
        for (key, limit) in [
            (
                successes_key(state, "user", &username),
                settings.logins_per_hour_per_user,
            ),
            (
                successes_key(state, "addr", &addr),
                settings.logins_per_hour_per_addr,
            ),
        ] {
            if let Some(wait) = successes_over(state, &key, limit).await {
                return Err(ApiError::RateLimited(wait));
            }
        }
        let limiter = &state.limiter;
        if let Decision::Limited(wait) = limiter
            .hit(
                "login-addr",
                &addr,
                settings.login_failures_per_min_per_addr,
                MINUTE,
            )
            .await
        {
            return Err(ApiError::RateLimited(wait));
        }
        let mut attempt = Self {
            username,
            addr,
            known: false,
        };
        if let Decision::Limited(wait) = limiter
            .hit(
                "login",
                &attempt.pair(),
                settings.login_failures_per_min,
                MINUTE,
            )
            .await
        {
            return Err(ApiError::RateLimited(wait));
        }
        attempt.known = attempt.is_known(state).await;
        if !attempt.known
            && let Decision::Limited(wait) = limiter
                .hit(
                    "login-user",
                    &attempt.username,
                    settings.login_failures_per_hour_per_username,
                    HOUR,
                )
                .await
        {
            return Err(ApiError::RateLimited(wait));
        }
        Ok(attempt)
    }

    /// The hashing lane this check waits in.
    pub fn lane(&self) -> Lane {
        if self.known { Lane::Known } else { Lane::Other }
    }

    fn pair(&self) -> String {
        format!("{}|{}", self.username, self.addr)
    }

    async fn is_known(&self, state: &AppState) -> bool {
        let Ok(mut conn) = state.redis.get().await else {
            return false;
        };
        let until: redis::RedisResult<Option<f64>> = redis::cmd("ZSCORE")
            .arg(known_key(state, &self.username))
            .arg(&self.addr)
            .query_async(&mut conn)
            .await;
        until
            .ok()
            .flatten()
            .is_some_and(|until| until > unix_millis() as f64)
    }

    /// The password was right: the failure counts are given back, the success is counted for
    /// the user and the address, and the address becomes known.
    pub async fn succeeded(self, state: &AppState) {
        self.not_checked(state).await;
        count_success(state, &successes_key(state, "user", &self.username)).await;
        count_success(state, &successes_key(state, "addr", &self.addr)).await;
        mark_known(state, &self.username, &self.addr).await;
    }

    /// The password was not checked (the hasher was busy): nothing counts.
    pub async fn not_checked(&self, state: &AppState) {
        state.limiter.forget_one("login-addr", &self.addr).await;
        state.limiter.forget_one("login", &self.pair()).await;
        if !self.known {
            state.limiter.forget_one("login-user", &self.username).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        addr_key(ClientAddr(s.parse().unwrap()))
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2:aaaa::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[test]
    fn ipv4_clients_are_counted_whole_even_on_a_dual_stack_socket() {
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
