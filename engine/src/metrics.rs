//! Process-wide metrics in the Prometheus text format: counters and histograms keyed by a
//! metric name and a few low-cardinality labels (never a task id). Recording is a short
//! mutex-guarded map update; rendering happens only when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Upper bounds of histogram buckets, in the metric's unit.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

type Labels = Vec<(&'static str, String)>;

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    help: BTreeMap<&'static str, &'static str>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Updates are single map operations; a poisoned guard still holds a consistent map.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `by` to a counter.
    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        by: f64,
    ) {
        let mut registry = self.lock();
        registry.help.entry(name).or_insert(help);
        *registry.counters.entry((name, labels(pairs))).or_default() += by;
    }

    pub fn inc(&self, name: &'static str, help: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, help, pairs, 1.0);
    }

    /// Records one observation in a histogram with the given bucket bounds.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
        pairs: &[(&'static str, &str)],
        value: f64,
    ) {
        let mut registry = self.lock();
        registry.help.entry(name).or_insert(help);
        let histogram = registry
            .histograms
            .entry((name, labels(pairs)))
            .or_insert_with(|| Histogram {
                bounds,
                counts: vec![0; bounds.len()],
                sum: 0.0,
                count: 0,
            });
        for (i, bound) in histogram.bounds.iter().enumerate() {
            if value <= *bound {
                histogram.counts[i] += 1;
            }
        }
        histogram.sum += value;
        histogram.count += 1;
    }

    /// Everything recorded so far, plus `gauges` (name, help, value), as Prometheus text.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let registry = self.lock();
        let mut out = String::new();
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let mut last = "";
        for ((name, pairs), value) in &registry.counters {
            if *name != last {
                let help = registry.help.get(name).copied().unwrap_or("");
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {value}", format_labels(pairs, None));
        }
        for ((name, pairs), histogram) in &registry.histograms {
            if *name != last {
                let help = registry.help.get(name).copied().unwrap_or("");
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                last = name;
            }
            for (bound, count) in histogram.bounds.iter().zip(&histogram.counts) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {count}",
                    format_labels(pairs, Some(&bound.to_string()))
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                format_labels(pairs, Some("+Inf")),
                histogram.count
            );
            let _ = writeln!(
                out,
                "{name}_sum{} {}",
                format_labels(pairs, None),
                histogram.sum
            );
            let _ = writeln!(
                out,
                "{name}_count{} {}",
                format_labels(pairs, None),
                histogram.count
            );
        }
        out
    }
}

fn format_labels(pairs: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.inc("demo_total", "Demo counter.", &[("outcome", "ok")]);
        metrics.add("demo_total", "Demo counter.", &[("outcome", "ok")], 2.0);
        metrics.inc("demo_total", "Demo counter.", &[("outcome", "say \"hi\"")]);
        metrics.observe("demo_seconds", "Demo histogram.", &[0.1, 1.0], &[], 0.5);
        metrics.observe("demo_seconds", "Demo histogram.", &[0.1, 1.0], &[], 5.0);
        let text = metrics.render(&[("demo_gauge", "A gauge.", 7.0)]);
        assert!(
            text.contains("# TYPE demo_gauge gauge\ndemo_gauge 7\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE demo_total counter\n"));
        assert!(text.contains("demo_total{outcome=\"ok\"} 3\n"));
        assert!(text.contains("demo_total{outcome=\"say \\\"hi\\\"\"} 1\n"));
        assert!(text.contains("demo_seconds_bucket{le=\"0.1\"} 0\ndemo_seconds_bucket{le=\"1\"} 1\ndemo_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("demo_seconds_sum 5.5\ndemo_seconds_count 2\n"));
    }
}
