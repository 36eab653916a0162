//! The client's address, for per-address limits: the TCP peer, or, when the peer is one of the
//! configured trusted proxies, the nearest address in `X-Forwarded-For` that is not.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use convos_plumbing::networks::Networks;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Who sent the request, as far as this server can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Requests that did not come through a listener (in-process tests) have no peer.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(Self(state.proxies.client(peer, forwarded)))
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.5`) and ranges (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        Networks::parse(entries).map(Self)
    }

    /// Whether `addr` is one of the trusted proxies.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.contains(addr)
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; then the right-most
    /// `X-Forwarded-For` entry that is not a trusted proxy (entries further left were written
    /// by the client and prove nothing). A malformed entry ends the walk at the last good one.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|h| h.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(addr) => {
                    client = addr;
                    if !self.trusts(addr) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`) or in brackets, as some proxies write them.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let got = proxies.client(ip("203.0.113.9"), ["1.2.3.4"].into_iter());
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let got = proxies.client(
            ip("10.1.2.3"),
            ["6.6.6.6, 198.51.100.4", "192.0.2.7"].into_iter(),
        );
        assert_eq!(got, ip("198.51.100.4"));
    }

    #[test]
    fn a_trusted_peer_without_a_header_is_itself() {
        let proxies = TrustedProxies::parse(&["::1".into()]).unwrap();
        assert_eq!(proxies.client(ip("::1"), std::iter::empty()), ip("::1"));
    }

    #[test]
    fn hops_with_ports_or_brackets_are_read() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let v4 = proxies.client(ip("10.0.0.1"), ["198.51.100.4:5678"].into_iter());
        let v6 = proxies.client(ip("10.0.0.1"), ["[2001:db8::1]:443"].into_iter());
        let bare = proxies.client(ip("10.0.0.1"), ["[2001:db8::2]"].into_iter());
        assert_eq!(v4, ip("198.51.100.4"));
        assert_eq!(v6, ip("2001:db8::1"));
        assert_eq!(bare, ip("2001:db8::2"));
    }

    #[test]
    fn garbage_in_the_header_stops_the_walk() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let got = proxies.client(ip("10.0.0.1"), ["198.51.100.4, nonsense"].into_iter());
        assert_eq!(got, ip("10.0.0.1"));
    }

    #[test]
    fn ranges_are_checked_when_parsed() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["not-an-ip".into()]).is_err());
        assert!(TrustedProxies::parse(&["fd00::/8".into()]).is_ok());
    }
}
