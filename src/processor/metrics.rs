//! The Notification Processor's Prometheus metrics and the listener that serves them on
//! `METRICS_PORT` (unset: no listener): `GET /metrics` answers them, anything else `404`. One
//! thread of its own, so a scrape never waits on a consumer and a consumer never on a scrape.

use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::Instant;

use prometheus::{Histogram, IntCounter};

use crate::shared::metrics::{self as shared, LATENCY_BUCKETS, counter, histogram};

pub(crate) static DELIVERIES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "notification_processor_deliveries_total",
        "Messages delivered by RabbitMQ, redeliveries included.",
    )
});
pub(crate) static ACKS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "notification_processor_acks_total",
        "Messages acknowledged: notified and marked Processed, Processed already, or left to a client's update.",
    )
});
pub(crate) static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "notification_processor_retries_total",
        "Requests to the API tried again after a failure that counts as an attempt (pauses do not).",
    )
});
pub(crate) static DEAD_LETTERS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "notification_processor_dead_letters_total",
        "Messages rejected to the dead-letter queue (not an event, or the API refused or kept failing).",
    )
});
pub(crate) static RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "notification_processor_broker_reconnects_total",
        "RabbitMQ sessions lost after they were established, each followed by reconnecting.",
    )
});
pub(crate) static API_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "notification_processor_api_request_duration_seconds",
        "Time of one request (GET or PUT /events/{id}) to the Event Logger, answered or not.",
        LATENCY_BUCKETS,
    )
});

/// Registers every metric above, so all show from the first scrape.
pub(crate) fn register() {
    for c in [&DELIVERIES, &ACKS, &RETRIES, &DEAD_LETTERS, &RECONNECTS] {
        LazyLock::force(c);
    }
    LazyLock::force(&API_SECONDS);
}

/// `f()`, its time observed in `histogram`.
pub(crate) fn timed<T>(histogram: &Histogram, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = f();
    histogram.observe(started.elapsed().as_secs_f64());
    value
}

/// The metrics listener; [`Listener::stop`] ends its thread.
pub(crate) struct Listener {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `0.0.0.0:port` (`0`: a free port, logged) and serves from its own thread.
    pub(crate) fn start(port: u16) -> std::io::Result<Listener> {
        let server = tiny_http::Server::http(("0.0.0.0", port))
            .map(Arc::new)
            .map_err(std::io::Error::other)?;
        if let Some(addr) = server.server_addr().to_ip() {
            log::info!("serving metrics on http://{addr}/metrics");
        }
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&serving))?;
        Ok(Listener {
            server,
            thread: Some(thread),
        })
    }

    pub(crate) fn stop(mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(server: &tiny_http::Server) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or_default();
        let found = request.method() == &tiny_http::Method::Get && path == "/metrics";
        let response = if found {
            let mut response = tiny_http::Response::from_data(shared::render());
            if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", shared::CONTENT_TYPE)
            {
                response = response.with_header(header);
            }
            response
        } else {
            tiny_http::Response::from_data(b"Not Found\n".to_vec()).with_status_code(404)
        };
        if let Err(e) = request.respond(response) {
            log::debug!("metrics: could not answer a scrape: {e}");
        }
    }
}
