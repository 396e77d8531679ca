//! Prometheus metrics: the one registry of the process, the constructors every metric is made
//! with, and the text exposition (format 0.0.4) both services serve.
//!
//! Each service declares its metrics as `LazyLock` statics in its own `metrics` module
//! (`logger::metrics`, `processor::metrics`), made with [`counter`], [`gauge`],
//! [`histogram`] and their labelled forms, and lists them in that module's `register()`, which
//! the service calls at start so that every metric shows on the first scrape. Call sites are
//! one line: `metrics::PUBLISHES.inc()`.
//!
//! Adding a metric (for example the durable store's commit batch size and latency): a static in
//! the service's `metrics` module,
//! `pub(crate) static COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| histogram(
//! "event_logger_store_commit_seconds", "…", LATENCY_BUCKETS));`, its name in `register()`,
//! a row in the README's metrics list (a test compares the list with what `/metrics` serves),
//! and `metrics::COMMIT_SECONDS.observe(…)` where it happens.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of latency histograms, in seconds: from a fraction of a millisecond (an in-memory
/// answer) to the 10 s of the processor's API timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Adds `metric` to the registry. The names are constants of this crate, checked by the
/// services' tests; a clash is a programming error, logged rather than fatal.
fn registered<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    if let Err(e) = REGISTRY.register(Box::new(metric.clone())) {
        log::error!("metric not registered: {e}");
    }
    metric
}

/// Panics on an invalid name or labels: both are literals of this crate.
fn valid<M>(made: prometheus::Result<M>, name: &str) -> M {
    made.unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

pub fn counter(name: &str, help: &str) -> IntCounter {
    registered(valid(IntCounter::new(name, help), name))
}

pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(valid(
        IntCounterVec::new(Opts::new(name, help), labels),
        name,
    ))
}

pub fn gauge(name: &str, help: &str) -> IntGauge {
    registered(valid(IntGauge::new(name, help), name))
}

pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(valid(Histogram::with_opts(opts), name))
}

pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(valid(HistogramVec::new(opts, labels), name))
}

/// Every registered metric in the text exposition format ([`CONTENT_TYPE`]).
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&REGISTRY.gather(), &mut out) {
        log::error!("cannot render the metrics: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_rendered_in_the_text_format() {
        let c = counter("shared_test_things_total", "Things.");
        c.inc_by(3);
        let text = String::from_utf8(render()).unwrap();
        assert!(
            text.contains("# TYPE shared_test_things_total counter"),
            "{text}"
        );
        assert!(text.contains("shared_test_things_total 3"), "{text}");
    }
}
