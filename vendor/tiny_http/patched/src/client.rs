// PATCHED: no `AsciiString`, `ErrorKind`, `Read`, `FromStr`, `Instant`, `Method`: the head
// is read and parsed in `head.rs`
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter};

use std::net::SocketAddr;
use std::time::Duration; // PATCHED

use crate::common::{HTTPVersion, Header}; // PATCHED: Header
use crate::error_body::ErrorBodies; // PATCHED
use crate::head::{self, Head, HeadError, Refusal}; // PATCHED
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // PATCHED: set when a request body was abandoned unread; the stream is then out of step.
    // Also set by an answer that says `Connection: close` (fix 15). Either way, no request is
    // read after it.
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,

    // PATCHED: the body of the answers given without a handler (`Server::set_error_body`)
    error_bodies: ErrorBodies,

    // PATCHED: how long a request head may take from its first byte to its end (the socket's
    // read timeout, which alone bounds only the gap between two bytes)
    head_timeout: Option<Duration>,

    // PATCHED: the bytes of the request head being read, kept from one request to the next
    head_buf: Vec<u8>,

    // PATCHED (fix 25): the plain connection both halves share (`None` over TLS)
    shared: Option<std::sync::Arc<crate::connection::SharedConnection>>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    /// PATCHED: an answer the connection gives by itself, then closes (`400`, `408`, `417`,
    /// `431`, `505`, ...): what upstream's `WrongRequestLine`, `WrongHeader`,
    /// `ExpectationFailed` and patch 2's `HeadTooLarge` each answered with their own code.
    Refused(Refusal),
    /// PATCHED: the connection ended or failed (upstream's `ReadIoError`): nothing to answer
    Closed,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        error_bodies: ErrorBodies, // PATCHED
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let head_timeout = read_socket.read_timeout(); // PATCHED
        let shared = read_socket.shared(); // PATCHED (fix 25)

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            abandoned: Default::default(), // PATCHED
            error_bodies,                  // PATCHED
            head_timeout,                  // PATCHED
            head_buf: Vec::new(),          // PATCHED
            shared,                        // PATCHED (fix 25)
        }
    }

    /// PATCHED (fix 25): a handle on the plain connection (`None` over TLS), with which the
    /// connection's thread closes it once this is dropped.
    pub(crate) fn shared_connection(
        &self,
    ) -> Option<std::sync::Arc<crate::connection::SharedConnection>> {
        self.shared.clone()
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// PATCHED (fix 19): the flag that says the stream is out of step (a body abandoned
    /// unread, an answer not written whole): no request may be read from it any more.
    pub(crate) fn out_of_step(&self) -> &std::sync::Arc<std::sync::atomic::AtomicBool> {
        &self.abandoned
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // PATCHED: the head is read in chunks from the connection's buffer and parsed by
        // `httparse` (`head.rs`); nothing is read once a previous request's body was
        // abandoned unread (see `EqualReader`), since what follows is not a request.
        // The previous request must be done with the stream first (fix 17: an upgraded one
        // holds it until its stream is dropped).
        if self.next_header_source.wait_turn().is_err()
            || self.abandoned.load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(ReadError::Closed);
        }
        head::read_head(
            &mut self.next_header_source,
            &mut self.head_buf,
            self.head_timeout,
            &self.abandoned,
        )
        .map_err(|e| match e {
            HeadError::Closed => ReadError::Closed,
            HeadError::Refused(refusal) => ReadError::Refused(refusal),
        })?;
        let Head {
            method,
            target: path,
            version,
            headers,
        } = head::parse_head(&self.head_buf).map_err(ReadError::Refused)?;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            self.abandoned.clone(),    // PATCHED
            self.error_bodies.clone(), // PATCHED
        )
        .map_err(|e| {
            use crate::request;
            match e {
                // PATCHED: as upstream, a small body that timed out while it was read here gets
                // `408`; any other error ends the connection without an answer
                request::RequestCreationError::CreationIoError(e)
                    if e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    ReadError::Refused(Refusal::new(version, 408, "Request Timeout"))
                }
                request::RequestCreationError::CreationIoError(_) => ReadError::Closed,
                request::RequestCreationError::Refused(refusal) => ReadError::Refused(refusal),
                // PATCHED: a `Refusal`
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::Refused(Refusal::new(version, 417, "Expectation Failed"))
                }
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // PATCHED: no `use crate::{Response, StatusCode}`: the answers below come from
        // `self.error_bodies` (fix 4)

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                // PATCHED: every answer given without a handler goes through `refuse`
                Err(ReadError::Refused(refusal)) => {
                    self.refuse(refusal);
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::Closed) => return None, // PATCHED

                Ok(rq) => rq,
            };

            // PATCHED: no check of the HTTP version here (patch 5 answered `505` from it):
            // `head::parse_head` accepts only 1.0 and 1.1 and refuses the others.

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                // PATCHED: no `upgrade` case (fix 17): an upgrade the handler does not take is
                // served as plain HTTP/1.1, on the same connection; one it takes closes the
                // connection once the stream is dropped (`Request::upgrade`)
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

impl ClientConnection {
    /// PATCHED: writes `refusal`, the body from `error_bodies` (upstream's empty body, or
    /// plain text for a `505`, when no hook is set).
    fn refuse(&mut self, refusal: Refusal) {
        let Refusal {
            version,
            code,
            reason,
        } = refusal;
        let response = if code == 505 {
            self.error_bodies.text(code, &reason)
        } else {
            self.error_bodies.empty(code, &reason)
        };
        // the connection closes after it, and says so (fix 15)
        let close = Header::from_bytes(&b"Connection"[..], &b"close"[..]).expect("valid header");
        let response = response.with_header(close);
        if let Some(writer) = self.sink.next() {
            response.raw_print(writer, version, &[], false, None).ok();
        }
    }
}
