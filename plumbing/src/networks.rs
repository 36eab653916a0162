//! Connections counted per client network, for the listeners that cap them (the API's and the
//! SMTP listener's): one host cannot take every place a listener has.

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
