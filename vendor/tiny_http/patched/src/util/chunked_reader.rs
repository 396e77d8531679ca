// PATCHED (see PATCHES.md, fix 3): a new file.
use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A chunked request body that keeps the connection in step when it is dropped unread.
///
/// Upstream wrapped the chunked decoder with nothing: a body that the handler did not read to
/// the end (answered `413`, say) was left on the socket and parsed as the next request. Here a
/// body dropped before its end is drained, at most `DRAIN_LIMIT` bytes; past that, or after a
/// malformed chunk, the connection is marked abandoned and closed.
///
/// PATCHED (fix 14): decoded by [`Decoder`] below rather than `chunked_transfer`'s, which
/// refused trailer fields, took a body cut short by the client's close for a complete one,
/// and had no bound on the length of a chunk-size line.
pub struct ChunkedReader<R: Read> {
    decoder: Decoder<R>,
    finished: bool,
    failed: bool,
    abandoned: Arc<AtomicBool>,
}

const DRAIN_LIMIT: usize = 64 * 1024;

impl<R: Read> ChunkedReader<R> {
    pub fn new(reader: R, abandoned: Arc<AtomicBool>) -> ChunkedReader<R> {
        ChunkedReader {
            decoder: Decoder::new(reader),
            finished: false,
            failed: false,
            abandoned,
        }
    }
}

impl<R: Read> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.finished {
            return Ok(0);
        }
        match self.decoder.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.finished = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl<R: Read> Drop for ChunkedReader<R> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut buf = [0u8; 8 * 1024];
        let mut drained = 0;
        // PATCHED (fix 6): and for at most 1 s, so a trickled body does not hold the worker.
        let started = std::time::Instant::now();
        while !self.failed
            && drained <= DRAIN_LIMIT
            && started.elapsed() <= std::time::Duration::from_secs(1)
        {
            match self.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => drained += n,
                Err(_) => break,
            }
        }
        self.abandoned.store(true, Ordering::Release);
    }
}

// PATCHED (fix 14): a chunked body decoder, strictly RFC 9112 §7.1.

/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_SIZE_LINE: usize = 4 * 1024;
/// The trailer section (read and discarded) may not be longer than this.
const MAX_TRAILERS: usize = 32 * 1024;

enum State {
    /// Next: a chunk-size line.
    Size,
    /// In a chunk's data, this much of it still to come.
    Data(u64),
    /// After the last chunk and its trailer section.
    Done,
}

/// Decodes `chunk-size [ chunk-ext ] CRLF chunk-data CRLF`, repeated, up to the last chunk
/// (size 0), then reads and discards the trailer section up to its empty line.
pub(crate) struct Decoder<R: Read> {
    source: R,
    state: State,
}

fn malformed(what: &str) -> IoError {
    IoError::new(
        ErrorKind::InvalidData,
        format!("malformed chunked body: {}", what),
    )
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(source: R) -> Decoder<R> {
        Decoder {
            source,
            state: State::Size,
        }
    }

    /// One line, without its `CRLF` (a bare `LF` is refused here: it would let a chunked
    /// body be framed two ways), at most `limit` bytes.
    fn read_line(&mut self, limit: usize) -> IoResult<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if self.source.read(&mut byte)? == 0 {
                let eof = "the connection closed before the body's end";
                return Err(IoError::new(ErrorKind::UnexpectedEof, eof));
            }
            if byte[0] == b'\n' {
                return match line.pop() {
                    Some(b'\r') => Ok(line),
                    _ => Err(malformed("a line ends without CRLF")),
                };
            }
            if line.len() > limit {
                return Err(malformed("a line is too long"));
            }
            line.push(byte[0]);
        }
    }

    /// `1*HEXDIG` then nothing, or extensions after `;` (ignored, as RFC 9112 §7.1.1 allows).
    fn read_size(&mut self) -> IoResult<u64> {
        let line = self.read_line(MAX_SIZE_LINE)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let (size, rest) = line.split_at(digits);
        let rest = rest.iter().skip_while(|&&b| b == b' ' || b == b'\t');
        let ext_ok = match rest.clone().next() {
            None => true,
            Some(b';') => rest
                .clone()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)),
            Some(_) => false,
        };
        if size.is_empty() || !ext_ok {
            return Err(malformed("invalid chunk size"));
        }
        size.iter()
            .try_fold(0u64, |n, &d| {
                let digit = (d as char).to_digit(16)? as u64;
                n.checked_mul(16)?.checked_add(digit)
            })
            .ok_or_else(|| malformed("chunk size too large"))
    }

    /// The trailer section: field lines up to an empty line, discarded.
    fn skip_trailers(&mut self) -> IoResult<()> {
        let mut left = MAX_TRAILERS;
        loop {
            let line = self.read_line(left)?;
            if line.is_empty() {
                return Ok(());
            }
            left = left.saturating_sub(line.len() + 2);
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
            if name.is_empty() || name.len() == line.len() || !name.iter().all(token) {
                return Err(malformed("invalid trailer field"));
            }
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Size => {
                    let size = self.read_size()?;
                    if size == 0 {
                        self.skip_trailers()?;
                        self.state = State::Done;
                    } else {
                        self.state = State::Data(size);
                    }
                }
                State::Data(_) if buf.is_empty() => return Ok(0),
                State::Data(left) => {
                    let want = (buf.len() as u64).min(left) as usize;
                    let n = self.source.read(&mut buf[..want])?;
                    if n == 0 {
                        let eof = "the connection closed before the body's end";
                        return Err(IoError::new(ErrorKind::UnexpectedEof, eof));
                    }
                    let left = left - n as u64;
                    self.state = State::Data(left);
                    if left == 0 {
                        let mut crlf = [0u8; 2];
                        self.source.read_exact(&mut crlf)?;
                        if crlf != *b"\r\n" {
                            return Err(malformed("no CRLF after a chunk"));
                        }
                        self.state = State::Size;
                    }
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Decoder;
    use std::io::Read;

    fn decode(body: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut source = body;
        let mut decoded = Vec::new();
        Decoder::new(&mut source)
            .read_to_end(&mut decoded)
            .map_err(|e| e.to_string())?;
        Ok((decoded, source.to_vec()))
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_and_stop_at_the_body_end() {
        let body = b"5\r\nhello\r\n1;ext=\"x y\"; more\r\n!\r\nA \r\n0123456789\r\n0\r\nX-Sum: 1\r\nY: \r\n\r\nNEXT";
        let (decoded, rest) = decode(body).unwrap();
        assert_eq!(decoded, b"hello!0123456789");
        assert_eq!(rest, b"NEXT");
        assert_eq!(decode(b"0\r\n\r\n").unwrap().0, b"");
        assert_eq!(decode(b"000\r\n\r\n").unwrap().0, b"");
    }

    #[test]
    fn malformed_or_truncated_chunked_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\nX-A: 1\r\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat(b'a').take(super::MAX_SIZE_LINE));
        assert!(decode(&long).is_err());
    }
}
