//! Graceful shutdown under load, with the real binaries and the real broker: `SIGTERM` to the
//! logger while clients POST as fast as they can loses no event that got a `200`; `SIGTERM` to
//! the processor mid-stream leaves every message either printed, marked and acked once, or
//! back in the queue unprinted. Skipped without RabbitMQ unless `CI=true`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::app::spawn_app_with;
use crate::common::broker::broker;
use crate::common::event::new_event;
use crate::common::http::client;
use crate::common::process::Service;
use crate::common::services::{Logger, notified, processor_consuming};
use crate::common::wait::wait_until;

/// POSTs events until `stop`, returning the ids of those answered `200`.
fn hammer(base: String, stop: Arc<AtomicBool>, id: usize) -> Vec<String> {
    let agent = client();
    let mut accepted = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let body = new_event(&format!("c{id}"), &format!("load {n}"));
        match agent.post(&format!("{base}/events")).send_json(&body) {
            Ok(mut response) if response.status() == 200 => {
                let event: serde_json::Value = response.body_mut().read_json().expect("event JSON");
                accepted.push(event["event_id"].as_str().expect("id").to_owned());
            }
            Ok(_) => {}
            // Refused or reset: the logger is going away; keep trying until told to stop.
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    accepted
}

#[test]
fn logger_sigterm_under_load_loses_no_accepted_event() {
    let Some(broker) = broker("logger_sigterm_under_load_loses_no_accepted_event") else {
        return;
    };
    let topology = broker.topology("shutdown-logger");
    let mut logger = Logger::start(
        &topology,
        &broker.url(),
        &[
            ("SHUTDOWN_TIMEOUT_SECS", "10"),
            ("LOG_LEVEL", "info"),
            ("HTTP_THREADS", "4"),
        ],
    );
    logger.await_connected(Duration::from_secs(20));
    let base = logger.client.url("");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::spawn(move || hammer(base, stop, i))
        })
        .collect();
    // Load for a while (not a readiness wait): SIGTERM must land mid-stream.
    std::thread::sleep(Duration::from_millis(1500));
    let status = logger.service.terminate(Duration::from_secs(30));
    stop.store(true, Ordering::Release);
    let accepted: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    let stderr = logger.service.stderr.text();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("every accepted event was confirmed by RabbitMQ"),
        "{stderr}"
    );

    let queued = topology.take_ids(&topology.queue);
    let in_queue: HashSet<&str> = queued.iter().map(String::as_str).collect();
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|id| !in_queue.contains(id.as_str()))
        .collect();
    println!(
        "logger SIGTERM under load: {} events answered 200, {} messages in the queue ({} distinct), {} lost",
        accepted.len(),
        queued.len(),
        in_queue.len(),
        lost.len()
    );
    assert!(accepted.len() > 100, "too little load: {}", accepted.len());
    assert!(
        lost.is_empty(),
        "{} accepted events lost: {lost:?}",
        lost.len()
    );
}

#[test]
fn processor_sigterm_mid_stream_acks_every_message_once() {
    let Some(broker) = broker("processor_sigterm_mid_stream_acks_every_message_once") else {
        return;
    };
    let topology = broker.topology("shutdown-processor");
    let count = || topology.ready(&topology.queue);
    let total = 2000;
    let app = spawn_app_with(|s| s.amqp = Some(topology.settings(&broker.url())));
    for i in 0..total {
        app.create(&format!("u{}", i % 7), &format!("event {i}"));
    }
    assert!(
        wait_until(Duration::from_secs(30), || count() == total),
        "the logger published {} of {total}",
        count()
    );

    let mut env = topology.env(&broker.url());
    env.extend([
        ("SHUTDOWN_TIMEOUT_SECS", "10".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
        ("API_URL", format!("http://{}", app.addr)),
        ("PREFETCH", "16".to_owned()),
        ("PROCESSOR_THREADS", "2".to_owned()),
    ]);
    let run = |stop_after: Option<usize>| -> Vec<String> {
        let mut processor = processor_consuming(&topology, &env);
        let enough = |p: &Service| match stop_after {
            Some(n) => p.stdout.text().lines().count() >= n,
            None => {
                app.get("/events?status=Processed&limit=0")
                    .header("X-Total-Count")
                    == Some(&total.to_string())
            }
        };
        assert!(
            wait_until(Duration::from_secs(60), || enough(&processor)),
            "processor too slow; stderr:\n{}",
            processor.stderr.text()
        );
        let status = processor.terminate(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "{}", processor.stderr.text());
        notified(&processor.stdout.text())
    };

    let first = run(Some(300));
    let distinct: HashSet<&String> = first.iter().collect();
    assert_eq!(distinct.len(), first.len(), "a message was printed twice");
    assert!(
        first.len() < total as usize,
        "SIGTERM came too late to test anything"
    );
    // Unacked prefetched messages return to the queue when the processor's channel closes.
    let back = total as usize - first.len();
    assert!(
        wait_until(Duration::from_secs(10), || count() as usize == back),
        "{} printed but {} in the queue, expected {back}",
        first.len(),
        count()
    );
    assert_eq!(topology.ready(&topology.dead_queue()), 0);
    for id in &first {
        let event = app.get(&format!("/events/{id}")).json();
        assert_eq!(event["status"], "Processed", "printed but not marked: {id}");
    }
    let processed = app.get("/events?status=Processed&limit=0");
    assert_eq!(
        processed.header("X-Total-Count"),
        Some(first.len().to_string().as_str()),
        "marked but not printed"
    );

    // A second processor finishes the rest: each event printed exactly once over both runs.
    let second = run(None);
    let all: Vec<&String> = first.iter().chain(&second).collect();
    let distinct: HashSet<&&String> = all.iter().collect();
    println!(
        "processor SIGTERM mid-stream: {} printed and acked before it, {} left in the queue, {} printed by the next run, {} duplicates",
        first.len(),
        back,
        second.len(),
        all.len() - distinct.len()
    );
    assert_eq!(
        all.len(),
        total as usize,
        "printed {} of {total}",
        all.len()
    );
    assert_eq!(
        distinct.len(),
        total as usize,
        "a message was printed twice"
    );
    assert!(wait_until(Duration::from_secs(10), || count() == 0));
    assert_eq!(topology.ready(&topology.dead_queue()), 0);
}
