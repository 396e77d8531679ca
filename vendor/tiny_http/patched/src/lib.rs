//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use error_body::ErrorBodies; // PATCHED
use tuning::Tuning; // PATCHED
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;
pub use tuning::ConnectionHandler; // PATCHED

mod client;
mod common;
mod connection;
mod error_body; // PATCHED
mod framing; // PATCHED
mod head; // PATCHED
mod request;
mod response;
mod ssl;
mod test;
mod tuning; // PATCHED
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // PATCHED: the body of the answers given without a handler (`set_error_body`)
    error_bodies: ErrorBodies,
    // PATCHED: what the application tunes about connections (fix 18)
    tuning: Tuning,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

/// PATCHED (see PATCHES.md, fix 7): whether an error of `accept()` leaves the listener usable,
/// so that the accept loop goes on. Upstream stopped it for good on the first error of any kind.
///
/// - `WouldBlock` (`EAGAIN`), `TimedOut`: a read timeout set on the listener (so that accepted
///   sockets inherit it) also makes `accept()` give up when no client came for that long.
/// - `Interrupted` (`EINTR`): a signal arrived while waiting.
/// - `ConnectionAborted` (`ECONNABORTED`): a client gave up while its connection was still in
///   the listen queue (tiny-http/tiny-http#283).
///
/// PATCHED (fix 22): running out of a resource (`EMFILE`, `ENFILE`, ...) is not transient in
/// this sense but does not end the loop either: see [`accept_error_is_exhaustion`]. Every
/// other error (`EBADF`, `EINVAL`, ...) still ends the loop, as upstream: the server then
/// reports it through `recv()` / `incoming_requests()`.
fn accept_error_is_transient(error: &IoError) -> bool {
    matches!(
        error.kind(),
        IoErrorKind::WouldBlock
            | IoErrorKind::TimedOut
            | IoErrorKind::Interrupted
            | IoErrorKind::ConnectionAborted
    )
}

/// PATCHED (see PATCHES.md, fix 22): whether `accept()` failed because the process or the
/// system ran out of descriptors (`EMFILE`, `ENFILE`: 24 and 23 on Linux, the BSDs and
/// macOS), kernel buffers (`ENOBUFS`) or memory. The client stays in the listen queue, and
/// `accept()` works again once a connection closes: the loop waits, then tries again.
fn accept_error_is_exhaustion(error: &IoError) -> bool {
    let enobufs = if cfg!(target_os = "linux") { 105 } else { 55 };
    matches!(error.raw_os_error(), Some(23) | Some(24))
        || error.raw_os_error() == Some(enobufs)
        || error.kind() == IoErrorKind::OutOfMemory
}

/// PATCHED (fix 22): the pauses of the accept loop while `accept()` runs out of a resource:
/// from 10 ms, doubling up to 1 s, back to 10 ms after a success; a warning at most every 10 s,
/// so that a long shortage neither spins nor floods the log.
struct AcceptBackoff {
    pause: Duration,
    failures: u64,
    last_warning: Option<std::time::Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_secs(1);
    const WARNING_INTERVAL: Duration = Duration::from_secs(10);

    fn new() -> AcceptBackoff {
        AcceptBackoff {
            pause: Self::FIRST,
            failures: 0,
            last_warning: None,
        }
    }

    /// Logs (now and then) and returns how long to wait before the next `accept()`.
    fn failed(&mut self, error: &IoError) -> Duration {
        self.failures += 1;
        if self
            .last_warning
            .map_or(true, |at| at.elapsed() >= Self::WARNING_INTERVAL)
        {
            self.last_warning = Some(std::time::Instant::now());
            log::warn!(
                "accept() failed ({}), {} times since the last success; retrying: clients wait in the listen queue",
                error,
                self.failures
            );
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(Self::LONGEST);
        pause
    }

    fn succeeded(&mut self) {
        self.pause = Self::FIRST;
        self.failures = 0;
    }
}

// PATCHED (fix 22)
#[cfg(test)]
mod accept_backoff_tests {
    use super::{accept_error_is_exhaustion, AcceptBackoff};
    use std::io::{Error, ErrorKind};
    use std::time::Duration;

    #[test]
    fn running_out_of_descriptors_or_memory_is_exhaustion() {
        for code in [23, 24] {
            assert!(accept_error_is_exhaustion(&Error::from_raw_os_error(code)));
        }
        assert!(accept_error_is_exhaustion(&Error::from(ErrorKind::OutOfMemory)));
        assert!(!accept_error_is_exhaustion(&Error::from(ErrorKind::InvalidInput)));
        // EBADF: the listener itself is gone.
        assert!(!accept_error_is_exhaustion(&Error::from_raw_os_error(9)));
    }

    #[test]
    fn pauses_double_up_to_a_second_and_start_again_after_a_success() {
        let mut backoff = AcceptBackoff::new();
        let emfile = Error::from_raw_os_error(24);
        let pauses: Vec<Duration> = (0..9).map(|_| backoff.failed(&emfile)).collect();
        let ms: Vec<u128> = pauses.iter().map(|p| p.as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile), Duration::from_millis(10));
    }
}

// PATCHED (fix 7)
#[cfg(test)]
mod accept_error_tests {
    use super::accept_error_is_transient;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_transient_error_does_not_end_the_accept_loop() {
        for kind in [
            ErrorKind::WouldBlock,
            ErrorKind::TimedOut,
            ErrorKind::Interrupted,
            ErrorKind::ConnectionAborted,
        ] {
            assert!(accept_error_is_transient(&Error::from(kind)), "{:?}", kind);
        }
    }

    #[test]
    fn any_other_error_ends_it() {
        // EMFILE, as `accept()` returns it when the process is out of file descriptors.
        let emfile = Error::from_raw_os_error(24);
        assert!(!accept_error_is_transient(&emfile), "{:?}", emfile);
        for kind in [
            ErrorKind::Other,
            ErrorKind::InvalidInput,
            ErrorKind::PermissionDenied,
        ] {
            assert!(!accept_error_is_transient(&Error::from(kind)), "{:?}", kind);
        }
    }
}

/// PATCHED (see PATCHES.md, fix 21): answers a connection beyond the limit with a `503` and
/// closes it. The socket is new, so the short answer fits its send buffer and never blocks;
/// what the client already sent is read first (without waiting), since closing a socket with
/// unread data resets the connection, and a reset can make the client lose the answer.
fn refuse_connection(mut sock: Connection, error_bodies: &ErrorBodies) {
    // PATCHED (fix 25): no `Read`, `discard_pending` reads
    use std::io::Write;
    // Written by hand: `Response` drops a `Connection` header its user sets.
    let (body, content_type) = error_bodies.body(503, "too many connections, retry later");
    let content_type = content_type
        .map(|h| format!("{}: {}\r\n", h.field, h.value))
        .unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n{}Content-Length: {}\r\n\r\n",
        content_type,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let _ = sock.write_all(&answer);
    let _ = sock.shutdown(Shutdown::Write);
    // PATCHED (fix 25): all that already came, up to 64 KiB (it was one read of 4 KiB); never
    // waiting, since this is the accept thread. What comes later still resets the connection.
    connection::discard_pending(&sock, connection::DISCARD_BYTES);
}

/// PATCHED (see PATCHES.md, fix 18): reads the requests of one connection. With a connection
/// handler, each runs on this thread and the next is read only once it is answered; without
/// one, as upstream: requests go to the queue, HTTPS ones one at a time (to avoid a deadlock).
///
/// PATCHED (fix 19): once the stream is out of step (an answer not written whole, a body
/// abandoned), the connection closes at once rather than waiting for a next request.
fn serve_connection(
    mut client: ClientConnection,
    messages: &MessagesQueue<Message>,
    tuning: &Tuning,
) {
    let (sender, receiver) = mpsc::channel();
    let secure = client.secure();
    let out_of_step = client.out_of_step().clone();
    // PATCHED (fix 25): to close the connection from this thread, lingering
    let shared = client.shared_connection();
    while let Some(rq) = client.next() {
        let rq = rq.with_out_of_step_flag(out_of_step.clone());
        match tuning.handler() {
            Some(handler) => handler(rq.with_notify_sender(sender.clone())),
            None if secure => messages.push(rq.with_notify_sender(sender.clone()).into()),
            None => {
                messages.push(rq.into());
                continue;
            }
        }
        // `sender` is alive here, so this waits for the answer and never fails.
        if receiver.recv().is_err() || out_of_step.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
    }
    // PATCHED (fix 25): a lingering close if this is the last handle (with a connection
    // handler, it is: the request was dropped on this thread).
    drop(client);
    if let Some(shared) = shared {
        connection::SharedConnection::close_lingering(shared);
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
#[allow(dead_code)] // PATCHED: current rustc warns that the trait is never used
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        let error_bodies = ErrorBodies::default(); // PATCHED
        let inside_error_bodies = error_bodies.clone(); // PATCHED
        let tuning = Tuning::default(); // PATCHED
        let inside_tuning = tuning.clone(); // PATCHED
        thread::spawn(move || {
            // a tasks pool is used to dispatch the connections into threads
            let tasks_pool = util::TaskPool::new(inside_tuning.clone()); // PATCHED

            log::debug!("Running accept thread");
            let mut backoff = AcceptBackoff::new(); // PATCHED (fix 22)
            while !inside_close_trigger.load(Relaxed) {
                let accepted = server.accept(); // PATCHED (fix 22)
                if accepted.is_ok() {
                    backoff.succeeded();
                }
                let new_client = match accepted {
                    // PATCHED (fix 21): beyond the connection limit, a quick 503 and close.
                    Ok((sock, _)) if inside_tuning.at_connection_limit() => {
                        refuse_connection(sock, &inside_error_bodies);
                        continue;
                    }
                    Ok((sock, _)) => {
                        use util::RefinedTcpStream;
                        // PATCHED (fix 24): the two halves share the socket, no `dup` that
                        // could fail (patch 22 answered 503 when it did).
                        let (read_closable, write_closable) = match ssl {
                            None => RefinedTcpStream::new(sock),
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        // PATCHED: with the server's `error_bodies`
                        Ok(ClientConnection::new(
                            write_closable,
                            read_closable,
                            inside_error_bodies.clone(),
                        ))
                    }
                    // PATCHED: a transient error concerns one connection, or none: keep accepting.
                    Err(e) if accept_error_is_transient(&e) => continue,
                    // PATCHED (fix 22): out of descriptors or memory: wait, then try again.
                    Err(e) if accept_error_is_exhaustion(&e) => {
                        thread::sleep(backoff.failed(&e));
                        continue;
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok(client) => {
                        let messages = inside_messages.clone();
                        let mut client = Some(client);
                        let tuning = inside_tuning.clone(); // PATCHED
                        // PATCHED (fix 21): counted open until the task ends or is dropped
                        let open = inside_tuning.open_connection();
                        tasks_pool.spawn(Box::new(move || {
                            let _open = &open; // PATCHED: moved into the task
                            if let Some(client) = client.take() {
                                serve_connection(client, &messages, &tuning); // PATCHED
                            }
                        }));
                    }

                    Err(e) => {
                        log::error!("Error accepting new client: {}", e);
                        inside_messages.push(e.into());
                        break;
                    }
                }
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            error_bodies, // PATCHED
            tuning,       // PATCHED
        })
    }

    /// PATCHED (see PATCHES.md, fix 18): from now on, every request is given to `handler` on
    /// its connection's own thread instead of the queue that `recv` and `incoming_requests`
    /// read, and a connection's next request is read only once the previous one is answered
    /// (or dropped). So requests on one connection run one at a time and in order, a connection
    /// holds at most one request, and a slow client holds only its own connection's thread.
    /// Different connections still run in parallel, one thread each: an application that wants
    /// to bound how many handlers run at once does so inside `handler`.
    ///
    /// `handler` should answer the request before it returns; if it passes the request to
    /// another thread, the connection waits until that thread answers or drops it.
    pub fn set_connection_handler<F>(&self, handler: F)
    where
        F: Fn(Request) + Send + Sync + 'static,
    {
        self.tuning.set_handler(Arc::new(handler));
    }

    /// PATCHED (see PATCHES.md, fix 20): the stack size, in bytes, of the connection threads
    /// started from now on (Rust's default, 2 MiB, until set). Each open connection has its
    /// thread, and with [`Server::set_connection_handler`] the handler runs on it.
    pub fn set_connection_stack_size(&self, bytes: usize) {
        self.tuning.set_stack_size(bytes);
    }

    /// PATCHED (see PATCHES.md, fix 4): sets the body of the answers that tiny_http gives by
    /// itself, without a handler: `400` for a malformed request line or header, `408` when the
    /// request head timed out, `417` for an unknown `Expect`, `431` for a head too large,
    /// `505` for an unsupported HTTP version, and (fix 9) the `503` for a request dropped
    /// unanswered.
    ///
    /// `body` gets the status code and a short English reason and returns the body and its
    /// `Content-Type` header. Until it is set, these answers are upstream's: empty, and plain
    /// text for the `505` (the `503` is not upstream's: see fix 9). It applies to the
    /// connections already open too.
    pub fn set_error_body<F>(&self, body: F)
    where
        F: Fn(StatusCode, &str) -> (Vec<u8>, Header) + Send + Sync + 'static,
    {
        self.error_bodies.set(Arc::new(body));
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    ///
    /// PATCHED (fix 21): implemented (upstream's was `unimplemented!()`): the connections
    /// accepted and not yet closed, those refused by the limit not counted.
    pub fn num_connections(&self) -> usize {
        self.tuning.open_connections()
    }

    /// PATCHED (see PATCHES.md, fix 21): at most `max` connections open at once (0, the
    /// default: no limit). A connection accepted beyond it is answered at once, from the
    /// accept thread, `503 Service Unavailable` with `Connection: close`, `Retry-After: 1`
    /// and the body of [`Server::set_error_body`], and closed: it costs neither a thread nor
    /// a descriptor for longer than that.
    pub fn set_max_connections(&self, max: usize) {
        self.tuning.set_max_connections(max);
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
