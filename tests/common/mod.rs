//! Test helpers shared by the integration tests: start the real server on port 0 in-process
//! ([`spawn_app`]) and talk HTTP to it ([`TestApp::request`]).
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_notification::logger::{EventLogger, LoggerSettings};
use serde_json::Value;

pub mod broker;
pub mod process;

/// A `Write` that tests can read back (captured notification lines).
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Settings for a test server: port 0 on loopback, embedded mode, everything else default.
pub fn test_settings() -> LoggerSettings {
    let mut settings = LoggerSettings::from_lookup(|_| None).expect("defaults are valid");
    settings.port = 0;
    settings.http_threads = 4;
    settings.idle_timeout = Duration::from_secs(5);
    settings
}

/// A running Event Logger and an HTTP client for it (through `Deref`). Stops the server when
/// dropped.
pub struct TestApp {
    pub out: SharedBuf,
    logger: Option<EventLogger>,
    client: Client,
}

impl std::ops::Deref for TestApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A keep-alive HTTP client for the server at `addr`.
pub struct Client {
    pub addr: SocketAddr,
    agent: ureq::Agent,
}

/// A response as tests see it.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

pub fn spawn_app_with(configure: impl FnOnce(&mut LoggerSettings)) -> TestApp {
    let mut settings = test_settings();
    configure(&mut settings);
    let out = SharedBuf::default();
    let logger = EventLogger::start(&settings, Box::new(out.clone())).expect("server starts");
    TestApp {
        client: Client::new(logger.local_addr()),
        out,
        logger: Some(logger),
    }
}

/// A keep-alive HTTP client that returns every status as a response.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .allow_non_standard_methods(true)
        .build()
        .into()
}

/// One request with `agent` to `url`.
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> TestResponse {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let result = match body {
        Some(body) => agent.run(builder.body(body.to_vec()).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    };
    let response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    TestResponse {
        status,
        headers,
        body,
    }
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            agent: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> TestResponse {
        send(&self.agent, method, &self.url(path), headers, body)
    }

    pub fn get(&self, path: &str) -> TestResponse {
        self.request("GET", path, &[], None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.request("POST", path, &[], Some(body.to_string().as_bytes()))
    }

    pub fn put_json(&self, path: &str, body: &Value) -> TestResponse {
        self.request("PUT", path, &[], Some(body.to_string().as_bytes()))
    }

    /// Creates an event and returns it (panics unless `200`).
    pub fn create(&self, user_id: &str, description: &str) -> Value {
        let r = self.post_json(
            "/events",
            &serde_json::json!({"user_id": user_id, "description": description}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }
}

impl TestApp {
    pub fn logger(&self) -> &EventLogger {
        self.logger.as_ref().expect("running")
    }

    /// Stops the server gracefully and waits until it stopped.
    pub fn stop(mut self) -> SharedBuf {
        if let Some(logger) = self.logger.take() {
            logger.stop();
        }
        self.out.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(logger) = self.logger.take() {
            logger.stop();
        }
    }
}

/// Threads of this test process (server threads included: the tests run it in-process).
pub fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
