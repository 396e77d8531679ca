//! HTTP as the tests speak it: a keep-alive client that returns every status as a response
//! ([`client`], [`send`]) and a [`Client`] bound to one server.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::event::new_event;

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

/// A keep-alive HTTP client for the server at `addr`.
pub struct Client {
    pub addr: SocketAddr,
    agent: ureq::Agent,
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

    /// Creates an event and returns it (panics unless `200`).
    pub fn create(&self, user_id: &str, description: &str) -> Value {
        let r = self.post_json("/events", &new_event(user_id, description));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }
}
