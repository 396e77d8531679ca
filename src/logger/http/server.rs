//! The HTTP server: a `tiny_http` server on a listener we configure ourselves. Each connection
//! has its own thread (the fork's connection handler), which reads one request at a time, its
//! whole body with a deadline, runs the handler while holding one of `threads` permits, and
//! writes the answer with a deadline before it reads the next request. So requests on one
//! connection run in order, and a slow or silent client holds only its own thread, never a
//! permit that others need.
//!
//! This module owns everything about the wire that is not a route: socket timeouts (tiny_http
//! sets none), the body size limit, deadlines on bodies and answers, the bytes of answers in
//! flight, the connection limit, turning a handler panic into a `500`, request logging,
//! watching that connections are still accepted (`watchdog`) and a graceful stop.

use std::borrow::Cow;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::admission::{
    ANSWER_BYTES_IN_FLIGHT, Admission, AnswerPermit, AnswersBusy, SMALL_ANSWER_BYTES,
};
use super::memory::{self, Load, Trimmer};
use super::message::{Request, Response, declared_length, read_bounded};
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
    /// Connections open at once at most; beyond, a new one gets a quick `503` and is closed.
    pub max_connections: usize,
}

/// Stack of each connection's thread, where handlers run: ample for them (JSON nesting is
/// bounded by serde_json's recursion limit), a quarter of Rust's default.
const CONNECTION_STACK_BYTES: usize = 512 * 1024;

/// An answer must be written within `io_timeout` plus its size at this rate: a client that
/// reads slower, or not at all, is cut off (the socket's write timeout bounds only one write).
const MIN_ANSWER_BYTES_PER_SEC: u64 = 256 * 1024;

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
    connections: Arc<Connections>,
    accept_watch: JoinHandle<()>,
    addr: SocketAddr,
    alarm: Alarm,
    watchdog_stop: Shutdown,
    watchdog: JoinHandle<()>,
}

/// Called once if the server stops accepting connections, with the reason.
pub type OnFailure = Box<dyn FnOnce(&str) + Send>;

impl HttpServer {
    /// Binds `host:port` and serves `handler`, at most `threads` requests at once. A dead
    /// accept loop is only logged; see [`HttpServer::start_watched`].
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
        server.set_max_connections(config.max_connections);
        server.set_connection_stack_size(CONNECTION_STACK_BYTES);
        let connections = Arc::new(Connections {
            handler: RwLock::new(Some(handler)),
            admission: Admission::new(config.threads),
            stopping: AtomicBool::new(false),
            max_body_bytes: config.max_body_bytes,
            io_timeout: config.io_timeout,
            error_body: config.error_body,
        });
        let serving = connections.clone();
        server.set_connection_handler(move |raw| serving.serve(raw));
        let server = Arc::new(server);
        let alarm = Alarm::new();
        let accept_watch = spawn_accept_watch(server.clone(), connections.clone(), alarm.clone())?;
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
            connections,
            accept_watch,
            addr,
            alarm,
            watchdog_stop,
            watchdog,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests (those that arrive now get a `503`), waits for the handlers
    /// running to finish, and closes the listener.
    pub fn stop(self) {
        self.watchdog_stop.trigger();
        self.alarm.raise("stopping");
        if self.watchdog.join().is_err() {
            log::error!("the HTTP watchdog thread panicked");
        }
        self.connections.stopping.store(true, Ordering::Release);
        self.server.unblock();
        if self.accept_watch.join().is_err() {
            log::error!("the HTTP accept watch thread panicked");
        }
        self.connections.admission.wait_idle();
        self.connections
            .handler
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // Dropping the last `Arc<Server>` closes the listening socket.
    }
}

/// The thread that hears from tiny_http's accept loop: it hands out an error through `recv`
/// only when the loop died. Requests never come this way (the connection handler takes them).
/// Between two waits it gives memory back once a burst is over (`memory`).
fn spawn_accept_watch(
    server: Arc<tiny_http::Server>,
    connections: Arc<Connections>,
    alarm: Alarm,
) -> Result<JoinHandle<()>, ServerError> {
    std::thread::Builder::new()
        .name("http-accept-watch".into())
        .spawn(move || {
            let mut trimmer = Trimmer::default();
            while !connections.stopping.load(Ordering::Acquire) {
                let load = Load::now(connections.admission.answers.in_flight());
                if trimmer.observe(load, Instant::now()) {
                    memory::trim();
                }
                match server.recv_timeout(Duration::from_millis(200)) {
                    Ok(Some(request)) => connections.serve(request),
                    Ok(None) => {}
                    Err(e) => {
                        log::error!("tiny_http's accept loop stopped: {e}");
                        alarm.raise(format!("tiny_http's accept loop stopped: {e}"));
                        return;
                    }
                }
            }
        })
        .map_err(ServerError::Thread)
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

/// What every connection's thread shares.
struct Connections {
    /// Taken out at stop: connection threads outlive the server (until their client leaves),
    /// and what the handler holds (the outbox's sender) must not.
    handler: RwLock<Option<Arc<Handler>>>,
    admission: Admission,
    stopping: AtomicBool,
    max_body_bytes: usize,
    io_timeout: Duration,
    error_body: ErrorBody,
}

impl Connections {
    /// Serves one request on its connection's thread: body, handler, answer.
    fn serve(&self, mut raw: tiny_http::Request) {
        let started = Instant::now();
        let method = raw.method().to_string();
        let url = raw.url().to_owned();
        let (response, reserved) = if self.stopping.load(Ordering::Acquire) {
            let stopping = Response::failure(503).with_header("Retry-After", "1");
            (self.filled(stopping), None)
        } else {
            self.answer(&mut raw, &method, &url, started)
        };
        let response = self.budgeted(response, reserved);
        let status = response.0.status;
        if let Err(e) = raw.respond(to_tiny(response, self.io_timeout)) {
            log::debug!("could not write the response to {method} {url}: {e}");
        }
        log::debug!(
            "{method} {url} -> {status} in {:.3} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }

    /// Reads the body (no permit held: a slow client waits alone), then runs the handler
    /// under a permit. Returns the answer and the share of the answer budget the handler
    /// reserved for it, if it did.
    fn answer(
        &self,
        raw: &mut tiny_http::Request,
        method: &str,
        url: &str,
        started: Instant,
    ) -> (Response, Option<AnswerPermit>) {
        let headers: Vec<(String, String)> = raw
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let mut body = if declared_length(&headers).is_some_and(|n| n > self.max_body_bytes as u64)
        {
            // Refused by `Request::body` from the declared length, without reading.
            Prefetched::default()
        } else {
            Prefetched::read(
                raw.as_reader(),
                self.max_body_bytes,
                started + self.io_timeout,
            )
        };
        let (_running, permit) = self.admission.handler();
        let mut request = Request::new(method, url, headers, &mut body, self.max_body_bytes)
            .admitted(&self.admission, permit);
        let handler = self
            .handler
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(handler) = handler else {
            let stopping = Response::failure(503).with_header("Retry-After", "1");
            return (self.filled(stopping), None);
        };
        let response = match catch_unwind(AssertUnwindSafe(|| handler(&mut request))) {
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
        let reserved = request.take_reservation();
        // Gives the permit back before the answer is written.
        drop(request);
        (self.filled(response), reserved)
    }

    /// A `5xx` without a body gets the server's error body.
    fn filled(&self, response: Response) -> Response {
        if response.status >= 500 && response.body.is_empty() {
            let reason = if response.status == 503 {
                "the server is busy or stopping, retry later"
            } else {
                "Internal Server Error"
            };
            let (body, content_type) = (self.error_body)(response.status, reason);
            let headers = response.headers;
            Response {
                headers,
                ..Response::raw(response.status, content_type, body.into())
            }
        } else {
            response
        }
    }

    /// A large answer built for this request holds its size of the budget of answers in
    /// flight (settled from what the handler `reserved`, or taken now), or is replaced by a
    /// `503`. Borrowed bodies (the static `/docs` files) cost no memory and are not counted.
    fn budgeted(&self, response: Response, reserved: Option<AnswerPermit>) -> Budgeted {
        let bytes = response.body.len();
        if bytes <= SMALL_ANSWER_BYTES || matches!(response.body, Cow::Borrowed(_)) {
            return Budgeted(response, None);
        }
        let settled = match reserved {
            Some(mut permit) => permit.resize(bytes).map(|()| permit),
            None => self.admission.answers.take(bytes),
        };
        match settled {
            Ok(permit) => Budgeted(response, Some(permit)),
            Err(busy) => {
                log::warn!(
                    "{ANSWER_BYTES_IN_FLIGHT} bytes of answers are being written: a {bytes}-byte answer was replaced by 503"
                );
                Budgeted(self.busy(busy), None)
            }
        }
    }

    /// The `503` of a large answer the budget cannot take.
    fn busy(&self, busy: AnswersBusy) -> Response {
        let (body, content_type) = (self.error_body)(503, &busy.to_string());
        Response::raw(503, content_type, body.into()).with_header("Retry-After", "1")
    }
}

/// An answer and, if it is large, its share of the answer budget (released when the answer
/// has been written or abandoned, with its body).
struct Budgeted(Response, Option<AnswerPermit>);

/// A request body read ahead of the handler: its bytes (at most one past the limit), then the
/// error that ended the read early, if one did.
#[derive(Default)]
struct Prefetched {
    bytes: io::Cursor<Vec<u8>>,
    error: Option<io::Error>,
}

impl Prefetched {
    /// Reads `body` until its end, `limit + 1` bytes or `deadline`.
    fn read(body: &mut dyn Read, limit: usize, deadline: Instant) -> Prefetched {
        let (bytes, error) = read_bounded(body, limit, Some(deadline));
        Prefetched {
            bytes: io::Cursor::new(bytes),
            error,
        }
    }
}

impl Read for Prefetched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.bytes.read(buf)? {
            0 => self.error.take().map_or(Ok(0), Err),
            n => Ok(n),
        }
    }
}

/// An answer's body that fails once its deadline passed, which makes tiny_http cut the answer
/// and close the connection; it holds the answer's budget permit until dropped.
struct AnswerBody {
    bytes: io::Cursor<Cow<'static, [u8]>>,
    deadline: Instant,
    _permit: Option<AnswerPermit>,
}

impl Read for AnswerBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read the answer too slowly",
            ));
        }
        self.bytes.read(buf)
    }
}

fn to_tiny(answer: Budgeted, io_timeout: Duration) -> tiny_http::Response<AnswerBody> {
    let Budgeted(response, permit) = answer;
    let Response {
        status,
        content_type,
        headers,
        body,
    } = response;
    let length = body.len();
    let deadline =
        Instant::now() + io_timeout + Duration::from_secs(length as u64 / MIN_ANSWER_BYTES_PER_SEC);
    let body = AnswerBody {
        bytes: io::Cursor::new(body),
        deadline,
        _permit: permit,
    };
    let mut out = tiny_http::Response::new(
        tiny_http::StatusCode(status),
        Vec::with_capacity(headers.len() + 1),
        body,
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
