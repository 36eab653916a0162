//! Client networks, for the listeners (the API's and the SMTP listener's): connections counted
//! per network, so one host cannot take every place a listener has, and lists of addresses and
//! ranges they treat apart (the API's trusted proxies, the SMTP listener's relays).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The network an address stands for when counting per client: an IPv4 address itself, an IPv6
/// address's /64 (one subscriber's usual allocation, which costs an attacker nothing to rotate
/// within).
pub fn network_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// Addresses and ranges (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Debug, Default)]
pub struct Networks(Vec<Cidr>);

impl Networks {
    /// Parses each entry, or says which one is not an address or range.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| Cidr::parse(e).ok_or_else(|| format!("`{e}` is not an address or range")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `addr` is one of them (an IPv4 address seen on a dual-stack socket as
    /// `::ffff:a.b.c.d` is the IPv4 address).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }
}

#[derive(Clone, Copy, Debug)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(raw: &str) -> Option<Self> {
        let (addr, bits) = match raw.trim().split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (raw.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Self { net: addr, bits })
    }

    fn contains(&self, addr: IpAddr) -> bool {
        let addr = match (self.net, addr) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            _ => addr,
        };
        match (self.net, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Open connections per client network.
#[derive(Clone, Debug, Default)]
pub struct PerNetwork(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection counted against its network; dropping it gives the place back.
#[derive(Debug)]
pub struct Held {
    counts: PerNetwork,
    network: IpAddr,
}

impl PerNetwork {
    /// Counts a connection from `peer`'s network, unless that network already holds `max`
    /// (at least one is always allowed).
    pub fn take(&self, peer: IpAddr, max: usize) -> Option<Held> {
        let network = network_of(peer);
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(network).or_default();
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(Held {
            counts: self.clone(),
            network,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.network) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.network);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(network_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(network_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(network_of(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn ranges_are_checked_when_parsed_and_match_their_addresses() {
        assert!(Networks::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(Networks::parse(&["not-an-ip".into()]).is_err());
        let networks = Networks::parse(&["10.0.0.0/8".into(), "fd00::/8".into()]).unwrap();
        assert!(networks.contains(ip("10.1.2.3")));
        assert!(
            networks.contains(ip("::ffff:10.1.2.3")),
            "IPv4 on a dual-stack socket"
        );
        assert!(networks.contains(ip("fd12::1")));
        assert!(!networks.contains(ip("11.0.0.1")));
        assert!(!Networks::default().contains(ip("10.1.2.3")));
    }

    #[test]
    fn a_network_holds_at_most_its_share_and_gets_places_back() {
        let per_network = PerNetwork::default();
        let first = per_network.take(ip("2001:db8::1"), 2).unwrap();
        let _second = per_network.take(ip("2001:db8::2"), 2).unwrap();

        assert!(per_network.take(ip("2001:db8::3"), 2).is_none(), "same /64");
        assert!(
            per_network.take(ip("2001:db8:0:1::1"), 2).is_some(),
            "another /64"
        );
        drop(first);
        assert!(per_network.take(ip("2001:db8::3"), 2).is_some());
    }
}
