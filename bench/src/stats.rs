//! Latency summaries: percentiles over a sample, nearest-rank.

use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Summary {
        let mut sorted: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        Summary {
            count: sorted.len(),
            p50_ms: rank(50.0),
            p90_ms: rank(90.0),
            p99_ms: rank(99.0),
            max_ms: sorted.last().copied().unwrap_or(0.0),
            mean_ms: mean,
        }
    }

    /// One table row: `label  count  p50  p90  p99  max`.
    pub fn row(&self, label: &str) -> String {
        format!(
            "{label:<24} {:>7} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            self.count, self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }

    pub fn header() -> String {
        format!(
            "{:<24} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let summary = Summary::of(&samples);
        assert_eq!(
            (
                summary.p50_ms,
                summary.p90_ms,
                summary.p99_ms,
                summary.max_ms
            ),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(summary.count, 100);
        assert_eq!(Summary::of(&[]).p99_ms, 0.0);
    }
}
