// PATCHED (see PATCHES.md, fix 11): a new file.
//! The request head: read from the connection's buffer in chunks up to its empty line, within
//! a byte budget and a deadline, then parsed by `httparse` into what a `Request` is made of.
//!
//! Upstream read the head one byte at a time through the line parser of `client.rs`; patch 6
//! added a clock reading per byte for the head's deadline. Here the clock is read once per
//! chunk, and only the bytes of the head are consumed: what follows it (a body, the next
//! pipelined request) stays in the connection's buffer.

use std::borrow::Cow;
use std::io::{BufRead, Error as IoError, ErrorKind};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Header, HeaderField, Method};

/// The request line and headers together may not exceed this (patch 2): past it, `431`.
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) version: HTTPVersion,
    pub(crate) headers: Vec<Header>,
}

/// An answer the connection gives by itself, after which it closes: what the client sent
/// cannot be served, and where its next request would start is unknown.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) version: HTTPVersion,
    pub(crate) code: u16,
    pub(crate) reason: Cow<'static, str>,
}

impl Refusal {
    pub(crate) fn new(
        version: HTTPVersion,
        code: u16,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Refusal {
            version,
            code,
            reason: reason.into(),
        }
    }

    /// The `400` of a head that does not parse, worded as upstream's.
    pub(crate) fn malformed(version: HTTPVersion) -> Self {
        Refusal::new(
            version,
            400,
            "Bad Request: malformed request line or header",
        )
    }
}

/// Why no head could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The connection ended, failed, idled out before the head's first byte, or was marked to
    /// be closed: nothing to answer.
    Closed,
    /// An answer to give, then close (`408`, `431`).
    Refused(Refusal),
}

/// Reads one head into `buf` (cleared first): from the request line to the empty line that
/// ends the head, both included; empty lines before the request line are skipped (RFC 9112
/// §2.2). At most `MAX_HEAD_BYTES`; from the first byte on, at most `timeout` (the socket's
/// read timeout still bounds each read, and alone bounds the wait for the first byte).
/// `close` is checked after every read: once set, what arrives is not a request.
pub(crate) fn read_head<R: BufRead>(
    source: &mut R,
    buf: &mut Vec<u8>,
    timeout: Option<Duration>,
    close: &AtomicBool,
) -> Result<(), HeadError> {
    buf.clear();
    let mut skipped = 0;
    let mut deadline = None;
    loop {
        let started = !buf.is_empty() || skipped > 0;
        let chunk = match source.fill_buf() {
            Ok([]) => return Err(HeadError::Closed),
            Ok(chunk) => chunk,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if started && is_timeout(&e) => return Err(too_slow()),
            Err(_) => return Err(HeadError::Closed),
        };
        if close.load(Ordering::Acquire) {
            return Err(HeadError::Closed);
        }
        // One clock reading per read: the deadline runs from the head's first byte.
        let now = Instant::now();
        match deadline {
            None => deadline = Some(timeout.map(|t| now + t)),
            Some(Some(deadline)) if now > deadline => return Err(too_slow()),
            Some(_) => {}
        }
        let (used, complete) = take_head_bytes(buf, chunk, &mut skipped);
        source.consume(used);
        if complete {
            return Ok(());
        }
        if buf.len() + skipped >= MAX_HEAD_BYTES {
            let refusal = Refusal::new(HTTPVersion(1, 1), 431, "Request header fields too large");
            return Err(HeadError::Refused(refusal));
        }
    }
}

fn is_timeout(e: &IoError) -> bool {
    matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}

fn too_slow() -> HeadError {
    HeadError::Refused(Refusal::new(HTTPVersion(1, 1), 408, "Request Timeout"))
}

/// Appends the head bytes of `chunk` to `buf`, within `MAX_HEAD_BYTES` (with the `skipped`
/// empty lines before the head). Returns how many bytes of `chunk` were used, and whether the
/// head is complete (then `buf` ends with its empty line, and nothing after it was used).
fn take_head_bytes(buf: &mut Vec<u8>, chunk: &[u8], skipped: &mut usize) -> (usize, bool) {
    let mut start = 0;
    if buf.is_empty() {
        while start < chunk.len() && matches!(chunk[start], b'\r' | b'\n') {
            start += 1;
        }
        *skipped += start;
    }
    let room = MAX_HEAD_BYTES.saturating_sub(buf.len() + *skipped);
    let take = (chunk.len() - start).min(room);
    let old = buf.len();
    buf.extend_from_slice(&chunk[start..start + take]);
    // The empty line may have begun in the previous chunk.
    match find_head_end(buf, old.saturating_sub(2)) {
        Some(end) => {
            buf.truncate(end);
            (start + end - old, true)
        }
        None => (start + take, false),
    }
}

/// The index just past the empty line ending a head (`LF CRLF` or `LF LF`: a bare `LF` ends
/// a line too, RFC 9112 §2.2), searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(offset) = buf[i..].iter().position(|&b| b == b'\n') {
        let lf = i + offset;
        let before = &buf[..lf];
        if before.ends_with(b"\n") || before.ends_with(b"\n\r") {
            return Some(lf + 1);
        }
        i = lf + 1;
    }
    None
}

/// Parses a head read by [`read_head`] (RFC 9112 §3 and §5, as `httparse` implements them).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Head, Refusal> {
    if !valid_target(buf) {
        let reason = "Bad Request: invalid byte in the request target";
        return Err(Refusal::new(HTTPVersion(1, 1), 400, reason));
    }
    // A header per line at most: enough for any head that fits in `MAX_HEAD_BYTES`.
    let lines = buf.iter().filter(|&&b| b == b'\n').count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Refusal::malformed(HTTPVersion(1, 1))),
        Err(httparse::Error::Version) => return Err(version_refusal(buf)),
        Err(_) => return Err(Refusal::malformed(HTTPVersion(1, 1))),
    }
    let version = HTTPVersion(1, parsed.version.unwrap_or(1));
    let method = parsed.method.and_then(|m| Method::from_str(m).ok());
    let (method, target) = match (method, parsed.path) {
        (Some(method), Some(target)) => (method, target),
        _ => return Err(Refusal::malformed(version)),
    };
    check_host(&version, parsed.headers)?;
    // PATCHED (fix 16): routed by its path, as RFC 9112 §3.2.2 says a server must accept
    let target = match origin_of_absolute(target) {
        Some(Ok(path)) => path,
        Some(Err(())) => {
            let reason = "Bad Request: invalid absolute-form request target";
            return Err(Refusal::new(version, 400, reason));
        }
        None => target.to_owned(),
    };
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        match to_header(header) {
            Some(header) => headers.push(header),
            None => return Err(Refusal::malformed(version)),
        }
    }
    Ok(Head {
        method,
        target,
        version,
        headers,
    })
}

/// Whether the request target (the request line's second word) has only visible ASCII
/// characters (RFC 9112 §3.2 and RFC 3986): no control character, no byte above `0x7F`
/// (`httparse` allows those when they are UTF-8).
fn valid_target(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    target.iter().all(|&b| b.is_ascii_graphic())
}

/// PATCHED (fix 16): RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, any request
/// at most one, and its value is `uri-host [ ":" port ]` (or empty).
fn check_host(version: &HTTPVersion, headers: &[httparse::Header<'_>]) -> Result<(), Refusal> {
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let reason = match (hosts.next(), hosts.next()) {
        (None, _) if *version == HTTPVersion(1, 0) => return Ok(()),
        (None, _) => "Bad Request: an HTTP/1.1 request without Host",
        (Some(_), Some(_)) => "Bad Request: more than one Host",
        (Some(host), None) if valid_authority(trim(host.value)) => return Ok(()),
        (Some(_), None) => "Bad Request: invalid Host",
    };
    Err(Refusal::new(version.clone(), 400, reason))
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3), or nothing: an IP literal in brackets,
/// or a reg-name or IPv4 address (unreserved, sub-delims, `%XX`).
fn valid_authority(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        Some(colon) if !value[colon..].contains(&b']') => (&value[..colon], &value[colon + 1..]),
        _ => (value, &b""[..]),
    };
    if !port.iter().all(u8::is_ascii_digit) {
        return false;
    }
    match host {
        [b'[', literal @ .., b']'] => {
            !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => reg_name(host),
    }
}

fn reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' if host.len() > i + 2
                && host[i + 1].is_ascii_hexdigit()
                && host[i + 2].is_ascii_hexdigit() =>
            {
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// PATCHED (fix 16): the origin form (`/path?query`) of an absolute-form target
/// (`http://host/path?query`); `None` for a target in another form. `Err` for an `http` or
/// `https` URI with userinfo or an invalid authority.
fn origin_of_absolute(target: &str) -> Option<Result<String, ()>> {
    let scheme_end = target.find("://")?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let authority_end = rest.find(|c| c == '/' || c == '?').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.is_empty() || authority.contains('@') || !valid_authority(authority.as_bytes()) {
        return Some(Err(()));
    }
    Some(Ok(match path.starts_with('/') {
        true => path.to_owned(),
        false => format!("/{}", path),
    }))
}

/// `httparse` knows only `HTTP/1.0` and `HTTP/1.1`: another well-formed version gets `505`.
fn version_refusal(buf: &[u8]) -> Refusal {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let token = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    match token {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            let reason = "This server only supports HTTP versions 1.0 and 1.1";
            Refusal::new(HTTPVersion(1, 1), 505, reason)
        }
        _ => Refusal::malformed(HTTPVersion(1, 1)),
    }
}

/// A header as tiny_http stores it. Its value is ASCII (`AsciiString`), but a request's may
/// hold obs-text (bytes `0x80` to `0xFF`, RFC 9112 §5.5, such as UTF-8): each such byte is
/// stored as `%XX` (its hex, upper case), so `User-Agent: café` reads `caf%C3%A9`. Nothing
/// that reaches the application is lost or refused, and a header it compares with an ASCII
/// value (a token, a content type) still does not match.
fn to_header(header: &httparse::Header<'_>) -> Option<Header> {
    // `httparse` checked the name (a token, so ASCII) and the value's bytes.
    let field = HeaderField::from_bytes(header.name).ok()?;
    let value = trim(header.value);
    let value = if value.is_ascii() {
        value.to_vec()
    } else {
        let mut mapped = Vec::with_capacity(value.len() * 3);
        for &b in value {
            if b.is_ascii() {
                mapped.push(b);
            } else {
                mapped.extend_from_slice(format!("%{:02X}", b).as_bytes());
            }
        }
        mapped
    };
    let value = ascii::AsciiString::from_ascii(value).ok()?;
    Some(Header { field, value })
}

/// Without the spaces and tabs around it (RFC 9112 §5: optional whitespace).
fn trim(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor, Read};

    /// A reader that hands out its bytes `step` at a time, as a slow client's socket does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(data: &[u8], step: usize) -> (Result<Vec<u8>, HeadError>, Vec<u8>) {
        let mut source = BufReader::with_capacity(16, Trickle { data, step });
        let mut buf = Vec::new();
        let result = read_head(&mut source, &mut buf, None, &AtomicBool::new(false));
        let mut rest = Vec::new();
        source.read_to_end(&mut rest).unwrap();
        (result.map(|()| buf), rest)
    }

    #[test]
    fn a_head_read_in_chunks_leaves_what_follows_it() {
        let request =
            b"\r\nPOST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\n";
        for step in [1, 2, 3, 7, 16, 1000] {
            let (head, rest) = read_all(request, step);
            let head = head.unwrap();
            assert_eq!(head, &request[2..request.len() - 20], "step {}", step);
            assert_eq!(rest, b"bodyGET / HTTP/1.1\r\n", "step {}", step);
        }
    }

    #[test]
    fn bare_lf_ends_lines_and_the_head() {
        let (head, rest) = read_all(b"GET / HTTP/1.1\nHost: x\n\nnext", 5); // a Host, fix 16
        let head = parse_head(&head.unwrap()).unwrap();
        assert_eq!(head.target, "/");
        assert_eq!(head.headers.len(), 1);
        assert_eq!(head.headers[0].value.as_str(), "x");
        assert_eq!(rest, b"next");
    }

    #[test]
    fn a_head_past_the_cap_is_refused_431_without_reading_on() {
        let mut request = b"GET / HTTP/1.1\r\nX: ".to_vec();
        request.extend(std::iter::repeat(b'a').take(MAX_HEAD_BYTES * 2));
        let (result, rest) = read_all(&request, 4096);
        match result {
            Err(HeadError::Refused(r)) => assert_eq!(r.code, 431),
            other => panic!("{:?}", other),
        }
        assert!(rest.len() >= MAX_HEAD_BYTES - 4096, "{}", rest.len());
    }

    #[test]
    fn a_head_past_its_deadline_is_refused_408() {
        let mut source = BufReader::with_capacity(4, Cursor::new(&b"GET / HTTP/1.1\r\n\r\n"[..]));
        let mut buf = Vec::new();
        let close = AtomicBool::new(false);
        match read_head(&mut source, &mut buf, Some(Duration::ZERO), &close) {
            Err(HeadError::Refused(r)) => assert_eq!(r.code, 408),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn nothing_is_read_as_a_head_once_the_connection_is_closing() {
        let mut source = Cursor::new(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        let mut buf = Vec::new();
        let close = AtomicBool::new(true);
        let result = read_head(&mut source, &mut buf, None, &close);
        assert!(matches!(result, Err(HeadError::Closed)), "{:?}", result);
    }

    #[test]
    fn eof_before_a_head_is_a_silent_close() {
        let (result, _) = read_all(b"", 1);
        assert!(matches!(result, Err(HeadError::Closed)));
        let (result, _) = read_all(b"GET / HT", 1);
        assert!(matches!(result, Err(HeadError::Closed)));
    }

    #[test]
    fn versions_other_than_1_0_and_1_1_get_505_and_garbage_400() {
        let refusal = |raw: &[u8]| parse_head(raw).unwrap_err().code;
        assert_eq!(refusal(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(refusal(b"GET / HTTP/0.9\r\n\r\n"), 505);
        assert_eq!(refusal(b"GET / HTTP/1.1x\r\n\r\n"), 400);
        assert_eq!(refusal(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(refusal(b"GET /hello\r\n\r\n"), 400);
        assert_eq!(refusal(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(refusal(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400);
    }

    #[test]
    fn invalid_bytes_in_the_target_are_refused_400_with_their_reason() {
        for raw in [
            &b"GET /p\xffth HTTP/1.1\r\n\r\n"[..],
            b"GET /events?user_id=\xc3\x28 HTTP/1.1\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET /a\x01b HTTP/1.1\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
            b"GET /a\tb HTTP/1.1\r\n\r\n",
        ] {
            let refusal = parse_head(raw).unwrap_err();
            assert_eq!(refusal.code, 400, "{:?}", raw);
            assert!(refusal.reason.contains("request target"), "{:?}", refusal);
        }
        assert_eq!(
            parse_head(b"GET /%C3%A9?q=%FF HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap()
                .target,
            "/%C3%A9?q=%FF"
        );
    }

    #[test]
    fn obs_text_in_a_header_value_is_kept_percent_encoded() {
        let head =
            parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xc3\xa9 \xff%41\r\n\r\n")
                .unwrap();
        assert_eq!(head.headers[1].value.as_str(), "caf%C3%A9 %FF%41");
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host_and_http_1_0_at_most_one() {
        let code = |raw: &[u8]| parse_head(raw).map(|_| 0).unwrap_or_else(|r| r.code);
        assert_eq!(code(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(code(b"GET / HTTP/1.0\r\n\r\n"), 0);
        assert_eq!(code(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
        assert_eq!(code(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        for good in [
            "",
            "example.com",
            "example.com:8080",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:80",
            "a-b.c_d~",
            "%41b",
            "x:",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", good);
            assert_eq!(code(raw.as_bytes()), 0, "{:?}", good);
        }
        for bad in [
            "a b",
            "a/b",
            "a@b",
            "[::1",
            "::1]",
            "[]",
            "a:b",
            "a:80:80",
            "caf\u{e9}",
            "%4",
            "a?b",
            "\"a\"",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", bad);
            assert_eq!(code(raw.as_bytes()), 400, "{:?}", bad);
        }
    }

    #[test]
    fn an_absolute_form_target_is_routed_by_its_path() {
        let target = |t: &str| {
            let raw = format!("POST {} HTTP/1.1\r\nHost: x\r\n\r\n", t);
            parse_head(raw.as_bytes())
                .map(|h| h.target)
                .map_err(|r| r.code)
        };
        assert_eq!(target("http://x/events"), Ok("/events".to_owned()));
        assert_eq!(target("HTTPS://x:8443/a/b?c=d"), Ok("/a/b?c=d".to_owned()));
        assert_eq!(target("http://x"), Ok("/".to_owned()));
        assert_eq!(target("http://x?q"), Ok("/?q".to_owned()));
        assert_eq!(target("http://user@x/events"), Err(400));
        assert_eq!(target("http:///events"), Err(400));
        assert_eq!(target("*"), Ok("*".to_owned()));
        assert_eq!(target("/plain"), Ok("/plain".to_owned()));
    }

    #[test]
    fn a_head_parses_into_method_target_version_and_trimmed_headers() {
        let head = parse_head(b"PATCH /a?b=c HTTP/1.0\r\nX-A: \t one two \r\nY:\r\n\r\n").unwrap();
        assert_eq!(head.method, Method::Patch);
        assert_eq!(head.target, "/a?b=c");
        assert_eq!(head.version, HTTPVersion(1, 0));
        assert_eq!(head.headers[0].field.as_str().as_str(), "X-A");
        assert_eq!(head.headers[0].value.as_str(), "one two");
        assert_eq!(head.headers[1].value.as_str(), "");
    }
}
