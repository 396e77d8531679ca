//! The Event Logger in embedded mode, in-process: many clients at once, the embedded notifier's
//! output, and a notifier whose output fails or panics.

use std::collections::HashMap;
use std::time::Duration;

use event_notification::logger::EventLogger;
use libtest_mimic::Trial;
use serde_json::{Value, json};

use crate::common::app::{spawn_app, spawn_app_with, spawn_app_writing, test_settings};
use crate::common::event::new_event;
use crate::common::http::{Client, client, send};
use crate::common::output::SharedBuf;
use crate::common::wait::wait_until;

pub fn tests() -> Vec<Trial> {
    crate::trials![
        concurrent_creates_and_updates_lose_nothing,
        a_status_set_right_after_create_is_never_replaced_by_the_notifier,
        the_embedded_notifier_prints_one_exact_line_per_event_and_marks_it,
        an_unwritable_notification_leaves_the_event_unprocessed_and_the_service_up,
        a_dead_notifier_stops_the_service_with_an_error_instead_of_503_forever,
    ]
}

/// The race from outside: `POST`, then at once `PUT {"status": "Cancelled"}`, 200 times. The
/// notifier marks only events unchanged since they were queued, so none ends up `Processed`.
/// (Before versioned events it set `Processed` unconditionally: this test then failed with 5
/// of 200 replaced in one run here; the report from outside saw 125 of 200.)
fn a_status_set_right_after_create_is_never_replaced_by_the_notifier() {
    const EVENTS: usize = 200;
    let app = spawn_app();
    let ids: Vec<String> = (0..EVENTS)
        .map(|i| {
            let id = app.create("racer", &format!("race {i}"))["event_id"]
                .as_str()
                .expect("event_id")
                .to_owned();
            let r = app.request(
                "PUT",
                &format!("/events/{id}"),
                &[],
                Some(br#"{"status": "Cancelled"}"#),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            id
        })
        .collect();
    // Let the notifier get through all of them.
    assert!(wait_until(Duration::from_secs(10), || app
        .get("/health")
        .json()["pending"]
        == 0));
    std::thread::sleep(Duration::from_millis(100));
    let replaced: Vec<&String> = ids
        .iter()
        .filter(|id| app.get(&format!("/events/{id}")).json()["status"] != "Cancelled")
        .collect();
    assert!(
        replaced.is_empty(),
        "{} of {EVENTS} client statuses replaced, first {}",
        replaced.len(),
        replaced[0]
    );
}

fn concurrent_creates_and_updates_lose_nothing() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 500;
    let app = spawn_app_with(|s| s.http_threads = 4);
    let created: Vec<Vec<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let url = app.url("");
                scope.spawn(move || {
                    let agent = client();
                    (0..PER_THREAD)
                        .map(|i| {
                            let body = new_event(&format!("t{t}"), &format!("{t}-{i}"));
                            let r = send(
                                &agent,
                                "POST",
                                &format!("{url}/events"),
                                &[],
                                Some(body.to_string().as_bytes()),
                            );
                            assert_eq!(r.status, 200);
                            let id = r.json()["event_id"].as_str().expect("id").to_owned();
                            let update = json!({"description": format!("{t}-{i} updated")});
                            let r = send(
                                &agent,
                                "PUT",
                                &format!("{url}/events/{id}"),
                                &[],
                                Some(update.to_string().as_bytes()),
                            );
                            assert_eq!(r.status, 200);
                            id
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .collect()
    });

    let listed = app.get("/events");
    assert_eq!(listed.header("X-Total-Count"), Some("4000"));
    let events = listed.json();
    let events = events.as_array().expect("array");
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["event_id"].as_str().expect("id"), e))
        .collect();
    assert_eq!(events.len(), THREADS * PER_THREAD);
    assert_eq!(by_id.len(), events.len(), "an event is listed twice");
    for (t, ids) in created.iter().enumerate() {
        for (i, id) in ids.iter().enumerate() {
            let event = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{id} not listed"));
            assert_eq!(
                event["description"],
                format!("{t}-{i} updated"),
                "lost update"
            );
            assert_eq!(event["user_id"], format!("t{t}"));
        }
    }
    // Each one is also found through the index, with the same content.
    for id in created.iter().flatten().step_by(7) {
        assert_eq!(
            &app.get(&format!("/events/{id}")).json(),
            by_id[id.as_str()]
        );
    }
    // Each client's events are listed in the order that client created them.
    for (t, ids) in created.iter().enumerate() {
        let listed: Vec<&str> = events
            .iter()
            .filter(|e| e["user_id"] == format!("t{t}"))
            .map(|e| e["event_id"].as_str().expect("id"))
            .collect();
        assert_eq!(listed, *ids);
    }
}

fn the_embedded_notifier_prints_one_exact_line_per_event_and_marks_it() {
    let out = SharedBuf::default();
    let app = spawn_app_writing(|_| {}, out.clone());
    let mut expected = String::new();
    let mut ids = Vec::new();
    for i in 0..100 {
        // Some fields hold what would break a line: they must come out escaped.
        let description = match i % 4 {
            0 => format!("plain {i}"),
            1 => format!("two\nlines {i}"),
            2 => format!("tab\there, ünïcødé {i}"),
            _ => format!("carriage\rreturn {i}"),
        };
        let user = format!("user-{}", i % 7);
        let event = app.create(&user, &description);
        let id = event["event_id"].as_str().expect("id").to_owned();
        let shown = description
            .replace('\n', "\\n")
            .replace('\t', "\\t")
            .replace('\r', "\\r");
        expected.push_str(&format!("Event {id} has been sent to {user}: {shown}\n"));
        ids.push(id);
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let events = app.get("/events?status=Processed");
            events.header("X-Total-Count") == Some("100")
        }),
        "not every event was marked Processed"
    );
    for id in &ids {
        let event = app.get(&format!("/events/{id}")).json();
        assert_eq!(event["status"], "Processed");
        assert!(event["updated_at"].as_str() > event["created_at"].as_str());
    }
    drop(app); // stops it, and waits until it stopped: the output is complete
    assert_eq!(out.text(), expected);
}

/// A standard output that is gone (a closed pipe, a full disk).
struct BrokenOutput;

impl std::io::Write for BrokenOutput {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn an_unwritable_notification_leaves_the_event_unprocessed_and_the_service_up() {
    let app = spawn_app_writing(|_| {}, BrokenOutput);
    let id = app.create("u", "d")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(wait_until(Duration::from_secs(5), || {
        app.get("/health").json()["pending"] == 0
    }));
    let event = app.get(&format!("/events/{id}")).json();
    assert_eq!(event["status"], "NotProcessed", "not sent, so not marked");
    app.create("u", "the notifier goes on");
}

/// An output whose writer panics: a bug in the notifier's path, as far as the service knows.
struct PanickingOutput;

impl std::io::Write for PanickingOutput {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("the output exploded");
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn a_dead_notifier_stops_the_service_with_an_error_instead_of_503_forever() {
    let logger = EventLogger::start(&test_settings(), Box::new(PanickingOutput)).expect("starts");
    let client = Client::new(logger.local_addr());
    client.create("u", "the notifier dies on this one");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(logger.run_until_stopped());
    });
    let result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the service stops by itself");
    let why = result.expect_err("a failure, for the process to exit non-zero");
    assert!(why.to_string().contains("notifier"), "{why}");
}
