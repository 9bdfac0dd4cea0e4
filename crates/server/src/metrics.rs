//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4): counters and
//! latency histograms kept in memory since the server started.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
    histograms: Mutex<BTreeMap<(String, String), Histogram>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

const HELP: &[(&str, &str)] = &[
    (
        "citybooks_http_requests_total",
        "HTTP requests answered, by route and status code.",
    ),
    (
        "citybooks_http_request_duration_seconds",
        "HTTP request latency, by route.",
    ),
    (
        "citybooks_http_warms_total",
        "Times the dashboard's default views were computed ahead of visitors after a load.",
    ),
    (
        "citybooks_http_warm_duration_seconds",
        "How long computing the dashboard's default views after a load took.",
    ),
    (
        "citybooks_sql_statements_total",
        "Statements received over the PostgreSQL protocol.",
    ),
    (
        "citybooks_sql_errors_total",
        "PostgreSQL-protocol statements that failed, were refused, cancelled or timed out.",
    ),
    (
        "citybooks_sql_login_failures_total",
        "Failed PostgreSQL-protocol logins.",
    ),
    (
        "citybooks_loads_total",
        "Loads run by this server, by status.",
    ),
    (
        "citybooks_uploads_total",
        "Files uploaded through the SFTP drop-box.",
    ),
];

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(&self, name: &str, label_pairs: &[(&str, &str)]) {
        *self
            .counters
            .lock()
            .expect("metrics")
            .entry((name.to_string(), labels(label_pairs)))
            .or_default() += 1;
    }

    /// Records one observation of a latency, in seconds.
    pub fn observe(&self, name: &str, label_pairs: &[(&str, &str)], seconds: f64) {
        let mut histograms = self.histograms.lock().expect("metrics");
        let h = histograms
            .entry((name.to_string(), labels(label_pairs)))
            .or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut described = std::collections::BTreeSet::new();
        let mut describe = |out: &mut String, name: &str, kind: &str| {
            if described.insert(name.to_string()) {
                let help = HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| h);
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            }
        };
        for ((name, labels), value) in self.counters.lock().expect("metrics").iter() {
            describe(&mut out, name, "counter");
            let braces = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            };
            let _ = writeln!(out, "{name}{braces} {value}");
        }
        for ((name, labels), h) in self.histograms.lock().expect("metrics").iter() {
            describe(&mut out, name, "histogram");
            let sep = if labels.is_empty() { "" } else { "," };
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
            let braces = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            };
            let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
            let _ = writeln!(out, "{name}_count{braces} {}", h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::default();
        m.inc("citybooks_loads_total", &[("status", "loaded")]);
        m.inc("citybooks_loads_total", &[("status", "loaded")]);
        m.observe(
            "citybooks_http_request_duration_seconds",
            &[("route", "/api/sql")],
            0.003,
        );
        m.observe(
            "citybooks_http_request_duration_seconds",
            &[("route", "/api/sql")],
            0.2,
        );
        let text = m.render();
        assert!(
            text.contains("citybooks_loads_total{status=\"loaded\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE citybooks_http_request_duration_seconds histogram"));
        assert!(text.contains(
            "citybooks_http_request_duration_seconds_bucket{route=\"/api/sql\",le=\"0.0025\"} 0\n"
        ));
        assert!(text.contains(
            "citybooks_http_request_duration_seconds_bucket{route=\"/api/sql\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "citybooks_http_request_duration_seconds_bucket{route=\"/api/sql\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            text.contains("citybooks_http_request_duration_seconds_count{route=\"/api/sql\"} 2\n")
        );
    }
}
