//! Both binaries against the real RabbitMQ: end to end, broker outages on either side (through a
//! TCP proxy that cuts connections), the broker down at start, a full outbox, a processor killed
//! mid-stream, the API down, a poison message, and competing processors.
//!
//! Each test has its own exchange and queues (deleted at the end), so the tests run in parallel
//! and leave nothing behind. Without a reachable broker they print why and pass, except under
//! `CI=true` or `REQUIRE_BROKER=1`, where they fail (see `tests/common/broker.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use event_notification::shared::amqp::QueueType;
use serde_json::{Value, json};

use crate::common::broker::broker;
use crate::common::event::new_event;
use crate::common::proxy::{Mode, Proxy};
use crate::common::services::{Logger, notified, start_processor, stop_processor};
use crate::common::wait::wait_until;

/// Asserts that the store holds exactly `accepted` (each once) and all are `Processed`.
fn assert_store_is_exactly(logger: &Logger, accepted: &[String]) {
    let events = logger.events();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event is stored twice");
    let wanted: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    assert_eq!(unique, wanted, "the store differs from the accepted events");
    for event in &events {
        assert_eq!(event["status"], "Processed", "{event}");
    }
}

/// Posts from `clients` threads until `stop` is set; returns the ids that got a `200`. Other
/// answers must be `503` (outbox full) and nothing else.
fn post_until(logger: &Logger, clients: usize, stop: &AtomicBool) -> Vec<String> {
    post_until_timed(logger, clients, stop)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// [`post_until`], with the moment each `200` arrived.
fn post_until_timed(logger: &Logger, clients: usize, stop: &AtomicBool) -> Vec<(String, Instant)> {
    let accepted = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for c in 0..clients {
            let accepted = &accepted;
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Acquire) {
                    match logger.post(&format!("client-{c}"), &format!("event {i}")) {
                        Ok(id) => accepted.lock().unwrap().push((id, Instant::now())),
                        Err(r) => assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body)),
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
    });
    accepted.into_inner().unwrap()
}

/// Runs `post_until` while `during` runs on this thread; returns the accepted ids.
fn while_posting(logger: &Logger, during: impl FnOnce()) -> Vec<String> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let clients = scope.spawn(|| post_until(logger, 4, &stop));
        during();
        stop.store(true, Ordering::Release);
        clients.join().expect("clients")
    })
}

#[test]
fn end_to_end_every_event_is_notified_once_and_processed() {
    end_to_end(QueueType::Classic);
}

#[test]
fn end_to_end_with_quorum_queues() {
    end_to_end(QueueType::Quorum);
}

fn end_to_end(queue_type: QueueType) {
    let Some(broker) = broker(&format!("end_to_end_{}", queue_type.as_str())) else {
        return;
    };
    let topology = broker.topology_of("e2e", queue_type);
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);

    let started = Instant::now();
    let mut expected = HashMap::new();
    let ids: Vec<(String, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let logger = &logger;
                scope.spawn(move || {
                    (0..250)
                        .map(|i| {
                            let description = format!("order {t}-{i} shipped");
                            let id = logger
                                .post(&format!("user-{t}"), &description)
                                .expect("200");
                            (
                                id,
                                format!("Event {{}} has been sent to user-{t}: {description}"),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client"))
            .collect()
    });
    for (id, line) in &ids {
        expected.insert(id.clone(), line.replace("{}", id));
    }
    logger.await_processed(1000, Duration::from_secs(60));
    let elapsed = started.elapsed();
    eprintln!(
        "end to end: 1000 events created and Processed in {elapsed:?} ({:.0} events/s)",
        1000.0 / elapsed.as_secs_f64()
    );

    let processor = stop_processor(processor);
    let health = logger.health();
    assert_eq!(health["broker"], "connected");
    assert_eq!(health["pending"], 0);
    let accepted: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
    assert_store_is_exactly(&logger, &accepted);
    logger.stop();

    let log = processor.stderr.text();
    assert!(
        !log.contains("[ERROR]"),
        "a clean run logs no error:\n{log}"
    );
    let out = processor.stdout.text();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    let mut wanted: Vec<&str> = expected.values().map(String::as_str).collect();
    wanted.sort_unstable();
    assert_eq!(lines, wanted, "one exact line per event");
    assert_eq!(topology.ready(&topology.queue), 0);
    assert_eq!(topology.ready(&topology.dead_queue()), 0);
    let other = match queue_type {
        QueueType::Classic => QueueType::Quorum,
        QueueType::Quorum => QueueType::Classic,
    };
    assert!(topology.declares_as(queue_type));
    assert!(
        !topology.declares_as(other),
        "the queues are not {}",
        queue_type.as_str()
    );
}

/// Cuts the proxy for `outage` after `before`, then restores it and lets `before` pass again:
/// the sleeps stage the outage in time (traffic before, during and after it); they wait for no
/// readiness.
fn outage(proxy: &Proxy, before: Duration, outage: Duration) {
    std::thread::sleep(before);
    proxy.set(Mode::Close);
    std::thread::sleep(outage);
    proxy.set(Mode::Pass);
    std::thread::sleep(before);
}

#[test]
fn the_logger_loses_nothing_when_its_broker_connection_is_cut() {
    logger_outage(QueueType::Classic);
}

#[test]
fn the_logger_loses_nothing_when_its_broker_connection_is_cut_quorum() {
    logger_outage(QueueType::Quorum);
}

fn logger_outage(queue_type: QueueType) {
    let Some(broker) = broker(&format!("logger_outage_{}", queue_type.as_str())) else {
        return;
    };
    let topology = broker.topology_of("logger-outage", queue_type);
    let proxy = Proxy::start(broker.addr(), Mode::Pass);
    let logger = Logger::start(&topology, &broker.url_via(proxy.addr), &[]);
    logger.await_connected(Duration::from_secs(30));
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);

    let mut seen_disconnected = false;
    // The sleeps stage the outage (posting before, during and after it), as in `outage`.
    let accepted = while_posting(&logger, || {
        std::thread::sleep(Duration::from_secs(1));
        proxy.set(Mode::Close);
        seen_disconnected = wait_until(Duration::from_secs(3), || {
            logger.health()["broker"] == "disconnected"
        });
        std::thread::sleep(Duration::from_secs(1));
        proxy.set(Mode::Pass);
        std::thread::sleep(Duration::from_secs(1));
    });
    assert!(seen_disconnected, "/health never said disconnected");
    assert!(accepted.len() > 100, "only {} accepted", accepted.len());
    logger.await_processed(accepted.len(), Duration::from_secs(60));
    assert_store_is_exactly(&logger, &accepted);
    assert_eq!(logger.health()["broker"], "connected");
    let processor = stop_processor(processor);
    let log = logger.stop().stderr.text();
    assert!(log.contains("RabbitMQ unavailable"), "{log}");
    // Every accepted event was notified (some twice: republished after the cut, at least once).
    let notified: HashSet<String> = notified(&processor.stdout.text()).into_iter().collect();
    assert_eq!(notified, accepted.into_iter().collect());
}

#[test]
fn the_processor_loses_nothing_when_its_broker_connection_is_cut() {
    processor_outage(QueueType::Classic);
}

#[test]
fn the_processor_loses_nothing_when_its_broker_connection_is_cut_quorum() {
    processor_outage(QueueType::Quorum);
}

fn processor_outage(queue_type: QueueType) {
    let Some(broker) = broker(&format!("processor_outage_{}", queue_type.as_str())) else {
        return;
    };
    let topology = broker.topology_of("processor-outage", queue_type);
    let proxy = Proxy::start(broker.addr(), Mode::Pass);
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let processor = start_processor(&topology, &broker.url_via(proxy.addr), logger.addr(), &[]);

    let accepted = while_posting(&logger, || {
        outage(&proxy, Duration::from_secs(1), Duration::from_secs(3))
    });
    logger.await_processed(accepted.len(), Duration::from_secs(60));
    assert_store_is_exactly(&logger, &accepted);
    let processor = stop_processor(processor);
    let log = processor.stderr.text();
    assert!(log.contains("lost the RabbitMQ connection"), "{log}");
    let notified: HashSet<String> = notified(&processor.stdout.text()).into_iter().collect();
    assert_eq!(notified, accepted.into_iter().collect());
    logger.stop();
}

#[test]
fn with_the_broker_down_at_start_events_wait_and_then_go_out() {
    let Some(broker) = broker("broker_down_at_start") else {
        return;
    };
    let topology = broker.topology("down-at-start");
    let proxy = Proxy::start(broker.addr(), Mode::Close);
    let logger = Logger::start(&topology, &broker.url_via(proxy.addr), &[]);
    let accepted: Vec<String> = (0..20)
        .map(|i| logger.post("u", &format!("while down {i}")).expect("200"))
        .collect();
    let health = logger.health();
    assert_eq!(health["broker"], "disconnected", "{health}");
    assert_eq!(health["pending"], 20, "{health}");
    assert_eq!(health["events"], 20, "{health}");

    proxy.set(Mode::Pass);
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);
    logger.await_processed(20, Duration::from_secs(30));
    assert_store_is_exactly(&logger, &accepted);
    // The confirm of a persistent message may come after the message was delivered (and
    // processed): RabbitMQ confirms once it is on disk.
    assert!(wait_until(Duration::from_secs(10), || {
        logger.health()["pending"] == 0
    }));
    let health = logger.health();
    assert_eq!(
        (&health["broker"], &health["pending"]),
        (&json!("connected"), &json!(0))
    );
    let processor = stop_processor(processor);
    assert_eq!(notified(&processor.stdout.text()).len(), 20);
    logger.stop();
}

#[test]
fn a_full_outbox_answers_503_and_stores_nothing_then_drains() {
    let Some(broker) = broker("outbox_full") else {
        return;
    };
    let topology = broker.topology("outbox-full");
    let proxy = Proxy::start(broker.addr(), Mode::Close);
    let logger = Logger::start(
        &topology,
        &broker.url_via(proxy.addr),
        &[("OUTBOX_CAPACITY", "5")],
    );
    let accepted: Vec<String> = (0..5)
        .map(|i| logger.post("u", &format!("fits {i}")).expect("200"))
        .collect();
    for i in 0..3 {
        let r = logger.post("u", &format!("rejected {i}")).expect_err("503");
        assert_eq!(r.status, 503);
        assert_eq!(r.header("Retry-After"), Some("1"));
        assert_eq!(
            r.json(),
            json!({"detail": "notification queue is full, retry later"})
        );
    }
    let events = logger.events();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| {
        e["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("fits"))
    }));
    assert_eq!(logger.health()["pending"], 5);

    // Once the broker is back, the five go out and there is room again.
    proxy.set(Mode::Pass);
    assert!(wait_until(
        Duration::from_secs(15),
        || logger.health()["pending"] == 0
    ));
    assert_eq!(topology.ready(&topology.queue), 5);
    let queued = topology.take_ids(&topology.queue);
    assert_eq!(queued, accepted, "published once each, in order");
    assert!(logger.post("u", "room again").is_ok());
    logger.stop();
}

#[test]
fn a_processor_killed_mid_stream_and_restarted_leaves_nothing_behind() {
    let Some(broker) = broker("processor_killed") else {
        return;
    };
    let topology = broker.topology("killed");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let accepted: Vec<String> = (0..300)
        .map(|i| logger.post("u", &format!("event {i}")).expect("200"))
        .collect();
    // Slow enough that the kill lands mid-stream: one message at a time, on one thread.
    let slow = [("PREFETCH", "1"), ("PROCESSOR_THREADS", "1")];
    let first = start_processor(&topology, &broker.url(), logger.addr(), &slow);
    assert!(wait_until(Duration::from_secs(30), || logger.processed() >= 30));
    first.signal("KILL");
    drop(first);
    // The broker has seen it die (its unacked messages are ready again) before the next one.
    topology.await_consumers(0, Duration::from_secs(10));
    let done_before = logger.processed();
    assert!(done_before < 300, "the kill came too late to test anything");

    let second = start_processor(&topology, &broker.url(), logger.addr(), &[]);
    logger.await_processed(300, Duration::from_secs(60));
    assert_store_is_exactly(&logger, &accepted);
    stop_processor(second);
    logger.stop();
    assert_eq!(topology.ready(&topology.queue), 0);
}

#[test]
fn with_the_api_down_messages_wait_unacked_and_are_processed_once_it_is_back() {
    let Some(broker) = broker("api_down") else {
        return;
    };
    let topology = broker.topology("api-down");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let api = Proxy::start(logger.addr(), Mode::Close);
    // One attempt: an unreachable API must spend none.
    let processor = start_processor(
        &topology,
        &broker.url(),
        api.addr,
        &[("MAX_ATTEMPTS", "1"), ("PROCESSOR_THREADS", "2")],
    );
    let accepted: Vec<String> = (0..10)
        .map(|i| logger.post("u", &format!("event {i}")).expect("200"))
        .collect();
    // Each consumer thread holds the message whose event it cannot read: nothing printed,
    // nothing acked, nothing marked, and the rest wait (unacked, unprinted) behind them.
    processor.wait_for_stderr("unavailable", Duration::from_secs(10));
    // Not a readiness wait: a window in which nothing more may happen (an absence cannot be
    // polled for).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(processor.stdout.text(), "");
    assert_eq!(logger.processed(), 0);
    assert_eq!(topology.ready(&topology.dead_queue()), 0);

    api.set(Mode::Pass);
    logger.await_processed(10, Duration::from_secs(30));
    assert_store_is_exactly(&logger, &accepted);
    let processor = stop_processor(processor);
    let mut printed = notified(&processor.stdout.text());
    printed.sort();
    let mut wanted = accepted.clone();
    wanted.sort();
    assert_eq!(printed, wanted, "printed exactly once each");
    assert!(processor.stderr.text().contains("answers again"));
    assert_eq!(topology.ready(&topology.dead_queue()), 0);
    logger.stop();
}

#[test]
fn poison_and_undeliverable_messages_are_dead_lettered_and_the_processor_goes_on() {
    let Some(broker) = broker("dead_letters") else {
        return;
    };
    let topology = broker.topology("dead-letters");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);

    // Not JSON at all, and an Event the logger does not know (404): dead-lettered at once.
    topology.publish_raw(b"this is not an event");
    let mut unknown = new_event("u", "d");
    unknown.as_object_mut().expect("an object").extend([
        (
            "event_id".into(),
            json!("0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f"),
        ),
        ("status".into(), json!("NotProcessed")),
        ("created_at".into(), json!("2026-11-28T14:00:00.123456Z")),
        ("updated_at".into(), json!("2026-11-28T14:00:00.123456Z")),
    ]);
    topology.publish_raw(unknown.to_string().as_bytes());
    assert!(wait_until(Duration::from_secs(10), || {
        topology.ready(&topology.dead_queue()) == 2
    }));

    // And the processor goes on. (An API that answers 500 spends attempts; one unreachable
    // does not: see tests/system/processor.rs.)
    let fine = logger.post("u", "after all that").expect("200");
    logger.await_processed(1, Duration::from_secs(15));
    assert_store_is_exactly(&logger, &[fine]);

    // Four consumer threads: the two may be dead-lettered in either order.
    let dead = topology.take_all(&topology.dead_queue());
    assert_eq!(dead.len(), 2);
    assert!(dead.contains(&b"this is not an event".to_vec()));
    assert!(dead.contains(&unknown.to_string().into_bytes()));
    let log = stop_processor(processor).stderr.text();
    assert!(log.contains("dead-lettering"), "{log}");
    logger.stop();
}

#[test]
fn two_processors_share_the_queue_each_event_handled_by_one() {
    let Some(broker) = broker("two_processors") else {
        return;
    };
    let topology = broker.topology("two");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let one_at_a_time = [("PREFETCH", "1"), ("PROCESSOR_THREADS", "1")];
    let a = start_processor(&topology, &broker.url(), logger.addr(), &one_at_a_time);
    let b = start_processor(&topology, &broker.url(), logger.addr(), &one_at_a_time);
    // Both consumers are attached before the work arrives (each start waited for its own).
    assert_eq!(topology.consumers(), 2);
    let accepted: Vec<String> = (0..200)
        .map(|i| logger.post("u", &format!("event {i}")).expect("200"))
        .collect();
    logger.await_processed(200, Duration::from_secs(60));
    assert_store_is_exactly(&logger, &accepted);
    let (a, b) = (stop_processor(a), stop_processor(b));
    let by_a = notified(&a.stdout.text());
    let by_b = notified(&b.stdout.text());
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "{} / {}",
        by_a.len(),
        by_b.len()
    );
    let mut all: Vec<String> = by_a.into_iter().chain(by_b).collect();
    all.sort();
    let mut wanted = accepted;
    wanted.sort();
    assert_eq!(all, wanted, "each event notified by exactly one processor");
    logger.stop();
}

#[test]
fn a_processor_stuck_in_an_api_request_gives_up_after_the_shutdown_timeout() {
    let Some(broker) = broker("processor_stuck") else {
        return;
    };
    let topology = broker.topology("stuck");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    // Connections complete in the kernel's backlog, but nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    silent.set_nonblocking(true).expect("non-blocking");
    let api = silent.local_addr().expect("address");
    let mut processor = start_processor(
        &topology,
        &broker.url(),
        api,
        &[("SHUTDOWN_TIMEOUT_SECS", "1")],
    );
    logger.post("u", "stuck").expect("200");
    // The processor's request for the event is on its way: it connected.
    let mut connection = None;
    assert!(wait_until(Duration::from_secs(10), || {
        connection = silent.accept().ok();
        connection.is_some()
    }));
    let status = processor.terminate(Duration::from_secs(15));
    let log = processor.stderr.text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("SHUTDOWN_TIMEOUT_SECS"), "{log}");
    // Not acked, so not lost: the broker has it ready for the next processor.
    assert!(wait_until(Duration::from_secs(10), || {
        topology.ready(&topology.queue) == 1
    }));
    logger.stop();
}

#[test]
fn broker_queue_deleted_under_load_with_a_processor_loses_nothing_accepted_after() {
    let Some(broker) = broker("queue_deleted_processor") else {
        return;
    };
    let topology = broker.topology("deleted-with-processor");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    logger.await_connected(Duration::from_secs(30));
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);

    // The sleeps stage the deletion in the middle of the load, as in `outage`.
    let stop = AtomicBool::new(false);
    let (accepted, deleted_at) = std::thread::scope(|scope| {
        let clients = scope.spawn(|| post_until_timed(&logger, 4, &stop));
        std::thread::sleep(Duration::from_secs(1));
        topology.delete_queue();
        let deleted = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Release);
        (clients.join().expect("clients"), deleted)
    });
    assert!(accepted.len() > 100, "only {} accepted", accepted.len());
    // Deleting a queue deletes the messages in it: those routed to it (and confirmed) just before
    // the deletion and not yet delivered may be gone. Every event accepted once the deletion is
    // done reaches the processor, and so does nearly everything before it.
    let after: HashSet<String> = accepted
        .iter()
        .filter(|(_, at)| *at > deleted_at)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        after.len() > 100,
        "only {} accepted after the deletion",
        after.len()
    );
    let accepted: Vec<String> = accepted.into_iter().map(|(id, _)| id).collect();
    let after_processed = || {
        let events = logger.events();
        events.iter().all(|e| {
            !after.contains(e["event_id"].as_str().unwrap_or("")) || e["status"] == "Processed"
        })
    };
    assert!(
        wait_until(Duration::from_secs(60), after_processed),
        "events accepted after the deletion not Processed within 60 s"
    );
    // Let stragglers from before the deletion finish (not a readiness wait: those deleted with
    // the queue never come).
    std::thread::sleep(Duration::from_secs(1));
    let health = logger.health();
    assert_eq!(health["pending"], 0, "{health}");
    assert!(
        health["returns"].as_u64().is_some_and(|n| n > 0),
        "{health}"
    );
    let processor = stop_processor(processor);
    let notified: HashSet<String> = notified(&processor.stdout.text()).into_iter().collect();
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|id| !notified.contains(*id))
        .collect();
    assert!(
        missing.iter().all(|id| !after.contains(*id)),
        "accepted after the deletion and never notified: {missing:?}"
    );
    eprintln!(
        "queue deleted under load: {} of {} events accepted before the deletion was done went with the queue",
        missing.len(),
        accepted.len() - after.len()
    );
    let log = logger.stop().stderr.text();
    assert!(
        log.contains("returned") && log.contains("unroutable"),
        "{log}"
    );
}

#[test]
fn broker_queue_deleted_without_a_processor_keeps_later_events_until_one_comes() {
    let Some(broker) = broker("queue_deleted_alone") else {
        return;
    };
    let topology = broker.topology("deleted-alone");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    logger.await_connected(Duration::from_secs(30));
    let before: Vec<String> = (0..10)
        .map(|i| logger.post("u", &format!("before {i}")).expect("200"))
        .collect();
    assert!(wait_until(Duration::from_secs(10), || {
        logger.health()["pending"] == 0
    }));
    assert_eq!(topology.ready(&topology.queue), 10);
    // The operator deletes the queue, and the ten in it with it; what is accepted from now on
    // must not be lost.
    topology.delete_queue();
    let after = while_posting(&logger, || std::thread::sleep(Duration::from_secs(2)));
    assert!(after.len() > 50, "only {} accepted", after.len());
    assert!(wait_until(Duration::from_secs(15), || {
        logger.health()["pending"] == 0
    }));
    let health = logger.health();
    assert_eq!(health["broker"], "connected", "{health}");
    assert!(
        health["returns"].as_u64().is_some_and(|n| n > 0),
        "{health}"
    );
    // Re-declared by the logger, holding every later event.
    assert_eq!(topology.ready(&topology.queue) as usize, after.len());

    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);
    logger.await_processed(after.len(), Duration::from_secs(60));
    let processor = stop_processor(processor);
    let mut notified = notified(&processor.stdout.text());
    notified.sort();
    let mut wanted = after.clone();
    wanted.sort();
    assert_eq!(
        notified, wanted,
        "every event accepted after the deletion, once"
    );
    assert!(before.iter().all(|id| !notified.contains(id)));
    logger.stop();
}

#[test]
fn broker_a_non_default_routing_key_is_used_for_publishing_and_binding() {
    let Some(broker) = broker("routing_key") else {
        return;
    };
    let topology = broker.topology_with_key("routing-key", "orders.shipped");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    logger.await_connected(Duration::from_secs(30));
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);
    let accepted: Vec<String> = (0..50)
        .map(|i| logger.post("u", &format!("event {i}")).expect("200"))
        .collect();
    logger.await_processed(50, Duration::from_secs(30));
    assert_store_is_exactly(&logger, &accepted);
    let health = logger.health();
    assert_eq!(health["returns"], 0, "routed by the custom key: {health}");
    let processor = stop_processor(processor);
    assert_eq!(notified(&processor.stdout.text()).len(), 50);
    logger.stop();
}

/// Lines of `log` at `level` (`"WARN"`, `"ERROR"`) containing `text`.
fn lines_with(log: &str, level: &str, text: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("[{level}]")) && l.contains(text))
        .count()
}

#[test]
fn broker_unreachable_at_start_is_one_warning_with_the_reason() {
    let Some(broker) = broker("unreachable_log") else {
        return;
    };
    let topology = broker.topology("unreachable-log");
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let logger = Logger::start(&topology, &url, &[]);
    assert!(wait_until(Duration::from_secs(10), || {
        lines_with(
            &logger.service.stderr.text(),
            "WARN",
            "RabbitMQ unavailable",
        ) == 1
    }));
    // Several attempts (100 ms, 200 ms, ... backoff), still one line.
    std::thread::sleep(Duration::from_secs(2));
    let log = logger.service.stderr.text();
    assert_eq!(lines_with(&log, "WARN", "RabbitMQ unavailable"), 1, "{log}");
    assert_eq!(lines_with(&log, "WARN", "failed to connect"), 1, "{log}");
    let health = logger.health();
    assert_eq!(health["broker"], "disconnected", "{health}");
    assert!(health["broker_error"].is_string(), "{health}");
    logger.stop();
}

#[test]
fn broker_bad_credentials_are_one_error_with_a_hint_on_both_sides() {
    let Some(broker) = broker("bad_credentials") else {
        return;
    };
    let topology = broker.topology("bad-credentials");
    let mut url = url::Url::parse(&broker.url()).expect("url");
    url.set_password(Some("not-the-password"))
        .expect("password");
    let logger = Logger::start(&topology, url.as_str(), &[]);
    let mut env = topology.env(url.as_str());
    env.push(("API_URL", format!("http://{}", logger.addr())));
    let processor = crate::common::process::Service::start("notification-processor", &[], &env);
    let refused = |log: &str| lines_with(log, "ERROR", "refused the login");
    assert!(wait_until(Duration::from_secs(15), || {
        refused(&logger.service.stderr.text()) == 1 && refused(&processor.stderr.text()) == 1
    }));
    std::thread::sleep(Duration::from_secs(2));
    for log in [logger.service.stderr.text(), processor.stderr.text()] {
        assert_eq!(refused(&log), 1, "{log}");
        assert_eq!(
            lines_with(&log, "ERROR", "check the user and password in AMQP_URL"),
            1
        );
        assert!(log.contains("ACCESS_REFUSED"), "{log}");
        assert!(!log.contains("not-the-password"), "{log}");
    }
    let health = logger.health();
    assert!(
        health["broker_error"]
            .as_str()
            .is_some_and(|e| e.contains("ACCESS_REFUSED")),
        "{health}"
    );
    drop(processor);
    logger.stop();
}

#[test]
fn broker_a_queue_with_other_arguments_is_one_error_naming_it_and_the_remedy() {
    let Some(broker) = broker("precondition") else {
        return;
    };
    let topology = broker.topology("precondition");
    topology.conflicting_queue();
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let mut env = topology.env(&broker.url());
    env.push(("API_URL", format!("http://{}", logger.addr())));
    let processor = crate::common::process::Service::start("notification-processor", &[], &env);
    let named = format!("queue '{}'", topology.queue);
    let refused = |log: &str| lines_with(log, "ERROR", &named);
    assert!(wait_until(Duration::from_secs(15), || {
        refused(&logger.service.stderr.text()) == 1 && refused(&processor.stderr.text()) == 1
    }));
    std::thread::sleep(Duration::from_secs(2));
    for log in [logger.service.stderr.text(), processor.stderr.text()] {
        assert_eq!(refused(&log), 1, "{log}");
        let line = log
            .lines()
            .find(|l| l.contains("[ERROR]") && l.contains(&named))
            .expect("the line");
        for part in [
            "x-dead-letter-exchange",
            "AMQP_QUEUE",
            "delete",
            "PRECONDITION_FAILED",
        ] {
            assert!(line.contains(part), "{part} missing: {line}");
        }
    }
    let health = logger.health();
    assert_eq!(health["broker"], "disconnected", "{health}");
    assert!(
        health["broker_error"]
            .as_str()
            .is_some_and(|e| e.contains(&named)),
        "{health}"
    );
    // The remedy works: with the old queue gone, both connect (within the backoff's cap).
    topology.delete_queue();
    logger.await_connected(Duration::from_secs(20));
    assert_eq!(logger.health()["broker_error"], Value::Null);
    topology.await_consumers(4, Duration::from_secs(20));
    drop(processor);
    logger.stop();
}

#[test]
fn broker_a_queue_of_the_other_type_is_the_406_error_naming_amqp_queue_type() {
    let Some(broker) = broker("queue_type_mismatch") else {
        return;
    };
    // Classic queues exist; both services are told to use quorum ones.
    let topology = broker.topology("queue-type");
    let quorum = [("AMQP_QUEUE_TYPE", "quorum")];
    let logger = Logger::start(&topology, &broker.url(), &quorum);
    let mut env = topology.env(&broker.url());
    env.push(("API_URL", format!("http://{}", logger.addr())));
    env.push(("AMQP_QUEUE_TYPE", "quorum".into()));
    let processor = crate::common::process::Service::start("notification-processor", &[], &env);
    let named = format!("queue '{}'", topology.queue);
    let refused = |log: &str| lines_with(log, "ERROR", &named);
    assert!(wait_until(Duration::from_secs(15), || {
        refused(&logger.service.stderr.text()) == 1 && refused(&processor.stderr.text()) == 1
    }));
    for log in [logger.service.stderr.text(), processor.stderr.text()] {
        let line = log
            .lines()
            .find(|l| l.contains("[ERROR]") && l.contains(&named))
            .expect("the line");
        for part in [
            "x-queue-type=quorum",
            "'x-queue-type'",
            "Set AMQP_QUEUE_TYPE to the existing queue's type",
        ] {
            assert!(line.contains(part), "{part} missing: {line}");
        }
    }
    let health = logger.health();
    assert!(
        health["broker_error"]
            .as_str()
            .is_some_and(|e| e.contains(&named) && e.contains("x-queue-type")),
        "{health}"
    );
    drop(processor);
    logger.stop();
    // Nothing was converted: the queues are still classic.
    assert!(topology.declares_as(QueueType::Classic));
}
