//! `/metrics` of both real binaries against the real RabbitMQ: read with a Prometheus
//! text-format parser (`prometheus-parse`), the families served are exactly those the README
//! lists, requests are labelled by route template (never the raw path), and the counters move
//! as events flow: created, published, confirmed, delivered, acked.

use std::collections::BTreeSet;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use crate::common::broker::broker;
use crate::common::datadir::DataDir;
use crate::common::http::{Client, TestResponse, client, send};
use crate::common::process::Service;
use crate::common::services::{Logger, start_processor};

/// The families the README's metrics list names (`event_logger_*`, `notification_processor_*`).
fn documented(prefix: &str) -> BTreeSet<String> {
    let readme = include_str!("../../README.md");
    readme
        .split('`')
        .filter(|word| word.starts_with(prefix) && !word.contains(' '))
        .map(|word| word.split('{').next().unwrap_or(word).to_owned())
        .collect()
}

fn parse(response: &TestResponse) -> Scrape {
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(response.body.clone()).expect("UTF-8");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// The value of `name` with all of `labels` (summed over the other labels); for a histogram,
/// its count.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => panic!("{name}: no summaries are served"),
        })
        .sum()
}

fn families(scrape: &Scrape) -> BTreeSet<String> {
    scrape.docs.keys().cloned().collect()
}

/// The address from the processor's "serving metrics on" line.
fn processor_metrics(processor: &Service) -> Client {
    const MARK: &str = "serving metrics on http://";
    processor.wait_for_stderr(MARK, Duration::from_secs(10));
    let text = processor.stderr.text();
    let at = text.find(MARK).expect("marked") + MARK.len();
    let addr = text[at..].split('/').next().expect("an address");
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    Client::new(([127, 0, 0, 1], port).into())
}

#[test]
fn both_services_serve_metrics_that_move_with_the_traffic() {
    let Some(broker) = broker("both_services_serve_metrics_that_move_with_the_traffic") else {
        return;
    };
    let topology = broker.topology("metrics");
    // On disk, so that the durable store's commits are counted too.
    let dir = DataDir::new("metrics");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let logger = Logger::start(&topology, &broker.url(), &[("DATA_DIR", &data_dir)]);
    logger.await_connected(Duration::from_secs(20));
    let agent = client();
    // Unknown paths and ids are counted under their route, never as themselves.
    let unknown_id = uuid::Uuid::new_v4().to_string();
    for path in ["/nowhere-at-all", &format!("/events/{unknown_id}")] {
        send(&agent, "GET", &logger.client.url(path), &[], None);
    }
    let before = parse(&logger.client.get("/metrics"));
    assert_eq!(families(&before), documented("event_logger_"));
    let text = String::from_utf8(logger.client.get("/metrics").body).expect("UTF-8");
    assert!(
        !text.contains("nowhere-at-all") && !text.contains(&unknown_id),
        "{text}"
    );
    let get_event = [
        ("route", "/events/:event_id"),
        ("method", "GET"),
        ("status", "404"),
    ];
    assert_eq!(
        value(&before, "event_logger_http_requests_total", &get_event),
        1.0
    );
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        value(&before, "event_logger_http_requests_total", &unmatched),
        1.0
    );
    assert_eq!(value(&before, "event_logger_broker_connected", &[]), 1.0);

    let processor = start_processor(
        &topology,
        &broker.url(),
        logger.addr(),
        &[("METRICS_PORT", "0")],
    );
    let scraper = processor_metrics(&processor);
    let processor_before = parse(&scraper.get("/metrics"));
    assert_eq!(
        families(&processor_before),
        documented("notification_processor_")
    );
    assert_eq!(scraper.get("/elsewhere").status, 404);

    for n in 0..3 {
        logger
            .post("u-metrics", &format!("counted {n}"))
            .expect("created");
    }
    logger.await_processed(3, Duration::from_secs(30));

    let after = parse(&logger.client.get("/metrics"));
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let created = [("route", "/events"), ("method", "POST"), ("status", "200")];
    assert_eq!(moved("event_logger_http_requests_total", &created), 3.0);
    assert_eq!(
        moved("event_logger_http_request_duration_seconds", &created),
        3.0
    );
    assert_eq!(moved("event_logger_events_created_total", &[]), 3.0);
    assert_eq!(value(&after, "event_logger_events_stored", &[]), 3.0);
    assert_eq!(value(&after, "event_logger_outbox_pending", &[]), 0.0);
    assert!(moved("event_logger_publishes_total", &[]) >= 3.0);
    assert!(moved("event_logger_confirms_total", &[]) >= 3.0);
    // Each event was marked Processed by a PUT from the processor.
    let put = [
        ("route", "/events/:event_id"),
        ("method", "PUT"),
        ("status", "200"),
    ];
    assert!(moved("event_logger_http_requests_total", &put) >= 3.0);
    // The creates were committed before the processor's updates could be: two transactions
    // at least, each timed and sized.
    let commits = moved("event_logger_store_commit_duration_seconds", &[]);
    assert!(commits >= 2.0, "{commits} commits");
    assert_eq!(moved("event_logger_store_commit_writes", &[]), commits);
    assert_eq!(moved("event_logger_store_commit_failures_total", &[]), 0.0);

    let processor_after = parse(&scraper.get("/metrics"));
    let moved =
        |name: &str| value(&processor_after, name, &[]) - value(&processor_before, name, &[]);
    assert!(moved("notification_processor_deliveries_total") >= 3.0);
    assert!(moved("notification_processor_acks_total") >= 3.0);
    assert!(moved("notification_processor_api_request_duration_seconds") >= 3.0);
    assert_eq!(moved("notification_processor_dead_letters_total"), 0.0);
}

/// A `METRICS_PORT` that cannot be listened on stops the processor at once, naming it.
#[test]
fn a_taken_metrics_port_is_one_error_naming_it_and_exit_1() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("a free port");
    let port = taken.local_addr().expect("bound").port().to_string();
    let mut processor = Service::start(
        "notification-processor",
        &[],
        &[
            ("METRICS_PORT", port.as_str()),
            ("AMQP_URL", "amqp://127.0.0.1:1/%2f"),
        ],
    );
    let status = processor.wait(Duration::from_secs(10)).expect("exits");
    let stderr = processor.stderr.text();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("METRICS_PORT={port}")), "{stderr}");
}
