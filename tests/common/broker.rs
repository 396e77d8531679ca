//! The real RabbitMQ for tests: finding it (or failing loudly under CI), a private topology per
//! test that is deleted afterwards and a look into its queues (outages: `common::proxy`).
//!
//! The broker is `AMQP_URL` from the environment, else `amqp://guest:guest@127.0.0.1:5672/%2f`.
//! When it cannot be reached, [`broker`] returns `None` after printing one line saying why, so
//! `cargo test` passes on a laptop without RabbitMQ; with `CI=true` or `REQUIRE_BROKER=1` it
//! panics instead.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use amiquip::{Connection, Publish, QueueDeleteOptions};
use event_notification::shared::amqp::{self, AmqpSettings, QueueType};
use event_notification::shared::env::{Secret, redact_url};

use super::wait::wait_until;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A reachable broker.
pub struct Broker {
    url: url::Url,
}

/// The broker, or `None` (with one line on stderr) when it cannot be reached and the caller
/// may skip. `test` names the skipping test in that line.
pub fn broker(test: &str) -> Option<Broker> {
    let text = std::env::var("AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = url::Url::parse(&text).unwrap_or_else(|e| panic!("AMQP_URL is not a URL: {e}"));
    match Connection::insecure_open(&text) {
        Ok(connection) => {
            let _ = connection.close();
            Some(Broker { url })
        }
        Err(e) => {
            let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
                || std::env::var("REQUIRE_BROKER").is_ok_and(|v| v == "1");
            let why = format!("RabbitMQ at {} is not reachable ({e})", redact_url(&text));
            if required {
                panic!(
                    "{why}; CI=true or REQUIRE_BROKER=1 require it (start it: rabbitmq-server -detached)"
                );
            }
            // Straight to stderr: the test harness hides `eprintln!` of passing tests.
            let _ = writeln!(
                io::stderr(),
                "skipped {test}: {why}; set REQUIRE_BROKER=1 to make this a failure"
            );
            None
        }
    }
}

impl Broker {
    /// The broker's URL with another host and port (to go through a [`Proxy`]).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let mut url = self.url.clone();
        url.set_host(Some(&addr.ip().to_string())).expect("host");
        url.set_port(Some(addr.port())).expect("port");
        url.to_string()
    }

    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// The broker's address, as a proxy's target.
    pub fn addr(&self) -> SocketAddr {
        let host = self.url.host_str().expect("AMQP_URL has a host");
        let port = self.url.port().unwrap_or(5672);
        (host, port)
            .to_socket_addrs()
            .expect("resolvable")
            .next()
            .expect("an address")
    }

    /// A private exchange and queue (plus `.dlx` / `.dead`), named after `test` and unique to
    /// this run; declared now, deleted when dropped.
    pub fn topology(&self, test: &str) -> Topology {
        self.topology_with_key(test, amqp::ROUTING_KEY)
    }

    /// [`Broker::topology`] with the queue bound (and services set up to publish) with
    /// `routing_key`.
    pub fn topology_with_key(&self, test: &str, routing_key: &str) -> Topology {
        self.topology_with(test, routing_key, QueueType::Classic)
    }

    /// [`Broker::topology`] with queues of `queue_type` (and services set up to declare them so).
    pub fn topology_of(&self, test: &str, queue_type: QueueType) -> Topology {
        self.topology_with(test, amqp::ROUTING_KEY, queue_type)
    }

    fn topology_with(&self, test: &str, routing_key: &str, queue_type: QueueType) -> Topology {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("test.{test}.{}.{n}", std::process::id());
        let topology = Topology {
            url: self.url(),
            exchange: format!("{tag}.x"),
            queue: format!("{tag}.q"),
            routing_key: routing_key.to_owned(),
            queue_type,
        };
        let mut connection = topology.connect();
        let channel = connection.open_channel(None).expect("channel");
        amqp::declare(&channel, &topology.settings(&topology.url)).expect("declare topology");
        let _ = connection.close();
        topology
    }
}

/// A test's own exchange and queues.
pub struct Topology {
    url: String,
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
    pub queue_type: QueueType,
}

impl Topology {
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// The settings that point an in-process logger at this topology through `url`.
    pub fn settings(&self, url: &str) -> AmqpSettings {
        AmqpSettings {
            url: Secret::new(url),
            exchange: self.exchange.clone(),
            queue: self.queue.clone(),
            routing_key: self.routing_key.clone(),
            queue_type: self.queue_type,
            tls_ca: None,
        }
    }

    /// The variables that point a service at this topology through `url`.
    pub fn env(&self, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AMQP_URL", url.to_owned()),
            ("AMQP_EXCHANGE", self.exchange.clone()),
            ("AMQP_QUEUE", self.queue.clone()),
            ("AMQP_ROUTING_KEY", self.routing_key.clone()),
            ("AMQP_QUEUE_TYPE", self.queue_type.as_str().to_owned()),
        ]
    }

    fn connect(&self) -> Connection {
        Connection::insecure_open(&self.url).expect("RabbitMQ was reachable a moment ago")
    }

    /// Whether declaring the topology with queues of `queue_type` succeeds, i.e. whether the
    /// queues there are of that type (RabbitMQ refuses the other with `406`).
    pub fn declares_as(&self, queue_type: QueueType) -> bool {
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        let mut settings = self.settings(&self.url);
        settings.queue_type = queue_type;
        let declared = amqp::declare(&channel, &settings).is_ok();
        let _ = connection.close();
        declared
    }

    /// Messages ready in `queue` (not counting those delivered and not yet acked).
    pub fn ready(&self, queue: &str) -> u32 {
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        let count = channel
            .queue_declare_passive(queue)
            .expect("queue exists")
            .declared_message_count()
            .expect("passive declare gives a count");
        let _ = connection.close();
        count
    }

    /// Consumers attached to the topology's queue, as the broker counts them.
    pub fn consumers(&self) -> u32 {
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        let count = channel
            .queue_declare_passive(self.queue.as_str())
            .expect("queue exists")
            .declared_consumer_count()
            .expect("passive declare gives a count");
        let _ = connection.close();
        count
    }

    /// Waits until the broker counts `count` consumers on the topology's queue (the signal that
    /// processors are attached: messages published from now on reach them).
    pub fn await_consumers(&self, count: u32, within: Duration) {
        let mut last = self.consumers();
        let reached = wait_until(within, || {
            last = self.consumers();
            last == count
        });
        assert!(
            reached,
            "{last} consumers on {} after {within:?}, expected {count}",
            self.queue
        );
    }

    /// Takes every ready message out of `queue` and returns their bodies, in queue order.
    pub fn take_all(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        let mut bodies = Vec::new();
        while let Some(get) = channel.basic_get(queue, true).expect("basic.get") {
            bodies.push(get.delivery.body);
        }
        let _ = connection.close();
        bodies
    }

    /// Takes every ready message out of `queue` and returns their events' ids, in queue order
    /// (each message must be an Event).
    pub fn take_ids(&self, queue: &str) -> Vec<String> {
        self.take_all(queue)
            .iter()
            .map(|body| {
                let event: serde_json::Value = serde_json::from_slice(body).expect("Event JSON");
                event["event_id"].as_str().expect("id").to_owned()
            })
            .collect()
    }

    /// Deletes the topology's queue (and the messages in it), as `rabbitmqctl delete_queue` would.
    pub fn delete_queue(&self) {
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        channel
            .queue_delete(self.queue.as_str(), QueueDeleteOptions::default())
            .expect("queue.delete");
        let _ = connection.close();
    }

    /// Replaces the topology's queue by a non-durable one without arguments (as the FastAPI
    /// original declared its `test` queue), so that our declaration fails with `406`.
    pub fn conflicting_queue(&self) {
        self.delete_queue();
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        channel
            .queue_declare(self.queue.as_str(), amiquip::QueueDeclareOptions::default())
            .expect("queue.declare");
        let _ = connection.close();
    }

    /// Publishes `body` as it is, as the logger would route an event.
    pub fn publish_raw(&self, body: &[u8]) {
        let mut connection = self.connect();
        let channel = connection.open_channel(None).expect("channel");
        channel
            .basic_publish(
                self.exchange.as_str(),
                Publish::new(body, self.routing_key.as_str()),
            )
            .expect("publish");
        let _ = connection.close();
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let Ok(mut connection) = Connection::insecure_open(&self.url) else {
            return;
        };
        // A failed delete closes its channel, so each gets its own.
        for queue in [self.queue.clone(), self.dead_queue()] {
            if let Ok(channel) = connection.open_channel(None) {
                let _ = channel.queue_delete(queue, QueueDeleteOptions::default());
            }
        }
        for exchange in [self.exchange.clone(), format!("{}.dlx", self.exchange)] {
            if let Ok(channel) = connection.open_channel(None) {
                let _ = channel.exchange_delete(exchange, false);
            }
        }
        let _ = connection.close();
    }
}
