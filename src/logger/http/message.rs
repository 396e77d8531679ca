//! A request as handlers see it and the response they return: the transport's whole
//! interface to the code above it.

use std::borrow::Cow;
use std::io::{self, Read};
use std::time::Instant;

use serde::Serialize;

use super::admission::{Admission, AnswerPermit, AnswersBusy, Permit, SMALL_ANSWER_BYTES};

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
    /// The server's admission, and the permit this request's handler runs under; `None` for
    /// a request built by hand.
    admission: Option<(&'a Admission, Permit<'a>)>,
    /// The share of the answer budget reserved; the permit above is then the large lane's.
    reserved: Option<AnswerPermit>,
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
            admission: None,
            reserved: None,
        }
    }

    /// The request, its handler running under `permit` of the server's `admission`, which
    /// the request gives back when dropped.
    pub(super) fn admitted(self, admission: &'a Admission, permit: Permit<'a>) -> Request<'a> {
        Request {
            admission: Some((admission, permit)),
            ..self
        }
    }

    /// Reserves room in the server's budget of large answers for an answer of at least
    /// `bytes`, before it is built: a handler about to copy and serialise a big page calls
    /// it with a lower bound of the page's size and answers `503` on `Err`, so that the page
    /// is not built only to be refused. Once room is reserved the handler may wait for the
    /// smaller lane of large answers, whose builds cannot take every handler permit. The
    /// server settles the reservation at the answer's real size. Small answers never need
    /// room; a request built by hand always has it.
    pub fn reserve_answer(&mut self, bytes: usize) -> Result<(), AnswersBusy> {
        if bytes <= SMALL_ANSWER_BYTES {
            return Ok(());
        }
        let Some((admission, permit)) = self.admission.take() else {
            return Ok(());
        };
        let (reserved, permit) = match &mut self.reserved {
            Some(reserved) => (reserved.resize(bytes), permit),
            None => match admission.answers.take(bytes) {
                Ok(taken) => {
                    self.reserved = Some(taken);
                    (Ok(()), admission.move_to_large_lane(permit))
                }
                Err(busy) => (Err(busy), permit),
            },
        };
        self.admission = Some((admission, permit));
        reserved
    }

    /// What [`Request::reserve_answer`] reserved, for the server to settle.
    pub(super) fn take_reservation(&mut self) -> Option<AnswerPermit> {
        self.reserved.take()
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
        if declared_length(&self.headers).is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(BodyError::TooLarge);
        }
        let (body, error) = read_bounded(self.body, self.max_body_bytes, None);
        if let Some(e) = error {
            return Err(BodyError::Read(e));
        }
        if body.len() > self.max_body_bytes {
            return Err(BodyError::TooLarge);
        }
        Ok(body)
    }
}

/// The `Content-Length` the client declared, if it is a number.
pub(super) fn declared_length(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
}

/// Reads `body` to its end, but at most `limit + 1` bytes (one past the limit says "too
/// large") and, with a `deadline`, not after it: the socket's read timeout bounds only the gap
/// between two reads, so a trickled body needs a deadline of its own. Returns what was read and
/// the error that ended the read early, if one did.
pub(super) fn read_bounded(
    body: &mut dyn Read,
    limit: usize,
    deadline: Option<Instant>,
) -> (Vec<u8>, Option<io::Error>) {
    let mut bytes = Vec::new();
    let mut limited = body.take(limit as u64 + 1);
    let mut chunk = [0u8; 8 * 1024];
    let error = loop {
        match limited.read(&mut chunk) {
            Ok(0) => break None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            break Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "the body arrived too slowly (HTTP_IDLE_TIMEOUT_SECS)",
            ));
        }
    };
    (bytes, error)
}

/// A response: status, JSON (or other) body, extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Cow<'static, [u8]>,
}

impl Response {
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(mut body) => Response {
                status,
                content_type: "application/json",
                headers: Vec::new(),
                body: {
                    // A large answer may wait long for its reader: it should not hold the
                    // room its buffer grew by, beyond what the budget counts.
                    if body.len() > SMALL_ANSWER_BYTES {
                        body.shrink_to_fit();
                    }
                    body.into()
                },
            },
            Err(e) => {
                log::error!("could not serialise a response: {e}");
                Response::failure(500)
            }
        }
    }

    /// An answer whose body the server fills in with its `ErrorBody`:
    /// for failures the handler cannot put into words itself.
    pub fn failure(status: u16) -> Response {
        Response::raw(status, "application/json", Cow::Borrowed(b""))
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
