//! Limits on password guessing that cannot be turned into a lock-out of the account's owner.
//!
//! Every password check (a login, or the current password of a password change) is counted
//! against three limits before it runs, and given back when it succeeds:
//!
//! 1. per client address, over all usernames (`login_failures_per_min_per_addr`): a sprayer
//!    from one address gets 429 after a few dozen guesses a minute, whatever names it tries;
//! 2. per username *from one address* (`login_failures_per_min`): guessing one account from
//!    one address is slower still, and touches nobody else's attempts at that account;
//! 3. per username over all addresses (`login_failures_per_hour_per_username`), a ceiling on
//!    guessing spread over many addresses. It sits well above what one address can reach
//!    through limit 2, and an address that logged in as the user within the last 30 days is
//!    exempt, so the owner keeps getting in from where they usually do.
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
/// How long a successful login makes its address "known" for that user.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// One counted password check; report how it ended with [`Attempt::succeeded`] or
/// [`Attempt::not_checked`] (a failure needs no call: it stays counted).
#[must_use = "a successful check must give its counts back"]
pub struct Attempt {
    username: String,
    addr: String,
    /// The address logged in as this user recently: exempt from the username-wide ceiling, and
    /// checked in the hasher's first lane.
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

    fn known_key(&self, state: &AppState) -> String {
        format!(
            "{}login-known:{}|{}",
            state.settings.redis_prefix, self.username, self.addr
        )
    }

    async fn is_known(&self, state: &AppState) -> bool {
        let Ok(mut conn) = state.redis.get().await else {
            return false;
        };
        let known: redis::RedisResult<bool> = redis::cmd("EXISTS")
            .arg(self.known_key(state))
            .query_async(&mut conn)
            .await;
        known.unwrap_or(false)
    }

    /// The password was right: the check is given back and the address becomes known.
    pub async fn succeeded(self, state: &AppState) {
        self.not_checked(state).await;
        let key = self.known_key(state);
        if let Ok(mut conn) = state.redis.get().await {
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("EX")
                .arg(KNOWN_FOR.as_secs())
                .query_async(&mut conn)
                .await;
        }
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
