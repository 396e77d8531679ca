//! The HTTP server: a `tiny_http` server on a listener we configure ourselves, served by a
//! fixed pool of blocking worker threads.
//!
//! This module owns everything about the wire that is not a route: socket timeouts (tiny_http
//! sets none), the body size limit, turning a handler panic into a `500`, request logging,
//! watching that connections are still accepted (`watchdog`) and a graceful stop.

use std::borrow::Cow;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::message::{Request, Response};
use super::watchdog::{self, Alarm, ProbeConfig};
use crate::shared::shutdown::Shutdown;

/// The body (and its content type) of the answers the server gives on its own: when a handler
/// could not answer (it panicked, or its answer could not be serialised) and tiny_http's own
/// (a malformed or oversized head, a timeout, a request dropped at shutdown). The API above
/// decides the wording and shape.
pub type ErrorBody = fn(status: u16, reason: &str) -> (Vec<u8>, &'static str);

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
    /// The body of the answers the server gives on its own.
    pub error_body: ErrorBody,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    Resolve { host: String, source: io::Error },
    Bind { addr: SocketAddr, source: io::Error },
    Server(String),
    Thread(io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Resolve { host, source } => {
                write!(f, "cannot resolve the host {host:?}: {source}")
            }
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Server(e) => write!(f, "cannot start the HTTP server: {e}"),
            ServerError::Thread(e) => write!(f, "cannot start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Resolve { source, .. } | ServerError::Bind { source, .. } => Some(source),
            ServerError::Thread(e) => Some(e),
            ServerError::Server(_) => None,
        }
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
    pub fn start(config: &ServerConfig, handler: Arc<Handler>) -> Result<HttpServer, ServerError> {
        HttpServer::start_watched(config, handler, ProbeConfig::default(), Box::new(|_| {}))
    }

    /// Like [`HttpServer::start`], and calls `on_failure` if tiny_http's accept loop dies (see
    /// `watchdog`), so that the service can exit and be restarted.
    pub fn start_watched(
        config: &ServerConfig,
        handler: Arc<Handler>,
        probes: ProbeConfig,
        on_failure: OnFailure,
    ) -> Result<HttpServer, ServerError> {
        let listener = listen(config)?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::Server(e.to_string()))?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| ServerError::Server(e.to_string()))?;
        // tiny_http's own answers (a malformed or oversized head, a timeout, a request dropped
        // at shutdown) are worded like the handlers' errors.
        let error_body = config.error_body;
        server.set_error_body(move |status, reason| {
            let (body, content_type) = error_body(status.0, reason);
            (body, content_type_header(content_type))
        });
        let server = Arc::new(server);
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
                error_body: config.error_body,
            };
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker.run())
                .map_err(ServerError::Thread)?;
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
        .map_err(ServerError::Thread)?;
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

/// A `Content-Type` header; `application/octet-stream` if `value` is not a valid header value.
fn content_type_header(value: &str) -> tiny_http::Header {
    let name = &b"Content-Type"[..];
    tiny_http::Header::from_bytes(name, value.as_bytes())
        .or_else(|()| tiny_http::Header::from_bytes(name, &b"application/octet-stream"[..]))
        .expect("a constant header is valid")
}

/// A bound, listening socket whose accepted connections inherit its read/write timeouts.
fn listen(config: &ServerConfig) -> Result<TcpListener, ServerError> {
    let addr = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .and_then(|mut addrs| {
            addrs
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
        })
        .map_err(|source| ServerError::Resolve {
            host: config.host.clone(),
            source,
        })?;
    let bind_err = |source| ServerError::Bind { addr, source };
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
    error_body: ErrorBody,
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
                Response::failure(500)
            }
        };
        let response = if response.status >= 500 && response.body.is_empty() {
            let (body, content_type) = (self.error_body)(response.status, "Internal Server Error");
            Response::raw(response.status, content_type, body.into())
        } else {
            response
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
    // An empty content type (a `304`, which has no body) sends none.
    let content_type =
        (!content_type.is_empty()).then(|| ("Content-Type", content_type.to_owned()));
    let headers = content_type.into_iter().chain(headers);
    for (name, value) in headers {
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => out.add_header(header),
            Err(()) => log::warn!("dropped an invalid response header {name}"),
        }
    }
    out
}
