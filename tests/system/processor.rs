//! The processor against the real RabbitMQ and the real logger, as child processes: it notifies
//! what the logger stores (never what a message says), never overwrites a client's update,
//! and rides out an API that is unreachable, overloaded or refusing its token without
//! dead-lettering anything. Between processor and logger stands the test's [`Proxy`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amiquip::{AmqpProperties, Connection, Publish};
use serde_json::{Value, json};

use crate::common::broker::{Broker, Topology, broker};
use crate::common::process::Service;
use crate::common::proxy::{Mode, Proxy};
use crate::common::services::{Logger, notified, start_processor, stop_processor, tail};
use crate::common::wait::wait_until;

/// Publishes `body` to `topology`'s queue with `content_type` (none: as the FastAPI original).
fn publish(broker: &Broker, topology: &Topology, body: &[u8], content_type: Option<&str>) {
    let mut connection = Connection::insecure_open(&broker.url()).expect("RabbitMQ");
    let channel = connection.open_channel(None).expect("channel");
    let mut properties = AmqpProperties::default();
    if let Some(content_type) = content_type {
        properties = properties.with_content_type(content_type.to_owned());
    }
    channel
        .basic_publish(
            topology.exchange.as_str(),
            Publish::with_properties(body, topology.routing_key.as_str(), properties),
        )
        .expect("publish");
    let _ = connection.close();
}

/// The line the processor prints for `event` as the logger stores it.
fn line_of(event: &Value) -> String {
    format!(
        "Event {} has been sent to {}: {}",
        event["event_id"].as_str().expect("id"),
        event["user_id"].as_str().expect("user_id"),
        event["description"].as_str().expect("description")
    )
}

/// Lines of `log` at `level` (`"WARN"`, `"ERROR"`, `"INFO"`) containing `text`.
fn lines_with(log: &str, level: &str, text: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("[{level}]")) && l.contains(text))
        .count()
}

fn status_of(logger: &Logger, id: &str) -> Value {
    let r = logger.request("GET", &format!("/events/{id}"), None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["status"].clone()
}

/// The race from outside: `POST`, then at once `PUT {"status": "Cancelled"}`, 200 times, with
/// RabbitMQ and a processor. The processor marks an event only at the version it read, so the
/// client's status is never replaced. (On main before this change the processor's `PUT` was
/// unconditional: 125 and 68 of 200 replaced in the reports from outside.)
#[test]
fn processor_a_status_set_right_after_create_is_never_replaced() {
    const EVENTS: usize = 200;
    let Some(broker) = broker("processor_race") else {
        return;
    };
    let topology = broker.topology("processor-race");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);
    let ids: Vec<String> = (0..EVENTS)
        .map(|i| {
            let id = logger.post("racer", &format!("race {i}")).expect("200");
            let r = logger.request(
                "PUT",
                &format!("/events/{id}"),
                Some(&json!({"status": "Cancelled"})),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            id
        })
        .collect();
    // Handled means printed (read before the client's update) or logged as skipped or changed.
    let handled = |id: &String| {
        processor.stdout.text().contains(id.as_str())
            || processor.stderr.text().contains(&format!("event {id} "))
    };
    assert!(
        wait_until(Duration::from_secs(60), || ids.iter().all(handled)),
        "not every message handled within 60 s; stderr:\n{}",
        tail(&processor.stderr.text())
    );
    // Not a readiness wait: a `PUT` follows its printed line, and a replacement it made must be
    // seen here.
    std::thread::sleep(Duration::from_secs(1));
    let replaced = ids
        .iter()
        .filter(|id| status_of(&logger, id) != "Cancelled")
        .count();
    let processor = stop_processor(processor);
    let printed = notified(&processor.stdout.text()).len();
    let log = processor.stderr.text();
    eprintln!(
        "processor race: {replaced} of {EVENTS} client statuses replaced; {printed} printed \
         (read before the client's PUT), {} skipped as Cancelled, {} not marked (412)",
        lines_with(&log, "INFO", "set by a client: not notified"),
        lines_with(&log, "INFO", "changed since it was read")
    );
    assert_eq!(replaced, 0, "client statuses replaced by the processor");
    assert_eq!(topology.ready(&topology.dead_queue()), 0);
    logger.stop();
}

/// Forged messages straight to the queue: the processor reads every event from the logger, so
/// nothing a message says is ever printed. The logger publishes to a topology of its own, so
/// the only messages the processor gets are the test's.
#[test]
fn processor_forged_messages_never_print_what_they_say() {
    let Some(broker) = broker("processor_forged") else {
        return;
    };
    let topology = broker.topology("processor-forged");
    let elsewhere = broker.topology("processor-forged-logger");
    let logger = Logger::start(&elsewhere, &broker.url(), &[]);
    let processor = start_processor(&topology, &broker.url(), logger.addr(), &[]);
    let real: Vec<Value> = (0..5)
        .map(|i| {
            let r = logger.request(
                "POST",
                "/events",
                Some(&json!({"user_id": format!("user-{i}"), "description": format!("real {i}")})),
            );
            assert_eq!(r.status, 200);
            r.json()
        })
        .collect();
    let id = |i: usize| real[i]["event_id"].as_str().expect("id").to_owned();
    let forged = |event_id: &str, description: &str| {
        json!({
            "event_id": event_id, "user_id": "victim", "description": description,
            "status": "NotProcessed",
            "created_at": "2026-11-28T14:00:00.123456Z", "updated_at": "2026-11-28T14:00:00.123456Z",
        })
        .to_string()
    };
    let unknown = forged("0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f", "FORGED unknown id");
    let huge = forged(&id(1), &format!("FORGED {}", "x".repeat(5 << 20)));
    let no_timestamps = json!({"event_id": id(2), "user_id": "victim",
        "description": "FORGED without timestamps", "status": "NotProcessed"});
    // What the FastAPI original publishes: `json.dumps` of four fields, no content type.
    let original = format!(
        r#"{{"event_id": "{}", "status": "NotProcessed", "user_id": "{}", "description": "{}"}}"#,
        id(3),
        real[3]["user_id"].as_str().expect("user_id"),
        real[3]["description"].as_str().expect("description")
    );
    let json = Some("application/json");
    let messages = [
        (unknown.clone(), json),
        (forged(&id(0), "FORGED text"), json),
        (huge, json),
        (no_timestamps.to_string(), None),
        (original, None),
        (
            forged(&id(4), "FORGED wrong content type"),
            Some("text/plain"),
        ),
    ];
    for (body, content_type) in &messages {
        publish(&broker, &topology, body.as_bytes(), *content_type);
    }
    logger.await_processed(5, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || {
        topology.ready(&topology.dead_queue()) == 1
    }));
    let processor = stop_processor(processor);
    let out = processor.stdout.text();
    assert!(!out.contains("FORGED") && !out.contains("victim"), "{out}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    let mut wanted: Vec<String> = real.iter().map(line_of).collect();
    wanted.sort_unstable();
    assert_eq!(lines, wanted, "each real event printed once, as stored");
    let log = processor.stderr.text();
    assert!(!log.contains("FORGED"), "{log}");
    assert_eq!(
        lines_with(&log, "WARN", "does not know the event (404)"),
        1,
        "{log}"
    );
    for event in &real {
        let id = event["event_id"].as_str().expect("id");
        let r = logger.request("GET", &format!("/events/{id}"), None).json();
        assert_eq!(r["description"], event["description"]);
        assert_eq!(r["status"], "Processed");
    }
    assert_eq!(
        topology.take_all(&topology.dead_queue()),
        vec![unknown.into_bytes()]
    );
    logger.stop();
}

/// Posts from one client at a steady pace until `stop` is set; the ids answered `200`.
fn post_steadily(logger: &Logger, stop: &AtomicBool) -> Vec<String> {
    let mut accepted = Vec::new();
    while !stop.load(Ordering::Acquire) {
        accepted.push(
            logger
                .post("steady", &format!("event {}", accepted.len()))
                .expect("200"),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    accepted
}

/// Under a steady flow the API is gone for 60 s, first refusing connections, then answered
/// `503` by the proxy: with `MAX_ATTEMPTS=1`, one spent attempt would dead-letter a message.
/// Nothing is, everything is processed once it returns, each line printed once.
#[test]
fn processor_an_api_outage_of_a_minute_dead_letters_nothing() {
    let Some(broker) = broker("processor_api_outage") else {
        return;
    };
    let topology = broker.topology("processor-api-outage");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let proxy = Proxy::start(logger.addr(), Mode::Pass);
    let processor = start_processor(
        &topology,
        &broker.url(),
        proxy.addr,
        &[("MAX_ATTEMPTS", "1")],
    );
    let stop = AtomicBool::new(false);
    // The sleeps stage the outage in time (traffic before, during and after it).
    let accepted = std::thread::scope(|scope| {
        let client = scope.spawn(|| post_steadily(&logger, &stop));
        std::thread::sleep(Duration::from_secs(3));
        proxy.set(Mode::Refuse);
        std::thread::sleep(Duration::from_secs(30));
        proxy.set(Mode::Answer(503));
        std::thread::sleep(Duration::from_secs(30));
        proxy.set(Mode::Pass);
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Release);
        client.join().expect("client")
    });
    assert!(proxy.answered() > 0, "the 503 phase was never reached");
    logger.await_processed(accepted.len(), Duration::from_secs(60));
    assert_eq!(topology.ready(&topology.dead_queue()), 0, "dead-lettered");
    let processor = stop_processor(processor);
    let mut printed = notified(&processor.stdout.text());
    printed.sort();
    let mut wanted = accepted.clone();
    wanted.sort();
    assert_eq!(printed, wanted, "every accepted event printed once");
    let log = processor.stderr.text();
    eprintln!(
        "API outage of 60 s: {} events accepted, all Processed, none dead-lettered; {} proxy \
         answers of 503; {} PUTs answered 412 after their first answer was cut",
        accepted.len(),
        proxy.answered(),
        lines_with(&log, "INFO", "changed since it was read")
    );
    assert!(log.contains("Connection refused"), "{}", tail(&log));
    assert!(log.contains("HTTP 503"), "{}", tail(&log));
    // One line for the start (the refusals and the 503s are one kind of pause), maybe one
    // reminder a minute into it, one for the end.
    let started = lines_with(&log, "WARN", "unavailable");
    assert!((1..=2).contains(&started), "{started} lines:\n{log}");
    assert_eq!(lines_with(&log, "INFO", "answers again"), 1, "{log}");
    assert_eq!(lines_with(&log, "WARN", "dead-lettering"), 0, "{log}");
    logger.stop();
}

/// A processor whose `API_TOKEN` the logger refuses: one `error` line naming `API_TOKEN`,
/// nothing printed, nothing dead-lettered; stopped, it hands every message back. The next one,
/// with the right token but behind a proxy answering `403` for a while, pauses too and goes on
/// as soon as the API accepts it.
#[test]
fn processor_a_refused_token_pauses_and_dead_letters_nothing() {
    let Some(broker) = broker("processor_refused_token") else {
        return;
    };
    let topology = broker.topology("processor-refused-token");
    let logger = Logger::start(&topology, &broker.url(), &[("API_TOKEN", "right-token")]);
    let proxy = Proxy::start(logger.addr(), Mode::Pass);
    let one = [("MAX_ATTEMPTS", "1"), ("PROCESSOR_THREADS", "2")];
    let wrong = start_processor(
        &topology,
        &broker.url(),
        proxy.addr,
        &[one[0], one[1], ("API_TOKEN", "wrong-token")],
    );
    let accepted: Vec<String> = (0..10)
        .map(|i| {
            let r = logger.client.request(
                "POST",
                "/events",
                &[("Authorization", "Bearer right-token")],
                Some(
                    json!({"user_id": "u", "description": format!("event {i}")})
                        .to_string()
                        .as_bytes(),
                ),
            );
            assert_eq!(r.status, 200);
            r.json()["event_id"].as_str().expect("id").to_owned()
        })
        .collect();
    let refused = |service: &Service| lines_with(&service.stderr.text(), "ERROR", "API_TOKEN");
    wrong.wait_for_stderr("HTTP 401", Duration::from_secs(10));
    // Not a readiness wait: more attempts (the backoff starts at 100 ms), still one line.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(refused(&wrong), 1, "{}", wrong.stderr.text());
    let wrong = stop_processor(wrong);
    assert_eq!(wrong.stdout.text(), "", "nothing printed");
    assert!(!wrong.stderr.text().contains("wrong-token"));
    // Held, not dead-lettered: back in the queue.
    assert!(wait_until(Duration::from_secs(10), || {
        topology.ready(&topology.queue) == 10
    }));
    assert_eq!(topology.ready(&topology.dead_queue()), 0);

    proxy.set(Mode::Answer(403));
    let right = start_processor(
        &topology,
        &broker.url(),
        proxy.addr,
        &[one[0], one[1], ("API_TOKEN", "right-token")],
    );
    right.wait_for_stderr("HTTP 403", Duration::from_secs(10));
    proxy.set(Mode::Pass);
    let processed = || {
        let r = logger.client.request(
            "GET",
            "/events?status=Processed&limit=0",
            &[("Authorization", "Bearer right-token")],
            None,
        );
        r.header("X-Total-Count")
            .and_then(|n| n.parse::<usize>().ok())
            == Some(10)
    };
    assert!(
        wait_until(Duration::from_secs(30), processed),
        "{}",
        right.stderr.text()
    );
    let right = stop_processor(right);
    let printed: HashSet<String> = notified(&right.stdout.text()).into_iter().collect();
    assert_eq!(printed, accepted.into_iter().collect());
    assert_eq!(
        notified(&right.stdout.text()).len(),
        10,
        "each printed once"
    );
    let log = right.stderr.text();
    assert_eq!(refused(&right), 1, "{log}");
    assert_eq!(lines_with(&log, "INFO", "answers again"), 1, "{log}");
    assert_eq!(topology.ready(&topology.dead_queue()), 0);
    logger.stop();
}

/// A failure that may belong to the message (`500`) still spends attempts: after
/// `MAX_ATTEMPTS` the message is dead-lettered, unprinted, and the processor goes on.
#[test]
fn processor_an_api_answering_500_dead_letters_after_max_attempts() {
    let Some(broker) = broker("processor_api_500") else {
        return;
    };
    let topology = broker.topology("processor-api-500");
    let logger = Logger::start(&topology, &broker.url(), &[]);
    let proxy = Proxy::start(logger.addr(), Mode::Answer(500));
    let processor = start_processor(
        &topology,
        &broker.url(),
        proxy.addr,
        &[("MAX_ATTEMPTS", "2")],
    );
    let given_up = logger.post("u", "answered 500").expect("200");
    assert!(wait_until(Duration::from_secs(15), || {
        topology.ready(&topology.dead_queue()) == 1
    }));
    assert_eq!(proxy.answered(), 2, "one request per attempt");
    proxy.set(Mode::Pass);
    let fine = logger.post("u", "after that").expect("200");
    logger.await_processed(1, Duration::from_secs(15));
    assert_eq!(status_of(&logger, &fine), "Processed");
    assert_eq!(status_of(&logger, &given_up), "NotProcessed");
    let processor = stop_processor(processor);
    assert_eq!(notified(&processor.stdout.text()), vec![fine]);
    let dead = topology.take_all(&topology.dead_queue());
    let dead: Value = serde_json::from_slice(&dead[0]).expect("Event JSON");
    assert_eq!(dead["event_id"], given_up.as_str());
    let log = processor.stderr.text();
    assert!(log.contains("gave up after 2 attempts"), "{log}");
    logger.stop();
}
