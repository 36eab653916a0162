//! Requests per second per client network, so no one host or site can take more than its share
//! of a server (decision 78): a token bucket per network (an IPv4 address, an IPv6 /64) and per
//! IPv6 /48 (twice the rate), in this process, checked before any other work of a request.

use crate::networks::{BLOCK_SHARES, block_of, network_of};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds of the rate a bucket holds when full: the burst a quiet client may send at once.
const BURST_SECS: f64 = 2.0;

/// Buckets kept before full ones are dropped (a full bucket is the same as none).
const SWEEP_FROM: usize = 4_096;

/// The request buckets of this process.
#[derive(Clone, Debug)]
pub struct RequestRate {
    /// Requests a second a network may sustain; 0: no limit.
    per_sec: u32,
    buckets: Arc<Mutex<Buckets>>,
}

#[derive(Debug)]
struct Buckets {
    by_key: HashMap<IpAddr, Bucket>,
    /// Size at which full buckets are next dropped.
    sweep_at: usize,
}

/// Tokens left at `at`, refilled at `rate` a second.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    rate: f64,
}

impl Bucket {
    /// A full bucket of `rate` a second.
    fn full(rate: f64, now: Instant) -> Self {
        Self {
            tokens: rate * BURST_SECS,
            at: now,
            rate,
        }
    }

    /// The tokens at `now`, up to `BURST_SECS` of the rate.
    fn refilled(self, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        (self.tokens + earned).min(self.rate * BURST_SECS)
    }
}

impl RequestRate {
    /// Buckets refilled at `per_sec` requests a second per network (0: no limit).
    pub fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            buckets: Arc::new(Mutex::new(Buckets {
                by_key: HashMap::new(),
                sweep_at: SWEEP_FROM,
            })),
        }
    }

    /// Takes one request from `peer`'s network and its /48, or says how long until both have
    /// one (nothing is taken then).
    pub fn take(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_sec == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_sec);
        let network = network_of(peer);
        let keys = std::iter::once((network, rate))
            .chain(block_of(network).map(|block| (block, rate * BLOCK_SHARES as f64)));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        let mut refilled = Vec::with_capacity(2);
        for (key, rate) in keys {
            let bucket = buckets
                .by_key
                .get(&key)
                .copied()
                .unwrap_or_else(|| Bucket::full(rate, now));
            let tokens = bucket.refilled(now);
            if tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - tokens) / rate));
            }
            let left = tokens - 1.0;
            refilled.push((
                key,
                Bucket {
                    tokens: left,
                    at: now,
                    rate,
                },
            ));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        buckets.by_key.extend(refilled);
        if buckets.by_key.len() >= buckets.sweep_at {
            buckets
                .by_key
                .retain(|_, b| b.refilled(now) < b.rate * BURST_SECS);
            buckets.sweep_at = (buckets.by_key.len() * 2).max(SWEEP_FROM);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_sends_a_burst_then_its_rate() {
        let rate = RequestRate::new(10);
        let start = Instant::now();
        for _ in 0..20 {
            assert!(rate.take(ip("192.0.2.1"), start).is_ok());
        }
        let wait = rate.take(ip("192.0.2.1"), start).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(
            rate.take(ip("192.0.2.2"), start).is_ok(),
            "another network has its own"
        );
        let later = start + Duration::from_millis(100);
        assert!(
            rate.take(ip("192.0.2.1"), later).is_ok(),
            "one more after a tenth of a second"
        );
        assert!(rate.take(ip("192.0.2.1"), later).is_err());
    }

    #[test]
    fn a_48_sends_twice_a_networks_share_however_many_64s_it_uses() {
        let rate = RequestRate::new(10);
        let now = Instant::now();
        let mut sent = 0;
        for n in 0..100u16 {
            let addr = ip(&format!("2001:db8:0:{n:x}::1"));
            while rate.take(addr, now).is_ok() {
                sent += 1;
            }
        }
        assert_eq!(sent, 40, "the /48's burst: twice a network's");
        assert!(rate.take(ip("2001:db8:1::1"), now).is_ok(), "another /48");
    }

    #[test]
    fn no_limit_when_the_rate_is_zero() {
        let rate = RequestRate::new(0);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert!(rate.take(ip("192.0.2.1"), now).is_ok());
        }
    }

    #[test]
    fn quiet_networks_are_forgotten_so_the_buckets_stay_bounded() {
        let rate = RequestRate::new(10);
        let start = Instant::now();
        for n in 0..(SWEEP_FROM as u32 * 3) {
            let addr = IpAddr::from(n.to_be_bytes());
            rate.take(addr, start + Duration::from_secs(u64::from(n)))
                .unwrap();
        }
        let kept = rate.buckets.lock().unwrap().by_key.len();
        assert!(kept <= SWEEP_FROM * 2, "{kept} buckets kept");
    }
}
