//! The HTTP server: a `tiny_http` server on a listener we configure ourselves, served by a
//! fixed pool of blocking worker threads.
//!
//! This module owns everything about the wire that is not a route: socket timeouts (tiny_http
//! sets none), the body size limit, turning a handler panic into a `500`, request logging,
//! watching that connections are still accepted ([`crate::watchdog`]) and a graceful stop. Handlers see a small [`Request`] and return a [`Response`]; they never touch
//! tiny_http.

use std::borrow::Cow;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::shutdown::Shutdown;
use crate::watchdog::{self, Alarm, ProbeConfig};

/// How the server listens and reads.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub threads: usize,
    pub max_body_bytes: usize,
    /// Read and write timeout of every connection: an idle keep-alive connection, or a client
    /// that stops sending, releases its thread after this long.
    pub io_timeout: Duration,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Resolve { host: String, source: io::Error },
    Bind { addr: SocketAddr, source: io::Error },
    Server(String),
    Thread(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Resolve { host, source } => {
                write!(f, "cannot resolve HOST {host:?}: {source}")
            }
            StartError::Bind { addr, source } => write!(
                f,
                "cannot listen on {addr}: {source} (is another server using the port? set PORT)"
            ),
            StartError::Server(e) => write!(f, "cannot start the HTTP server: {e}"),
            StartError::Thread(e) => write!(f, "cannot start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A request as handlers see it.
pub struct Request<'a> {
    pub method: String,
    /// The path, without the query string, not yet percent-decoded.
    pub path: String,
    /// The raw query string (after `?`), empty if none.
    pub query: String,
    headers: Vec<(String, String)>,
    body: &'a mut dyn Read,
    max_body_bytes: usize,
    /// Reading the body fails after this instant: the socket's read timeout bounds only the
    /// gap between two reads, so a client trickling its body would otherwise hold a worker.
    body_deadline: Option<Instant>,
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Read(io::Error),
}

impl<'a> Request<'a> {
    /// A request built by hand, for tests of the router.
    pub fn new(
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: &'a mut dyn Read,
        max_body_bytes: usize,
    ) -> Request<'a> {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body,
            max_body_bytes,
            body_deadline: None,
        }
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body, at most `MAX_BODY_BYTES`. A larger declared `Content-Length` is
    /// refused without reading anything; a chunked body is cut off one byte past the limit.
    pub fn body(&mut self) -> Result<Vec<u8>, BodyError> {
        let declared = self
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(BodyError::TooLarge);
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut limited = self.body.take(self.max_body_bytes as u64 + 1);
        let mut chunk = [0u8; 8 * 1024];
        loop {
            match limited.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BodyError::Read(e)),
            }
            if self.body_deadline.is_some_and(|d| Instant::now() > d) {
                return Err(BodyError::Read(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the body arrived too slowly (HTTP_IDLE_TIMEOUT_SECS)",
                )));
            }
        }
        if body.len() > self.max_body_bytes {
            return Err(BodyError::TooLarge);
        }
        Ok(body)
    }
}

/// A response: status, JSON (or other) body, extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Cow<'static, [u8]>,
}

/// `{"detail": "..."}`, the body of every error that is not a validation error.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Detail {
    /// What went wrong.
    pub detail: String,
}

impl Response {
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                content_type: "application/json",
                headers: Vec::new(),
                body: body.into(),
            },
            Err(e) => {
                log::error!("could not serialise a response: {e}");
                Response::detail(500, "Internal Server Error")
            }
        }
    }

    pub fn detail(status: u16, detail: &str) -> Response {
        Response::json(
            status,
            &Detail {
                detail: detail.to_owned(),
            },
        )
    }

    pub fn raw(status: u16, content_type: &'static str, body: Cow<'static, [u8]>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server calls for every request. It may block reading the request's body (bounded
/// by the socket timeouts) and on the store's lock, never on the network otherwise.
pub type Handler = dyn Fn(&mut Request<'_>) -> Response + Send + Sync;

/// A running server; [`HttpServer::stop`] ends it gracefully.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
    alarm: Alarm,
    watchdog_stop: Shutdown,
    watchdog: JoinHandle<()>,
}

/// Called once if the server stops accepting connections, with the reason.
pub type OnFailure = Box<dyn FnOnce(&str) + Send>;

impl HttpServer {
    /// Binds `host:port` and starts `threads` workers calling `handler`. A dead accept loop is
    /// only logged; see [`HttpServer::start_watched`].
    pub fn start(config: &ServerConfig, handler: Arc<Handler>) -> Result<HttpServer, StartError> {
        HttpServer::start_watched(config, handler, ProbeConfig::default(), Box::new(|_| {}))
    }

    /// Like [`HttpServer::start`], and calls `on_failure` if tiny_http's accept loop dies (see
    /// [`crate::watchdog`]), so that the service can exit and be restarted.
    pub fn start_watched(
        config: &ServerConfig,
        handler: Arc<Handler>,
        probes: ProbeConfig,
        on_failure: OnFailure,
    ) -> Result<HttpServer, StartError> {
        let listener = listen(config)?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Server(e.to_string()))?;
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None)
                .map_err(|e| StartError::Server(e.to_string()))?,
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let alarm = Alarm::new();
        let mut workers = Vec::with_capacity(config.threads);
        for i in 0..config.threads.max(1) {
            let worker = Worker {
                server: server.clone(),
                handler: handler.clone(),
                stopping: stopping.clone(),
                alarm: alarm.clone(),
                max_body_bytes: config.max_body_bytes,
                io_timeout: config.io_timeout,
            };
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker.run())
                .map_err(StartError::Thread)?;
            workers.push(handle);
        }
        let watchdog_stop = Shutdown::new();
        let watchdog = watchdog::spawn(
            addr,
            probes,
            alarm.clone(),
            watchdog_stop.clone(),
            on_failure,
        )
        .map_err(StartError::Thread)?;
        Ok(HttpServer {
            server,
            workers,
            stopping,
            addr,
            alarm,
            watchdog_stop,
            watchdog,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, lets the workers answer what is already queued, joins them and
    /// closes the listener.
    pub fn stop(self) {
        self.watchdog_stop.trigger();
        self.alarm.raise("stopping");
        if self.watchdog.join().is_err() {
            log::error!("the HTTP watchdog thread panicked");
        }
        self.stopping.store(true, Ordering::Release);
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            if worker.join().is_err() {
                log::error!("an HTTP worker thread panicked outside a handler");
            }
        }
        // Dropping the last `Arc<Server>` closes the listening socket.
    }
}

/// A bound, listening socket whose accepted connections inherit its read/write timeouts.
fn listen(config: &ServerConfig) -> Result<TcpListener, StartError> {
    let addr = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .and_then(|mut addrs| {
            addrs
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
        })
        .map_err(|source| StartError::Resolve {
            host: config.host.clone(),
            source,
        })?;
    let bind_err = |source| StartError::Bind { addr, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    // Accepted sockets inherit it. tiny_http writes the head and the body separately, so with
    // Nagle's algorithm on, a response of a few KB waited for the client's delayed ACK: 40 ms
    // for `GET /events?limit=100` (about 20 KB), 26 times fewer requests per second.
    socket.set_tcp_nodelay(true).map_err(bind_err)?;
    socket
        .set_read_timeout(Some(config.io_timeout))
        .map_err(bind_err)?;
    socket
        .set_write_timeout(Some(config.io_timeout))
        .map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    socket.listen(1024).map_err(bind_err)?;
    Ok(socket.into())
}

struct Worker {
    server: Arc<tiny_http::Server>,
    handler: Arc<Handler>,
    stopping: Arc<AtomicBool>,
    alarm: Alarm,
    max_body_bytes: usize,
    io_timeout: Duration,
}

impl Worker {
    fn run(self) {
        loop {
            match self.server.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(request)) => self.serve(request),
                // Queue empty: only now may a stopping worker leave, so queued requests are
                // still answered.
                Ok(None) if self.stopping.load(Ordering::Acquire) => break,
                Ok(None) => {}
                // tiny_http hands out an error only when its accept loop died on it.
                Err(e) => {
                    log::error!("tiny_http's accept loop stopped: {e}");
                    self.alarm
                        .raise(format!("tiny_http's accept loop stopped: {e}"));
                }
            }
        }
    }

    fn serve(&self, mut raw: tiny_http::Request) {
        let started = Instant::now();
        let headers = raw
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let method = raw.method().to_string();
        let url = raw.url().to_owned();
        let mut request =
            Request::new(&method, &url, headers, raw.as_reader(), self.max_body_bytes);
        request.body_deadline = Some(started + self.io_timeout);
        let response = match catch_unwind(AssertUnwindSafe(|| (self.handler)(&mut request))) {
            Ok(response) => response,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!("handler panicked on {method} {}: {what}", request.path);
                Response::detail(500, "Internal Server Error")
            }
        };
        let status = response.status;
        if let Err(e) = raw.respond(to_tiny(response)) {
            log::debug!("could not write the response to {method} {url}: {e}");
        }
        log::debug!(
            "{method} {url} -> {status} in {:.3} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn to_tiny(response: Response) -> tiny_http::Response<io::Cursor<Cow<'static, [u8]>>> {
    let Response {
        status,
        content_type,
        headers,
        body,
    } = response;
    let length = body.len();
    let mut out = tiny_http::Response::new(
        tiny_http::StatusCode(status),
        Vec::with_capacity(headers.len() + 1),
        io::Cursor::new(body),
        Some(length),
        None,
    );
    let headers = std::iter::once(("Content-Type", content_type.to_owned())).chain(headers);
    for (name, value) in headers {
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => out.add_header(header),
            Err(()) => log::warn!("dropped an invalid response header {name}"),
        }
    }
    out
}
