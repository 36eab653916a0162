//! The one way the server and the worker open a Redis client: with `TCP_NODELAY` on.
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

#[cfg(test)]
mod tests {
    use super::*;

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
