//! Samples and what is reported of them: percentiles, rates and memory.

use std::time::Duration;

/// One measured figure: latency percentiles, a rate and the process's peak memory, each
/// where the scenario has one.
#[derive(Clone, Debug, Default)]
pub struct Measure {
    /// Median latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: Option<f64>,
    /// Work per second.
    pub rate: Option<f64>,
    /// What the rate counts (`req/s`, `emails/s`, ...).
    pub unit: &'static str,
    /// Peak resident memory of the process under test, MiB.
    pub peak_mib: Option<f64>,
    /// How many samples (requests, events, frames) the figure is made of.
    pub samples: u64,
}

impl Measure {
    /// Percentiles of `samples`, and a rate of `samples / elapsed` when `elapsed` is given.
    pub fn of(samples: &[Duration], elapsed: Option<Duration>, unit: &'static str) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Self {
            p50_ms: percentile(&ms, 50.0),
            p99_ms: percentile(&ms, 99.0),
            rate: elapsed.map(|e| samples.len() as f64 / e.as_secs_f64()),
            unit,
            peak_mib: None,
            samples: samples.len() as u64,
        }
    }

    /// A rate alone.
    pub fn rate(count: u64, elapsed: Duration, unit: &'static str) -> Self {
        Self {
            rate: Some(count as f64 / elapsed.as_secs_f64().max(1e-9)),
            unit,
            samples: count,
            ..Self::default()
        }
    }

    /// The same figure with the process's peak memory.
    pub fn with_peak(mut self, mib: Option<f64>) -> Self {
        self.peak_mib = mib;
        self
    }
}

/// Nearest-rank percentile of sorted values; `None` when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of some values (of repeated runs).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn rates_count_samples_per_second() {
        let m = Measure::of(
            &[Duration::from_millis(2); 10],
            Some(Duration::from_secs(2)),
            "req/s",
        );
        assert_eq!(m.rate, Some(5.0));
        assert_eq!(m.p50_ms, Some(2.0));
    }
}
