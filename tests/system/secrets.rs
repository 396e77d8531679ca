//! Secrets never reach the output: both binaries run at `debug` with a distinctive password in
//! `AMQP_URL` and an `API_TOKEN`, through every path that logs (start, requests with wrong
//! and right tokens, a broker that is connected, cut off by the broker, unreachable, or that
//! refuses the password), and neither secret may appear on stdout or stderr.
//!
//! The password belongs to a RabbitMQ user the test creates with `rabbitmqctl` (and deletes),
//! so the connected paths run with the secret itself; without `rabbitmqctl`, only the refused
//! and unreachable paths run, and the test says so. Skipped without RabbitMQ unless `CI=true`.

use std::process::Command;
use std::time::Duration;

use crate::common::broker::{Topology, broker};
use crate::common::event::new_event;
use crate::common::http::{Client, client, send};
use crate::common::process::Service;
use crate::common::services::{await_broker, processor_consuming};
use crate::common::wait::wait_until;

/// A broker user that exists for the duration of the test.
struct BrokerUser {
    name: String,
}

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl BrokerUser {
    fn create(name: &str, password: &str) -> Option<BrokerUser> {
        if !rabbitmqctl(&["add_user", name, password]) {
            return None;
        }
        let user = BrokerUser {
            name: name.to_owned(),
        };
        assert!(rabbitmqctl(&[
            "set_permissions",
            "-p",
            "/",
            name,
            ".*",
            ".*",
            ".*"
        ]));
        Some(user)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_user", &self.name]);
    }
}

struct Secrets {
    password: String,
    token: String,
}

impl Secrets {
    /// Fails if any secret, raw or percent-encoded, is in `text`.
    fn assert_absent(&self, what: &str, text: &str) {
        for secret in [&self.password, &self.token] {
            assert!(
                !text.contains(secret.as_str()),
                "{what} shows a secret:\n{text}"
            );
        }
    }
}

/// Stops `service` with SIGTERM and checks its whole output.
fn finish(mut service: Service, what: &str, secrets: &Secrets) -> String {
    let status = service.terminate(Duration::from_secs(30));
    let (stdout, stderr) = (service.stdout.text(), service.stderr.text());
    assert_eq!(status.code(), Some(0), "{what}: {stderr}");
    secrets.assert_absent(&format!("{what} stdout"), &stdout);
    secrets.assert_absent(&format!("{what} stderr"), &stderr);
    stderr
}

fn drive_requests(base: &str, token: &str) {
    let agent = client();
    let url = format!("{base}/events");
    let good = format!("Bearer {token}");
    let wrong = format!("Bearer {token}x");
    let body = new_event("u", "secret test").to_string();
    let body = body.as_bytes();
    for auth in [None, Some(wrong.as_str()), Some("Basic Zm9vOmJhcg==")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        assert_eq!(send(&agent, "POST", &url, &headers, Some(body)).status, 401);
    }
    let auth = [("Authorization", good.as_str())];
    for _ in 0..3 {
        assert_eq!(send(&agent, "POST", &url, &auth, Some(body)).status, 200);
    }
    assert_eq!(send(&agent, "POST", &url, &auth, Some(b"{")).status, 422);
    assert_eq!(send(&agent, "GET", &url, &auth, None).status, 200);
}

/// Both services connected with `env(extra)`, the requests of [`drive_requests`] made and
/// their three events printed by the processor; and the logger's base URL.
fn start_connected(
    topology: &Topology,
    token: &str,
    env: impl Fn(&[(&'static str, &str)]) -> Vec<(&'static str, String)>,
) -> (Service, String, Service) {
    let (logger, addr) = Service::logger(&env(&[]));
    let base = format!("http://{addr}");
    await_broker(&Client::new(addr), "connected", Duration::from_secs(20));
    drive_requests(&base, token);
    let processor = processor_consuming(topology, &env(&[("API_URL", &base)]));
    assert!(
        wait_until(Duration::from_secs(20), || processor
            .stdout
            .text()
            .lines()
            .count()
            == 3),
        "processor stderr:\n{}",
        processor.stderr.text()
    );
    (logger, base, processor)
}

#[test]
fn neither_secret_appears_in_any_output() {
    let Some(broker) = broker("neither_secret_appears_in_any_output") else {
        return;
    };
    let topology = broker.topology("secrets");
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let secrets = Secrets {
        password: format!("Pw{unique}"),
        token: format!("Tk{unique}"),
    };
    let user = format!("harden-{unique}");
    let names = [
        ("AMQP_EXCHANGE", topology.exchange.as_str()),
        ("AMQP_QUEUE", topology.queue.as_str()),
    ];
    let url = |port: u16, password: &str| format!("amqp://{user}:{password}@127.0.0.1:{port}/%2f");
    // What every service of this test gets, plus its own `extra`.
    let env = |amqp_url: &str, extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("AMQP_URL", amqp_url.to_owned()),
            ("API_TOKEN", secrets.token.clone()),
            ("SHUTDOWN_TIMEOUT_SECS", "1".to_owned()),
        ];
        env.extend(names.iter().chain(extra).map(|(k, v)| (*k, v.to_string())));
        env
    };

    // Connected with the secret password, then cut off by the broker: reconnects.
    let connected = || match BrokerUser::create(&user, &secrets.password) {
        Some(_user) => {
            let good_url = url(5672, &secrets.password);
            let (logger, base, processor) =
                start_connected(&topology, &secrets.token, |extra| env(&good_url, extra));
            assert!(rabbitmqctl(&[
                "close_all_user_connections",
                &user,
                "secrets test"
            ]));
            // The log lines of the reconnect paths are what this test searches for secrets, so
            // it waits for those lines themselves.
            logger.wait_for_stderr("RabbitMQ unavailable", Duration::from_secs(20));
            processor.wait_for_stderr("lost the RabbitMQ connection", Duration::from_secs(20));
            drive_requests(&base, &secrets.token);
            let stderr = finish(processor, "processor (connected)", &secrets);
            assert!(stderr.contains(&format!("{user}:***@")), "{stderr}");
            let stderr = finish(logger, "logger (connected)", &secrets);
            assert!(stderr.contains("-> 401"), "{stderr}");
            assert!(
                stderr.matches("connected to RabbitMQ at").count() >= 2,
                "{stderr}"
            );
        }
        None => eprintln!(
            "NOTE: rabbitmqctl cannot create a user here; only the refused and unreachable paths run"
        ),
    };

    // Refused (the user does not exist) and unreachable: error and retry logs.
    let failing = |what: &str, amqp_url: String| {
        let (logger, addr) = Service::logger(&env(&amqp_url, &[]));
        let base = format!("http://{addr}");
        drive_requests(&base, &secrets.token);
        // Three failed attempts logged: the retry path's lines are there to be searched.
        logger.wait_for_stderr("RabbitMQ attempt 3 failed", Duration::from_secs(20));
        let processor = Service::start(
            "notification-processor",
            &[],
            &env(&amqp_url, &[("API_URL", &base)]),
        );
        processor.wait_for_stderr("RabbitMQ attempt 3 failed", Duration::from_secs(20));
        finish(processor, &format!("processor ({what})"), &secrets);
        let stderr = finish(logger, &format!("logger ({what})"), &secrets);
        assert!(stderr.contains("cannot connect"), "{stderr}");
    };
    let refused_user = format!("{user}-absent");
    let refused_url = format!(
        "amqp://{refused_user}:{}@127.0.0.1:5672/%2f",
        secrets.password
    );
    std::thread::scope(|scope| {
        let runs = [
            scope.spawn(connected),
            scope.spawn(|| failing("refused", refused_url.clone())),
            scope.spawn(|| failing("unreachable", url(1, &secrets.password))),
        ];
        for run in runs {
            if let Err(panic) = run.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// The default Compose password is `events`, a word the logs use for other things ("0 events to
/// publish", exchange names): the password is hidden where URLs and the login are formatted,
/// so those words stay, and it never shows as a credential.
#[test]
fn a_password_that_is_an_ordinary_word_leaves_the_words_alone() {
    let Some(broker) = broker("a_password_that_is_an_ordinary_word_leaves_the_words_alone") else {
        return;
    };
    let topology = broker.topology("events");
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let (user, password, token) = (format!("words-{unique}"), "events", format!("Tk{unique}"));
    let Some(_user) = BrokerUser::create(&user, password) else {
        eprintln!("NOTE: rabbitmqctl cannot create a user here; the test does not run");
        return;
    };
    let amqp_url = format!("amqp://{user}:{password}@127.0.0.1:5672/%2f");
    let env = |extra: &[(&'static str, &str)]| {
        let mut env = topology.env(&amqp_url);
        env.push(("API_TOKEN", token.clone()));
        env.push(("SHUTDOWN_TIMEOUT_SECS", "1".to_owned()));
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    };
    let (logger, _, processor) = start_connected(&topology, &token, env);
    let token_only = Secrets {
        password: token.clone(),
        token: token.clone(),
    };
    let processor = finish(processor, "processor", &token_only);
    let logger = finish(logger, "logger", &token_only);
    for (what, stderr) in [("logger", &logger), ("processor", &processor)] {
        let credentials = [
            format!("{user}:{password}@"),
            format!("\\0{password}"),
            format!("\\u{{0}}{password}"),
        ];
        for credential in credentials {
            assert!(
                !stderr.contains(&credential),
                "{what} shows {credential}:\n{stderr}"
            );
        }
        // The handshake was logged (at debug), without the login.
        assert!(
            stderr.contains("sending handshake StartOk (the login is not logged)"),
            "{what}:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("{user}:***@")),
            "{what}:\n{stderr}"
        );
        assert!(!stderr.contains("exchange ***"), "{what}:\n{stderr}");
    }
    assert!(logger.contains("events to publish"), "{logger}");
    assert!(
        logger.contains(&format!("exchange {}", topology.exchange)),
        "{logger}"
    );
    assert!(
        processor.contains(&format!("consuming {}", topology.queue)),
        "{processor}"
    );
}
