//! The Event Logger's Prometheus metrics, served at `GET /metrics` (see the README's metrics
//! list). Requests are labelled by the route table's path templates, never the raw path, so a
//! scanner cannot grow the label set. Gauges of state (events stored, pending) are read when
//! `/metrics` is answered; counters move where things happen.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};

use crate::shared::metrics::{
    LATENCY_BUCKETS, counter, counter_vec, gauge, histogram, histogram_vec,
};

pub(crate) static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "event_logger_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
        &["route", "method", "status"],
    )
});
pub(crate) static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "event_logger_http_request_duration_seconds",
        "Time to answer a request (handler, without writing the answer), by route, method, status.",
        &["route", "method", "status"],
        LATENCY_BUCKETS,
    )
});
pub(crate) static EVENTS_CREATED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "event_logger_events_created_total",
        "Events stored by POST /events.",
    )
});
pub(crate) static EVENTS_STORED: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("event_logger_events_stored", "Events in the store."));
pub(crate) static OUTBOX_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "event_logger_outbox_pending",
        "Events accepted but not yet handed on (not confirmed by RabbitMQ, or not printed).",
    )
});
pub(crate) static BROKER_CONNECTED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "event_logger_broker_connected",
        "1 while connected to RabbitMQ, else 0 (always 0 in embedded mode).",
    )
});
pub(crate) static PUBLISHES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "event_logger_publishes_total",
        "Messages published to RabbitMQ, republications included.",
    )
});
pub(crate) static CONFIRMS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "event_logger_confirms_total",
        "Publisher confirms (acks) received from RabbitMQ.",
    )
});
pub(crate) static RETURNS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "event_logger_returns_total",
        "Messages RabbitMQ returned as unroutable (published again).",
    )
});
pub(crate) static RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "event_logger_broker_reconnects_total",
        "Sessions with RabbitMQ that failed (connection lost, nack, confirm timeout), each followed by reconnecting.",
    )
});
pub(crate) static COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "event_logger_store_commit_duration_seconds",
        "Time of one transaction of the durable store's writer (DATA_DIR), the disk's sync included.",
        LATENCY_BUCKETS,
    )
});
pub(crate) static COMMIT_WRITES: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "event_logger_store_commit_writes",
        "Rows one transaction of the durable store wrote (creates, updates and notified marks): the group-commit batch size.",
        BATCH_BUCKETS,
    )
});
pub(crate) static COMMIT_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "event_logger_store_commit_failures_total",
        "Transactions of the durable store that failed (disk full, read-only, I/O error); their writes were answered 503.",
    )
});

/// Buckets of the commit batch sizes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// Registers every metric above, so all show from the first scrape.
pub(crate) fn register() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&REQUEST_SECONDS);
    LazyLock::force(&COMMIT_SECONDS);
    LazyLock::force(&COMMIT_WRITES);
    for c in [
        &EVENTS_CREATED,
        &PUBLISHES,
        &CONFIRMS,
        &RETURNS,
        &RECONNECTS,
        &COMMIT_FAILURES,
    ] {
        LazyLock::force(c);
    }
    for g in [&EVENTS_STORED, &OUTBOX_PENDING, &BROKER_CONNECTED] {
        LazyLock::force(g);
    }
}

/// Counts one answered request.
pub(crate) fn request(route: &str, method: &str, status: u16, took: Duration) {
    let status = status.to_string();
    let labels = [route, method, status.as_str()];
    REQUESTS.with_label_values(&labels).inc();
    REQUEST_SECONDS
        .with_label_values(&labels)
        .observe(took.as_secs_f64());
}
