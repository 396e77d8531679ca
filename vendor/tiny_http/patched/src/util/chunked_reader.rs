// PATCHED (see PATCHES.md, fix 3): a new file.
use std::io::{Read, Result as IoResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chunked_transfer::Decoder;

/// A chunked request body that keeps the connection in step when it is dropped unread.
///
/// Upstream wrapped the chunked decoder with nothing: a body that the handler did not read to
/// the end (answered `413`, say) was left on the socket and parsed as the next request. Here a
/// body dropped before its end is drained, at most `DRAIN_LIMIT` bytes; past that, or after a
/// malformed chunk, the connection is marked abandoned and closed.
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
