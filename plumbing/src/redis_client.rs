//! The one way the server and the worker open a Redis client: with `TCP_NODELAY` on; and the
//! one check that the Redis they reach is new enough.
//!
//! redis-rs leaves Nagle's algorithm on unless told otherwise. On a multiplexed connection, where
//! many requests are in flight at once (queue polls, acknowledgements, appends, rate limits),
//! Nagle holds each small write back until everything written before it is acknowledged, so a
//! request waits for the answer to the one ahead of it: a round trip per request in flight
//! (decision 71). Redis turns Nagle off on its side of every connection; this is our side.

use redis::IntoConnectionInfo;
use redis::io::tcp::TcpSettings;

/// A client for `url` whose TCP connections send each write at once.
pub fn open(url: &str) -> redis::RedisResult<redis::Client> {
    let info = url
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

/// The oldest Redis the limits' counters work on: they set expiries with `PEXPIRE … NX`, which
/// Redis 6 refuses, after counting; every limit would then fail open (decision 6) while its
/// counter grew without expiry.
pub const OLDEST_MAJOR: u32 = 7;

/// Refuses a Redis older than [`OLDEST_MAJOR`], read from `INFO server`; one that does not say
/// its version passes.
pub async fn check_version(conn: &mut impl redis::aio::ConnectionLike) -> Result<(), String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .map_err(|e| format!("could not read Redis's version: {e}"))?;
    too_old(&info).map_or(Ok(()), Err)
}

/// Why the Redis whose `INFO server` is `info` is too old, if it is.
fn too_old(info: &str) -> Option<String> {
    let version = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("redis_version:"))?;
    let major: u32 = version.split('.').next()?.parse().ok()?;
    (major < OLDEST_MAJOR).then(|| {
        format!(
            "Redis {OLDEST_MAJOR}.0 or newer is required (this one is {version}): the limits' \
             counters use PEXPIRE NX"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_older_than_seven_is_refused_by_its_version() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert!(too_old(&info("6.2.14")).unwrap().contains("6.2.14"));
        assert_eq!(too_old(&info("7.0.15")), None);
        assert_eq!(too_old(&info("8.2.1")), None);
        assert_eq!(
            too_old("# Server\r\nredis_mode:standalone\r\n"),
            None,
            "no version said"
        );
    }

    #[test]
    fn a_client_turns_nagle_off_and_keeps_the_address() {
        let client = open("redis://127.0.0.1:6390/2").unwrap();
        assert!(client.get_connection_info().tcp_settings().nodelay());
        assert_eq!(
            client.get_connection_info().addr().to_string(),
            "127.0.0.1:6390"
        );
        assert_eq!(client.get_connection_info().redis_settings().db(), 2);
    }
}
