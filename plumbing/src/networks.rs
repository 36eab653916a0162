//! Client networks, for the listeners (the API's and the SMTP listener's): connections counted
//! per network and per IPv6 /48, so one host or site cannot take every place a listener has,
//! and lists of addresses and ranges they treat apart (the API's trusted proxies, the SMTP
//! listener's relays).

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

/// The wider block an IPv6 network belongs to: its /48, a site's usual allocation, which a tunnel
/// broker hands out for free. None for IPv4, counted by the address alone.
pub(crate) fn block_of(network: IpAddr) -> Option<IpAddr> {
    match network {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => Some(IpAddr::V6(Ipv6Addr::from(
            u128::from(v6) & (u128::MAX << 80),
        ))),
    }
}

/// How many of a network's share one IPv6 /48 holds, whatever number of /64s it uses.
pub(crate) const BLOCK_SHARES: usize = 2;

/// Open connections per client network, and per IPv6 /48 (decision 64).
#[derive(Clone, Debug, Default)]
pub struct PerNetwork(Arc<Mutex<HashMap<Counted, usize>>>);

/// What a connection is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Counted {
    /// Its network ([`network_of`]).
    Network(IpAddr),
    /// Its network's /48 ([`block_of`]).
    Block(IpAddr),
}

/// One connection counted against its network (and /48); dropping it gives the places back.
#[derive(Debug)]
pub struct Held {
    counts: PerNetwork,
    network: IpAddr,
}

impl PerNetwork {
    /// Counts a connection from `peer`'s network, unless that network already holds `max`, or
    /// its IPv6 /48 twice that (at least one is always allowed).
    pub fn take(&self, peer: IpAddr, max: usize) -> Option<Held> {
        let network = network_of(peer);
        let max = max.max(1);
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = |key| counts.get(&key).copied().unwrap_or(0);
        if count(Counted::Network(network)) >= max {
            return None;
        }
        if let Some(block) = block_of(network)
            && count(Counted::Block(block)) >= max.saturating_mul(BLOCK_SHARES)
        {
            return None;
        }
        for key in counted_under(network) {
            *counts.entry(key).or_default() += 1;
        }
        Some(Held {
            counts: self.clone(),
            network,
        })
    }
}

/// The counts a connection from `network` takes a place in.
fn counted_under(network: IpAddr) -> impl Iterator<Item = Counted> {
    std::iter::once(Counted::Network(network)).chain(block_of(network).map(Counted::Block))
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        for key in counted_under(self.network) {
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
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

    #[test]
    fn an_ipv6_48_holds_at_most_twice_a_networks_share_however_many_64s_it_rotates_through() {
        // A tunnel broker hands out a /48 for free: 65,536 /64s, each a network of its own.
        let per_network = PerNetwork::default();
        let held: Vec<Held> = (0..4)
            .map(|n| {
                per_network
                    .take(ip(&format!("2001:db8:7:{n}::1")), 2)
                    .expect("a fresh /64 of a /48 below its share")
            })
            .collect();

        assert!(
            per_network.take(ip("2001:db8:7:ff::1"), 2).is_none(),
            "a fifth /64 of the same /48 past twice the share"
        );
        assert!(
            per_network.take(ip("2001:db8:8::1"), 2).is_some(),
            "another /48 is counted apart"
        );
        assert!(
            per_network.take(ip("192.0.2.1"), 2).is_some(),
            "IPv4 as before"
        );

        drop(held);
        assert!(
            per_network.take(ip("2001:db8:7:ff::1"), 2).is_some(),
            "the /48's places come back"
        );
    }

    #[test]
    fn an_ipv4_address_on_a_dual_stack_socket_is_no_48_and_a_refusal_holds_no_place() {
        let per_network = PerNetwork::default();
        let held: Vec<Held> = (1..=4)
            .map(|n| {
                per_network
                    .take(ip(&format!("::ffff:192.0.2.{n}")), 1)
                    .expect("each IPv4 address its own network, counted under no /48")
            })
            .collect();
        assert!(
            per_network.take(ip("192.0.2.1"), 1).is_none(),
            "the same address"
        );

        // Refused connections take nothing: once the one place is back, one more fits.
        let only = per_network
            .take(ip("2001:db8:9::1"), 0)
            .expect("a share of 0 is 1");
        for _ in 0..3 {
            assert!(per_network.take(ip("2001:db8:9::2"), 0).is_none());
        }
        drop(only);
        assert!(per_network.take(ip("2001:db8:9::2"), 0).is_some());
        drop(held);
    }
}
