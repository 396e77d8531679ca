//! The binaries' life cycle as an operator meets it: the logger serving, notifying and exiting
//! 0 on `SIGTERM`/`SIGINT`, a taken port, bad settings and `--help` of both binaries, and a
//! logger starved of file descriptors exiting non-zero instead of serving nothing.

use std::collections::HashSet;
use std::net::TcpStream;
use std::time::Duration;

use event_notification::logger::LOGGER_VARS;
use event_notification::processor::PROCESSOR_VARS;

use crate::common::http::{Client, client, send};
use crate::common::process::{NO_ENV, Service};
use crate::common::wait::wait_until;

#[test]
fn the_binary_serves_notifies_and_exits_0_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let (mut logger, addr) = Service::logger(NO_ENV);
        let client = Client::new(addr);
        let id = client.create("u1", "hi")["event_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let line = format!("Event {id} has been sent to u1: hi\n");
        assert!(
            // The product promise is a second (release build); this is a debug build on a
            // shared machine.
            wait_until(Duration::from_secs(3), || logger.stdout.text() == line),
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

/// The real binary with only a few file descriptors (hard limit too, so raising it at start
/// cannot help): once connections use them up, tiny_http's accept loop stops, either because
/// `accept()` fails with `EMFILE` or because its connection setup panics on the failed `dup`,
/// whichever comes first for the descriptors left. Both limits are run, so both ways of dying
/// are met; the logger must say so and exit 1 instead of serving nothing.
#[test]
/// Issue 11: running out of descriptors used to end tiny_http's accept loop, and the logger
/// exited (code 1). Now the connections beyond `MAX_CONNECTIONS` get a quick 503, `accept()`
/// out of descriptors pauses and retries, and the logger serves again once clients leave.
fn the_logger_survives_running_out_of_descriptors() {
    let runs: Vec<_> = [32, 33]
        .into_iter()
        .map(|limit| std::thread::spawn(move || starve_of_descriptors(limit)))
        .collect();
    for run in runs {
        let (limit, stderr) = run.join().unwrap();
        println!("limit {limit}: {} lines on stderr", stderr.lines().count());
    }
}

fn starve_of_descriptors(limit: u64) -> (u64, String) {
    use std::os::unix::process::CommandExt;
    let mut logger = Service::start_with(
        "event-logger",
        &[],
        &[("PORT", "0"), ("HTTP_THREADS", "2"), ("LOG_LEVEL", "info")],
        |command| {
            // SAFETY: only the setrlimit system call runs between fork and exec.
            unsafe {
                command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
            }
        },
    );
    let addr = logger.listening_addr(Duration::from_secs(20));
    let stderr = logger.stderr.text();
    assert!(
        stderr.contains(&format!("open-file limit: {limit}")),
        "{stderr}"
    );
    assert_eq!(
        send(&client(), "GET", &format!("http://{addr}/ping"), &[], None).status,
        200
    );
    let mut held = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect(addr) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    // Held past the watchdog's three probes (5 s apart), then released.
    assert_eq!(
        logger.wait(Duration::from_secs(20)),
        None,
        "the logger exited"
    );
    drop(held);
    let served = wait_until(Duration::from_secs(10), || {
        send(&client(), "GET", &format!("http://{addr}/ping"), &[], None).status == 200
    });
    let stderr = logger.stderr.text();
    assert!(
        served,
        "GET /ping not served after the clients left: {stderr}"
    );
    assert!(
        !stderr.contains("no longer accepts connections"),
        "{stderr}"
    );
    (limit, stderr)
}
