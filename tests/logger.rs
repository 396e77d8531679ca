//! The Event Logger as a whole, in embedded mode: many clients at once, the embedded notifier's
//! output, and the `event-logger` binary's life cycle (signals, exit codes, configuration errors).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpStream;
use std::time::Duration;

use common::process::{NO_ENV, Service};
use serde_json::{Value, json};

#[test]
fn concurrent_creates_and_updates_lose_nothing() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 500;
    let app = common::spawn_app_with(|s| s.http_threads = 4);
    let created: Vec<Vec<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let url = app.url("");
                scope.spawn(move || {
                    let agent = common::client();
                    (0..PER_THREAD)
                        .map(|i| {
                            let body = json!({"user_id": format!("t{t}"), "description": format!("{t}-{i}")});
                            let r = common::send(&agent, "POST", &format!("{url}/events"), &[], Some(body.to_string().as_bytes()));
                            assert_eq!(r.status, 200);
                            let id = r.json()["event_id"].as_str().expect("id").to_owned();
                            let update = json!({"description": format!("{t}-{i} updated")});
                            let r = common::send(&agent, "PUT", &format!("{url}/events/{id}"), &[], Some(update.to_string().as_bytes()));
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

#[test]
fn the_embedded_notifier_prints_one_exact_line_per_event_and_marks_it() {
    let app = common::spawn_app();
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
        common::wait_until(Duration::from_secs(10), || {
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
    let out = app.stop();
    assert_eq!(out.text(), expected);
}

#[test]
fn the_binary_serves_notifies_and_exits_0_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let (mut logger, addr) = Service::logger(NO_ENV);
        let client = common::Client::new(addr);
        let id = client.create("u1", "hi")["event_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let line = format!("Event {id} has been sent to u1: hi\n");
        assert!(
            // The product promise is a second (release build); this is a debug build on a
            // shared machine.
            common::wait_until(Duration::from_secs(3), || logger.stdout.text() == line),
            "no notification line within 3 s: {:?}",
            logger.stdout.text()
        );
        let r = client.get(&format!("/events/{id}"));
        assert_eq!(r.json()["status"], "Processed");

        logger.signal(signal);
        let status = logger.wait(Duration::from_secs(10)).expect("exits");
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: {}",
            logger.stderr.text()
        );
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "still listening after SIG{signal}"
        );
        assert_eq!(
            logger.stdout.text(),
            line,
            "stdout carries only notifications"
        );
        let log = logger.stderr.text();
        assert!(log.contains("stopped"), "{log}");
    }
}

#[test]
fn a_taken_port_is_one_line_and_exit_1() {
    let (_first, addr) = Service::logger(NO_ENV);
    let port = addr.port().to_string();
    let mut second = Service::start("event-logger", &[], &[("PORT", &port)]);
    let status = second.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    let err = second.stderr.text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&port) && !err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_setting_is_one_line_naming_it_and_exit_2() {
    /// Binary, its environment, the variable the error must name.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("event-logger", &[("PORT", "abc")], "PORT"),
        ("event-logger", &[("PORT", "70000")], "PORT"),
        ("event-logger", &[("HTTP_THREADS", "0")], "HTTP_THREADS"),
        (
            "event-logger",
            &[("MAX_BODY_BYTES", "-1")],
            "MAX_BODY_BYTES",
        ),
        ("event-logger", &[("LOG_LEVEL", "loud")], "LOG_LEVEL"),
        ("event-logger", &[("HOST", "no-such-host.invalid")], "HOST"),
        ("event-logger", &[("AMQP_URL", "http://x")], "AMQP_URL"),
        (
            "notification-processor",
            &[("PREFETCH", "many")],
            "PREFETCH",
        ),
        (
            "notification-processor",
            &[("API_URL", "not a url")],
            "API_URL",
        ),
    ];
    for (bin, env, var) in cases {
        let mut service = Service::start(bin, &[], env);
        let status = service.wait(Duration::from_secs(10)).expect("exits");
        let err = service.stderr.text();
        assert_eq!(status.code(), Some(2), "{bin} {env:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{bin} {env:?}: {err}");
        assert!(err.contains(var), "{bin} {env:?}: {err}");
        assert!(service.stdout.text().is_empty());
    }
}

#[test]
fn help_lists_every_variable_with_its_default() {
    use event_notification::logger::LOGGER_VARS;
    use event_notification::processor::PROCESSOR_VARS;
    for (bin, vars) in [
        ("event-logger", LOGGER_VARS),
        ("notification-processor", PROCESSOR_VARS),
    ] {
        let mut service = Service::start(bin, &["--help"], NO_ENV);
        assert_eq!(
            service.wait(Duration::from_secs(10)).and_then(|s| s.code()),
            Some(0)
        );
        let help = service.stdout.text();
        let names: HashSet<&str> = help
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for var in vars {
            assert!(
                names.contains(var.name),
                "{bin} --help lacks {}: {help}",
                var.name
            );
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(var.name))
                .expect("listed");
            assert!(line.contains(var.default), "{bin}: {line}");
        }
    }
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

#[test]
fn an_unwritable_notification_leaves_the_event_unprocessed_and_the_service_up() {
    let settings = common::test_settings();
    let logger = event_notification::logger::EventLogger::start(&settings, Box::new(BrokenOutput))
        .expect("starts");
    let client = common::Client::new(logger.local_addr());
    let id = client.create("u", "d")["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(common::wait_until(Duration::from_secs(5), || {
        client.get("/health").json()["pending"] == 0
    }));
    let event = client.get(&format!("/events/{id}")).json();
    assert_eq!(event["status"], "NotProcessed", "not sent, so not marked");
    client.create("u", "the notifier goes on");
    logger.stop();
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

#[test]
fn a_dead_notifier_stops_the_service_with_an_error_instead_of_503_forever() {
    let settings = common::test_settings();
    let logger =
        event_notification::logger::EventLogger::start(&settings, Box::new(PanickingOutput))
            .expect("starts");
    let client = common::Client::new(logger.local_addr());
    client.create("u", "the notifier dies on this one");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(logger.run_until_stopped());
    });
    let result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the service stops by itself");
    let why = result.expect_err("a failure, for the process to exit non-zero");
    assert!(why.contains("notifier"), "{why}");
}
