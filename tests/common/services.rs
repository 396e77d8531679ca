//! Both binaries in AMQP mode against a test's [`Topology`]: the logger as a child process with
//! an HTTP client ([`Logger`]), the processor handed over only once the broker shows its
//! consumers attached ([`start_processor`], [`processor_consuming`]), and their output read back
//! ([`notified`], [`tail`]).

use std::net::SocketAddr;
use std::time::Duration;

use event_notification::processor::PROCESSOR_VARS;
use serde_json::Value;

use super::broker::Topology;
use super::event::new_event;
use super::http::{Client, TestResponse};
use super::process::Service;
use super::wait::wait_until;

/// The logger binary in AMQP mode and an HTTP client for it.
pub struct Logger {
    pub service: Service,
    pub client: Client,
}

impl Logger {
    /// Starts `event-logger` for `topology` through `amqp_url` (`SHUTDOWN_TIMEOUT_SECS=5`), with
    /// `extra` variables last (so they may override those).
    pub fn start(topology: &Topology, amqp_url: &str, extra: &[(&str, &str)]) -> Logger {
        let mut env: Vec<(&str, String)> = topology.env(amqp_url);
        env.push(("SHUTDOWN_TIMEOUT_SECS", "5".into()));
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let (service, addr) = Service::logger(&env);
        Logger {
            service,
            client: Client::new(addr),
        }
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> TestResponse {
        let body = body.map(|b| b.to_string().into_bytes());
        self.client.request(method, path, &[], body.as_deref())
    }

    /// Creates an event; its id when the answer is `200`.
    pub fn post(&self, user: &str, description: &str) -> Result<String, TestResponse> {
        let r = self.request("POST", "/events", Some(&new_event(user, description)));
        if r.status == 200 {
            Ok(r.json()["event_id"].as_str().expect("id").to_owned())
        } else {
            Err(r)
        }
    }

    pub fn health(&self) -> Value {
        health(&self.client)
    }

    /// Waits until `/health` says the logger is connected to RabbitMQ.
    pub fn await_connected(&self, within: Duration) {
        await_broker(&self.client, "connected", within);
    }

    pub fn events(&self) -> Vec<Value> {
        let r = self.request("GET", "/events", None);
        assert_eq!(r.status, 200);
        r.json().as_array().expect("array").clone()
    }

    pub fn processed(&self) -> usize {
        let r = self.request("GET", "/events?status=Processed&limit=0", None);
        r.header("X-Total-Count")
            .and_then(|n| n.parse().ok())
            .expect("X-Total-Count")
    }

    /// Waits until `count` events are `Processed`.
    pub fn await_processed(&self, count: usize, within: Duration) {
        let ok = wait_until(within, || self.processed() >= count);
        assert!(
            ok,
            "only {} of {count} events Processed after {within:?}; logger stderr tail:\n{}",
            self.processed(),
            tail(&self.service.stderr.text())
        );
    }

    pub fn addr(&self) -> SocketAddr {
        self.client.addr
    }

    /// SIGTERM; asserts a clean exit.
    pub fn stop(mut self) -> Service {
        let status = self.service.terminate(Duration::from_secs(15));
        assert_eq!(
            status.code(),
            Some(0),
            "logger: {}",
            self.service.stderr.text()
        );
        self.service
    }
}

/// The logger's `/health` (which needs no token).
pub fn health(client: &Client) -> Value {
    let r = client.get("/health");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Waits until the logger's `/health` shows `broker` as `state`.
pub fn await_broker(client: &Client, state: &str, within: Duration) {
    let mut last = Value::Null;
    let reached = wait_until(within, || {
        last = health(client);
        last["broker"] == state
    });
    assert!(
        reached,
        "/health after {within:?}: {last}, expected broker {state}"
    );
}

/// Starts `notification-processor` for `topology` through `amqp_url`, against the logger at
/// `api` (`SHUTDOWN_TIMEOUT_SECS=5`, then `extra`), and waits until it consumes.
pub fn start_processor(
    topology: &Topology,
    amqp_url: &str,
    api: SocketAddr,
    extra: &[(&str, &str)],
) -> Service {
    let mut env: Vec<(&str, String)> = topology.env(amqp_url);
    env.push(("API_URL", format!("http://{api}")));
    env.push(("SHUTDOWN_TIMEOUT_SECS", "5".into()));
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    processor_consuming(topology, &env)
}

/// Starts `notification-processor` with `env` and returns it once the broker counts its
/// consumers (one per `PROCESSOR_THREADS`) on the topology's queue, in addition to those there
/// before: an outage or a message a test stages from then on meets a running session.
pub fn processor_consuming(topology: &Topology, env: &[(&str, String)]) -> Service {
    let before = topology.consumers();
    let processor = Service::start("notification-processor", &[], env);
    let threads: u32 = env
        .iter()
        .rev()
        .find(|(k, _)| *k == "PROCESSOR_THREADS")
        .map(|(_, v)| v.as_str())
        .or_else(|| {
            PROCESSOR_VARS
                .iter()
                .find(|v| v.name == "PROCESSOR_THREADS")
                .map(|v| v.default)
        })
        .and_then(|n| n.parse().ok())
        .expect("PROCESSOR_THREADS is a number");
    let attached = wait_until(Duration::from_secs(30), || {
        topology.consumers() >= before + threads
    });
    assert!(
        attached,
        "the processor did not attach {threads} consumers to {} within 30 s; stderr:\n{}",
        topology.queue,
        tail(&processor.stderr.text())
    );
    processor
}

/// SIGTERM to a processor; asserts a clean exit.
pub fn stop_processor(mut processor: Service) -> Service {
    let status = processor.terminate(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(0),
        "processor: {}",
        processor.stderr.text()
    );
    processor
}

/// The last 30 lines of `text`.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Event ids of the notification lines in `stdout`; every line must be one.
pub fn notified(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|line| {
            let rest = line
                .strip_prefix("Event ")
                .unwrap_or_else(|| panic!("not a notification line: {line:?}"));
            rest.split(' ').next().expect("id").to_owned()
        })
        .collect()
}
